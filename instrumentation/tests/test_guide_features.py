"""What the monitoring guide's apps did, kept: request start/failure logs with the client
IP (behind trusted proxies), a rotating log file, the business counters by their names
with a bounded `type`, slow queries from 1 s (its manual spans: test_tracing.py)."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
from ecs_logging import StdlibFormatter
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from platform_observability import instrument_app
from platform_observability.asgi import client_ip, trusted_networks
from platform_observability.logs import CorrelationFilter, configure_logging
from platform_observability.metrics import BusinessMetrics, HttpMetrics


# --------------------------------------------------------------------------- request logs


@pytest.fixture
def access_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StdlibFormatter())
    handler.addFilter(CorrelationFilter("svc"))
    logger = logging.getLogger("platform_observability.access")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.handlers[:] = []
    logger.propagate = True


def app_with(registry, **options) -> FastAPI:
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    def item(item_id: int):
        return {}

    @app.get("/api/fail")
    def fail():
        raise RuntimeError("boom " + "x")

    instrument_app(app, metrics=HttpMetrics(registry), access_log=True, **options)
    return app


def test_requests_log_start_and_completion_with_the_client_ip(registry, access_lines):
    TestClient(app_with(registry)).get("/api/items/3", headers={"X-Request-ID": "r-1"})
    started, completed = access_lines()
    assert started["message"] == "request started" and completed["message"] == "request completed"
    for doc in (started, completed):
        assert doc["http"]["request"]["id"] == "r-1"
        assert doc["client"]["ip"] == "testclient"          # Starlette's test client peer
        assert doc["url"]["path"] == "/api/items/3"
    assert completed["http"]["response"]["status_code"] == 200
    assert completed["event"]["duration"] > 0


def test_a_failing_request_logs_the_exception(registry, access_lines):
    client = TestClient(app_with(registry), raise_server_exceptions=False)
    assert client.get("/api/fail").status_code == 500
    failed = [d for d in access_lines() if d["message"] == "request failed"]
    assert len(failed) == 1
    assert failed[0]["log.level"] == "error"
    assert failed[0]["error"]["type"] == "RuntimeError" and failed[0]["error"]["message"] == "boom x"
    assert "in fail" in failed[0]["error"]["stack_trace"]  # the route's own frame


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 5000), "headers": headers}


def test_client_ip_believes_forwarded_addresses_only_from_trusted_proxies():
    proxies = trusted_networks(["10.0.0.0/8", "192.0.2.7"])
    # No trusted proxy: the peer, whatever the header claims.
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), ()) == "203.0.113.9"
    assert client_ip(scope("203.0.113.9", "198.51.100.1"), proxies) == "203.0.113.9"
    # Behind trusted proxies: the right-most address no trusted proxy wrote.
    assert client_ip(scope("10.1.2.3", "198.51.100.1"), proxies) == "198.51.100.1"
    assert client_ip(scope("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.0.2.7"), proxies) == "198.51.100.1"
    # Only trusted hops: the left-most; no header: the proxy itself.
    assert client_ip(scope("10.1.2.3", "10.9.9.9"), proxies) == "10.9.9.9"
    assert client_ip(scope("10.1.2.3"), proxies) == "10.1.2.3"
    # Garbage from a proxy we trust is no address: the peer.
    assert client_ip(scope("10.1.2.3", "not-an-ip"), proxies) == "10.1.2.3"


def test_trusted_proxies_from_the_environment(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", "172.16.0.0/12, 127.0.0.1")
    assert [str(n) for n in trusted_networks(None)] == ["172.16.0.0/12", "127.0.0.1/32"]
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert trusted_networks(None) == ()


# --------------------------------------------------------------------------- rotating file


def test_log_file_rotates_at_its_size(tmp_path, monkeypatch):
    path = tmp_path / "app.log"
    monkeypatch.delenv("LOGSTASH_ADDRESS", raising=False)
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging("svc", stream=io.StringIO(), log_file=str(path), log_file_max_bytes=2000,
                          log_file_backups=2)
        for i in range(100):
            logging.getLogger("rotating").info("line %d %s", i, "x" * 40)
        for handler in root.handlers:
            handler.flush()
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == ["app.log", "app.log.1", "app.log.2"], files
        assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
        last = json.loads(path.read_text().splitlines()[-1])
        assert last["message"].startswith("line 99 ") and last["service"]["name"] == "svc"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_log_file_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "env.log"
    monkeypatch.setenv("LOG_FILE", str(path))
    monkeypatch.delenv("LOGSTASH_ADDRESS", raising=False)
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        configure_logging("svc", stream=io.StringIO())
        logging.getLogger("env").warning("to the file")
        assert "to the file" in path.read_text()
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


# --------------------------------------------------------------------------- business counters


def exposition(registry) -> str:
    return generate_latest(registry).decode()


def test_business_counters_carry_the_guides_names():
    registry = CollectorRegistry()
    metrics = BusinessMetrics(registry, document_types=["summary"])
    metrics.lectures_uploaded.inc()
    metrics.questions_asked.inc()
    metrics.documents_generated.labels("summary").inc()
    metrics.flashcards_created.inc()
    text = exposition(registry)
    for line in ("lectures_uploaded_total 1.0", "questions_asked_total 1.0",
                 'documents_generated_total{type="summary"} 1.0', "flashcards_created_total 1.0"):
        assert line in text, text


def test_document_type_from_a_request_path_cannot_grow_the_series():
    registry = CollectorRegistry()
    metrics = BusinessMetrics(registry, document_types=["summary", "quiz"])
    for _ in range(1000):
        metrics.documents_generated.labels(uuid.uuid4().hex).inc()
    metrics.documents_generated.labels("quiz").inc()
    series = [line for line in exposition(registry).splitlines() if line.startswith("documents_generated_total{")]
    assert sorted(series) == ['documents_generated_total{type="other"} 1000.0',
                              'documents_generated_total{type="quiz"} 1.0']


def test_document_types_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOCUMENT_TYPES", "summary, flashcards ,")
    registry = CollectorRegistry()
    metrics = BusinessMetrics(registry)
    assert metrics.documents_generated.allowed == {"summary", "flashcards"}
    metrics.documents_generated.labels("flashcards").inc()
    assert 'documents_generated_total{type="flashcards"} 1.0' in exposition(registry)


# --------------------------------------------------------------------------- slow queries


class Clock:
    """perf_counter for the slow-query hooks: each statement takes `seconds`."""

    def __init__(self, seconds: float):
        self.now, self.seconds, self.calls = 1000.0, seconds, 0

    def perf_counter(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:
            self.now += self.seconds
        return self.now


def slow_records(caplog, seconds: float, monkeypatch, env: str | None = None) -> list:
    sa = pytest.importorskip("sqlalchemy")
    import platform_observability.sqlalchemy as slow

    if env is None:
        monkeypatch.delenv("SLOW_QUERY_THRESHOLD_MS", raising=False)
    else:
        monkeypatch.setenv("SLOW_QUERY_THRESHOLD_MS", env)
    monkeypatch.setattr(slow, "time", Clock(seconds))
    engine = sa.create_engine("sqlite://")
    slow.log_slow_queries(engine)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="platform_observability.slow_query"):
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
    return [r for r in caplog.records if r.name == "platform_observability.slow_query"]


def test_slow_queries_are_those_over_one_second_by_default(caplog, monkeypatch):
    assert not slow_records(caplog, 0.999, monkeypatch)
    logged = slow_records(caplog, 1.001, monkeypatch)
    assert len(logged) == 1 and abs(getattr(logged[0], "event.duration") - 1_001_000_000) < 1000


def test_a_failing_statement_leaves_no_start_time_behind(caplog):
    """The error hook pops the start time the failed statement pushed: a connection that
    sees many errors keeps no growing stack, and the next statement times itself."""
    sa = pytest.importorskip("sqlalchemy")
    from platform_observability.sqlalchemy import log_slow_queries

    engine = sa.create_engine("sqlite://")
    log_slow_queries(engine, threshold_ms=60_000)
    with engine.connect() as c:
        for _ in range(50):
            with pytest.raises(sa.exc.OperationalError):
                c.execute(sa.text("SELECT * FROM no_such_table"))
        c.execute(sa.text("SELECT 1"))
        assert c.info.get("_obs_query_start") == []
