"""The metrics the bundle's alerts and dashboards read, and the /metrics exposition.

The names and label sets here are a contract with templates/prometheus/rules/platform.yml.j2:
rename one and an alert silently stops matching. The tests pin them (test_http_metrics.py,
test_celery_metrics.py, test_logs.py for the log shipper's own metrics).

Multi-process servers (gunicorn/uvicorn workers, Celery prefork): set
PROMETHEUS_MULTIPROC_DIR to an empty, writable directory *before* the processes start
(prometheus_client reads it when it is first imported); every process then writes its
values there and `exposition_registry()` aggregates them. See
https://prometheus.github.io/client_python/multiprocess/
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

# Latency buckets in seconds: fine below 100 ms where APIs live, up to 10 s for the tail.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

__all__ = [
    "HttpMetrics",
    "BusinessMetrics",
    "TaskMetrics",
    "ShipperMetrics",
    "http_metrics",
    "business_metrics",
    "task_metrics",
    "multiprocess_enabled",
    "exposition_registry",
    "shipper_metrics",
    "register_live_collector",
    "unregister_live_collector",
    "ActiveUsersCollector",
]


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir"))


class HttpMetrics:
    """http_requests_total{method, endpoint, status}, http_request_duration_seconds{method, endpoint}."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, buckets: Iterable[float] = HTTP_BUCKETS):
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered, by route template and status code",
            ["method", "endpoint", "status"], registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "Time from request start to the last byte of the response",
            ["method", "endpoint"], buckets=tuple(buckets), registry=registry,
        )


class BoundedLabel:
    """A counter of one label whose values come from a fixed set: `labels(value)` counts any
    other value (one taken from a request path, say) as OTHER, so a client cannot make the
    series grow without bound."""

    OTHER = "other"

    def __init__(self, counter: Counter, allowed: Iterable[str]):
        self.counter = counter
        self.allowed = frozenset(allowed)

    def labels(self, value: str):
        return self.counter.labels(value if value in self.allowed else self.OTHER)


def document_types_from_environment() -> tuple[str, ...]:
    """DOCUMENT_TYPES: the document types the app generates, comma separated."""
    return tuple(t.strip() for t in os.environ.get("DOCUMENT_TYPES", "").split(",") if t.strip())


class BusinessMetrics:
    """The platform's domain counters (the seed's names, made Prometheus-conformant).
    documents_generated_total{type} takes its `type` from `document_types` (default: the
    DOCUMENT_TYPES environment variable); any other value is counted as "other"."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, document_types: Iterable[str] | None = None):
        self.lectures_uploaded = Counter("lectures_uploaded_total", "Lectures uploaded", registry=registry)
        self.questions_asked = Counter("questions_asked_total", "Questions asked", registry=registry)
        self.documents_generated = BoundedLabel(Counter(
            "documents_generated_total", "Documents generated, by document type", ["type"], registry=registry,
        ), document_types_from_environment() if document_types is None else document_types)
        self.flashcards_created = Counter("flashcards_created_total", "Flashcards created", registry=registry)


class TaskMetrics:
    """celery_task_duration_seconds{task_name} (every finished task), celery_task_failures_total{task_name}."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY, buckets: Iterable[float] = TASK_BUCKETS):
        self.duration = Histogram(
            "celery_task_duration_seconds", "Run time of finished Celery tasks, successful or not",
            ["task_name"], buckets=tuple(buckets), registry=registry,
        )
        self.failures = Counter(
            "celery_task_failures_total", "Celery tasks that raised", ["task_name"], registry=registry,
        )


class ShipperMetrics:
    """The log shipper's own health, by destination (host:port):
    log_shipper_dropped_lines_total{destination, reason} (memory_full: the in-memory
    buffer's bytes were used up, no disk buffer; buffer_full: the disk buffer's bytes were
    used up; unencodable: the record could not be formatted),
    log_shipper_sent_lines_total{destination},
    log_shipper_connected{destination} (1 while a connection is up; the least over live
    processes with PROMETHEUS_MULTIPROC_DIR),
    log_shipper_buffered_bytes{destination, buffer} (memory, disk: lines waiting)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY):
        self.dropped = Counter(
            "log_shipper_dropped_lines_total", "Log lines the shipper dropped, never to be sent",
            ["destination", "reason"], registry=registry,
        )
        self.sent = Counter(
            "log_shipper_sent_lines_total", "Log lines the shipper handed to the destination's TCP connection",
            ["destination"], registry=registry,
        )
        self.connected = Gauge(
            "log_shipper_connected", "1 while the log shipper holds a connection to its destination",
            ["destination"], registry=registry, multiprocess_mode="livemin",
        )
        self.buffered = Gauge(
            "log_shipper_buffered_bytes", "Bytes of log lines waiting to be sent, in memory or in the disk buffer",
            ["destination", "buffer"], registry=registry, multiprocess_mode="livesum",
        )


_lock = threading.Lock()
_singletons: dict[str, object] = {}


def _singleton(name: str, factory: Callable[[], object]):
    # One instance per process on the default registry: prometheus_client refuses to
    # register a name twice, and an app may call instrument_*() from several places.
    with _lock:
        if name not in _singletons:
            _singletons[name] = factory()
        return _singletons[name]


def http_metrics() -> HttpMetrics:
    return _singleton("http", HttpMetrics)  # type: ignore[return-value]


def business_metrics() -> BusinessMetrics:
    return _singleton("business", BusinessMetrics)  # type: ignore[return-value]


def task_metrics() -> TaskMetrics:
    return _singleton("task", TaskMetrics)  # type: ignore[return-value]


def shipper_metrics() -> ShipperMetrics:
    return _singleton("shipper", ShipperMetrics)  # type: ignore[return-value]


# Gauges whose value is read at scrape time in the scraping process (queue depth from the
# broker, active users from a shared store): collectors with a describe(), registered on
# the default registry and, with PROMETHEUS_MULTIPROC_DIR, on the multiprocess exposition
# registry. They never reach the multiprocess files: a per-process copy of a value that
# lives outside the process is meaningless.
_live_collectors: list = []
_multiprocess_registry: CollectorRegistry | None = None


def register_live_collector(collector) -> None:
    with _lock:
        REGISTRY.register(collector)
        _live_collectors.append(collector)
        if _multiprocess_registry is not None:
            _multiprocess_registry.register(collector)


def unregister_live_collector(collector) -> None:
    with _lock:
        if collector in _live_collectors:
            _live_collectors.remove(collector)
            REGISTRY.unregister(collector)
            if _multiprocess_registry is not None:
                _multiprocess_registry.unregister(collector)


def exposition_registry() -> CollectorRegistry:
    """What /metrics serves, for prometheus_client's make_asgi_app / start_http_server:
    the default registry, or with PROMETHEUS_MULTIPROC_DIR set a registry aggregating
    every process's files (read at each scrape); either with the live gauges."""
    global _multiprocess_registry
    if not multiprocess_enabled():
        return REGISTRY
    with _lock:
        if _multiprocess_registry is None:
            from prometheus_client import multiprocess

            try:  # name[] filtering reaches the undescribed MultiProcessCollector (0.22+)
                registry = CollectorRegistry(support_collectors_without_names=True)
            except TypeError:
                registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            for collector in _live_collectors:
                registry.register(collector)
            _multiprocess_registry = registry
        return _multiprocess_registry


class ActiveUsersCollector:
    """active_users: users seen within a window, counted by a tracker at scrape time."""

    def __init__(self, tracker):
        self.tracker = tracker
        self._last = 0.0

    def describe(self):
        yield GaugeMetricFamily("active_users", "Users active within the tracking window")

    def collect(self):
        try:
            self._last = float(self.tracker.count())
        except Exception as exc:  # never fail a scrape: keep the last value
            log.warning("active_users: %s; keeping the last value", exc)
        yield GaugeMetricFamily("active_users", "Users active within the tracking window", value=self._last)
