"""The contract (tests/contract/guide.py) against what the running Prometheus and
Alertmanager loaded. Where the VALUES overlays of this stack change a promise on purpose
(tests/values/live.yaml shortens `for` and intervals so alerts travel in seconds), that
promise is reported as skipped, naming the overlay; every other one must hold live."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "config"))
sys.path.insert(0, str(ROOT / "tests" / "contract"))

import contract  # noqa: E402
import guide  # noqa: E402
from alerting import render_to  # noqa: E402
from bundle import DEFAULT_VALUES  # noqa: E402
from bundle.cli import load  # noqa: E402

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def renders(stack_values, tmp_path_factory) -> dict[str, Path]:
    """config/ of the defaults and of the values this stack runs with, to tell which
    promises the overlays change."""
    defaults, _ = load([DEFAULT_VALUES])
    return {"defaults": render_to(defaults, tmp_path_factory.mktemp("defaults") / "config"),
            "in use": render_to(stack_values, tmp_path_factory.mktemp("in-use") / "config")}


def skip_if_overlay_changes(renders, overlays, what: str, fact) -> None:
    if fact(renders["defaults"]) != fact(renders["in use"]):
        pytest.skip(f"{what}: changed on purpose by {', '.join(str(p.relative_to(ROOT)) for p in overlays)}")


def am_config(config: Path) -> dict:
    return yaml.safe_load((config / "alertmanager" / "alertmanager.yml").read_text())


@pytest.fixture(scope="module")
def loaded_am(alertmanager, tmp_path_factory) -> Path:
    """The configuration the running Alertmanager loaded, as a file amtool can read."""
    work = tmp_path_factory.mktemp("loaded-alertmanager")
    (work / "alertmanager.yml").write_text(alertmanager.get("/api/v2/status")["config"]["original"])
    return work


@pytest.mark.parametrize("name", sorted(guide.ALERTS))
def test_loaded_alert_is_the_guides(name, prometheus, renders, overlays, tool, tmp_path):
    skip_if_overlay_changes(renders, overlays, f"{name}", lambda c: contract.rendered_rules(
        c / "prometheus" / "rules").get(name))
    rules = contract.live_rules(prometheus)
    assert name in rules, contract.deliberate(f"the running Prometheus has no {name} rule.", guide.ALERT_DOC)
    contract.check_alert(name, rules[name], tool("promtool"), tmp_path)


def test_loaded_routing_sends_each_severity_to_the_guides_receivers(loaded_am, tool):
    """The overlays may add receivers (the live values add a pager); among the guide's
    receivers, each severity must reach exactly the guide's."""
    contract.check_routing(tool("amtool"), loaded_am, only=set(guide.RECEIVERS))


def test_loaded_receivers_and_timings_are_the_guides(loaded_am, renders, overlays):
    config = yaml.safe_load((loaded_am / "alertmanager.yml").read_text())
    contract.check_receivers(config)
    skip_if_overlay_changes(renders, overlays, "route timings", lambda c: {
        k: am_config(c)["route"].get(k) for k in guide.TIMINGS})
    contract.check_timings(config)


def test_loaded_mail_settings_use_smtp_auth(loaded_am, renders):
    config = yaml.safe_load((loaded_am / "alertmanager.yml").read_text())
    kept = tuple(k for k in guide.SMTP if am_config(renders["defaults"])["global"].get(f"smtp_{k}")
                 == am_config(renders["in use"])["global"].get(f"smtp_{k}"))
    assert "auth_password_file" in kept
    contract.check_smtp_auth(config, kept)


def test_every_inhibit_rule_behaves_as_documented_in_the_running_alertmanager(alertmanager):
    contract.check_inhibition(alertmanager.base)


def test_loaded_rule_groups_run_every_30s(prometheus, renders, overlays):
    skip_if_overlay_changes(renders, overlays, "the rule evaluation interval", lambda c: yaml.safe_load(
        (c / "prometheus" / "prometheus.yml").read_text())["global"]["evaluation_interval"])
    groups = prometheus.get("/api/v1/rules")["data"]["groups"]
    contract.check_rule_intervals({f"{g['file']}:{g['name']}": g["interval"] for g in groups})


def test_running_prometheus_keeps_30_days(prometheus):
    flags = prometheus.get("/api/v1/status/flags")["data"]
    contract.check_retention(flags["storage.tsdb.retention.time"], flags["storage.tsdb.retention.size"])
