"""The metric families the bundle's alerts and dashboards read, as README.md states them
(name, type, label names, how several processes combine), against what each metrics
class really exposes. The table below is written from README.md, not from metrics.py:
renaming a family or a label, or dropping one, fails here, and the message names the
README row to change with it (and the rules in bundle/alerts.yaml that read it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from platform_observability.metrics import BusinessMetrics, HttpMetrics, ShipperMetrics, TaskMetrics

README = Path(__file__).resolve().parent.parent / "README.md"

# family: (type, label names), from README.md's "emitted as" table and the shipper's table.
CONTRACT = {
    "http_requests_total": ("counter", ("method", "endpoint", "status")),
    "http_request_duration_seconds": ("histogram", ("method", "endpoint")),
    "lectures_uploaded_total": ("counter", ()),
    "questions_asked_total": ("counter", ()),
    "documents_generated_total": ("counter", ("type",)),
    "flashcards_created_total": ("counter", ()),
    "celery_task_duration_seconds": ("histogram", ("task_name",)),
    "celery_task_failures_total": ("counter", ("task_name",)),
    "log_shipper_dropped_lines_total": ("counter", ("destination", "reason")),
    "log_shipper_sent_lines_total": ("counter", ("destination",)),
    "log_shipper_connected": ("gauge", ("destination",)),
    "log_shipper_buffered_bytes": ("gauge", ("destination", "buffer")),
}

# README, the shipper's table: with PROMETHEUS_MULTIPROC_DIR, `log_shipper_connected` is
# "the least over live processes" (one disconnected worker shows as 0, which
# LogShipperDisconnected reads), and the bytes waiting add up over live processes.
MULTIPROCESS_MODE = {"log_shipper_connected": "livemin", "log_shipper_buffered_bytes": "livesum"}


def exposed(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...]]]:
    """family -> (type, label names of its samples) as a scrape would see them."""
    families = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name.endswith("_created") and family.type != "counter":
            continue  # a counter's or histogram's creation time, which the text parser splits off
        names = {n for s in family.samples for n in s.labels if n != "le"}
        # The parser names a counter family without its _total suffix.
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = (family.type, tuple(sorted(names)))
    return families


def every_metric(registry: CollectorRegistry):
    http, business = HttpMetrics(registry), BusinessMetrics(registry, document_types=["summary"])
    tasks, shipper = TaskMetrics(registry), ShipperMetrics(registry)
    # One sample of each, so its labels show in the exposition.
    http.requests.labels("GET", "/items/{id}", "200").inc()
    http.duration.labels("GET", "/items/{id}").observe(0.1)
    business.lectures_uploaded.inc()
    business.questions_asked.inc()
    business.documents_generated.labels("summary").inc()
    business.flashcards_created.inc()
    tasks.duration.labels("send_mail").observe(1)
    tasks.failures.labels("send_mail").inc()
    shipper.dropped.labels("logstash:5000", "memory_full").inc()
    shipper.sent.labels("logstash:5000").inc()
    shipper.connected.labels("logstash:5000").set(1)
    shipper.buffered.labels("logstash:5000", "memory").set(10)
    return shipper


@pytest.mark.parametrize("family", sorted(CONTRACT))
def test_each_family_has_the_documented_name_type_and_labels(family):
    registry = CollectorRegistry()
    every_metric(registry)
    kind, labels = CONTRACT[family]
    families = exposed(registry)
    assert family in families, f"{family} is no longer exposed: change README.md and the rules reading it too"
    assert families[family] == (kind, tuple(sorted(labels))), (
        f"{family}: exposed as {families[family]}, README.md says {(kind, labels)}")


@pytest.mark.parametrize("family", sorted(CONTRACT))
def test_the_readme_states_each_family_as_the_contract_has_it(family):
    """The table above is the README's: each family appears there with these labels."""
    _, labels = CONTRACT[family]
    text = README.read_text(encoding="utf-8")
    if labels:
        assert re.search(re.escape(family) + r"\{" + r",\s*".join(labels) + r"\}", text), family
    else:
        assert f"`{family}`" in text, family


def test_nothing_else_is_exposed_by_these_classes():
    registry = CollectorRegistry()
    every_metric(registry)
    assert set(exposed(registry)) == set(CONTRACT)


@pytest.mark.parametrize("family", sorted(MULTIPROCESS_MODE))
def test_shipper_gauges_combine_processes_as_documented(family):
    shipper = every_metric(CollectorRegistry())
    gauge = {"log_shipper_connected": shipper.connected, "log_shipper_buffered_bytes": shipper.buffered}[family]
    assert gauge._multiprocess_mode == MULTIPROCESS_MODE[family]
