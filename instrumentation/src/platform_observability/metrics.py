"""The metrics the bundle's alerts and dashboards read, and the /metrics exposition.

The names and label sets here are a contract with templates/prometheus/rules/platform.yml.j2:
rename one and an alert silently stops matching. tests/test_metrics.py pins them.

Multi-process servers (gunicorn/uvicorn workers, Celery prefork): set
PROMETHEUS_MULTIPROC_DIR to an empty, writable directory *before* the processes start
(prometheus_client reads it when it is first imported); every process then writes its
values there and `render_latest()` aggregates them. See
https://prometheus.github.io/client_python/multiprocess/
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

# Latency buckets in seconds: fine below 100 ms where APIs live, up to 10 s for the tail.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "HttpMetrics",
    "BusinessMetrics",
    "TaskMetrics",
    "http_metrics",
    "business_metrics",
    "task_metrics",
    "multiprocess_enabled",
    "render_latest",
    "register_live_collector",
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


class BusinessMetrics:
    """The platform's domain counters (the seed's names, made Prometheus-conformant)."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY):
        self.lectures_uploaded = Counter("lectures_uploaded_total", "Lectures uploaded", registry=registry)
        self.questions_asked = Counter("questions_asked_total", "Questions asked", registry=registry)
        self.documents_generated = Counter(
            "documents_generated_total", "Documents generated, by document type", ["type"], registry=registry,
        )
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


# Gauges whose value is read at scrape time in the scraping process (queue depth from the
# broker, active users from a shared store). They are kept out of the multiprocess files:
# a per-process copy of a value that lives outside the process is meaningless.
_live = CollectorRegistry(auto_describe=False)


def register_live_collector(collector) -> None:
    _live.register(collector)


def unregister_live_collector(collector) -> None:
    try:
        _live.unregister(collector)
    except KeyError:
        pass


def render_latest(registry: CollectorRegistry | None = None) -> bytes:
    """The exposition text for /metrics: this process's metrics, or with
    PROMETHEUS_MULTIPROC_DIR set, the aggregate of every process; then the live gauges."""
    if registry is None:
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
    return generate_latest(registry) + generate_latest(_live)


def live_registry() -> CollectorRegistry:
    return _live


class ActiveUsersCollector:
    """active_users: users seen within a window, counted by a tracker at scrape time."""

    def __init__(self, tracker):
        self.tracker = tracker
        self._last = 0.0

    def collect(self):
        try:
            self._last = float(self.tracker.count())
        except Exception as exc:  # never fail a scrape: keep the last value
            log.warning("active_users: %s; keeping the last value", exc)
        yield GaugeMetricFamily("active_users", "Users active within the tracking window", value=self._last)
