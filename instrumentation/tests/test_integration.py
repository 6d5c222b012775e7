"""Against real servers started by the fixtures: Redis (broker, active users) and
PostgreSQL (slow query log), and a real Celery prefork worker."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from conftest import free_port, subprocess_env, value, wait_for_port

pytestmark = pytest.mark.integration

TASKS = textwrap.dedent("""
    import os
    from celery import Celery
    from platform_observability.celery import instrument_celery

    app = Celery("it", broker=os.environ["BROKER_URL"])
    app.conf.worker_hijack_root_logger = False
    # a queue only the routing names: no worker consumes it here, the app never lists it
    app.conf.task_routes = {"it_routed": {"queue": "routed"}}

    @app.task(name="it_ok")
    def ok():
        return os.getpid()

    @app.task(name="it_bad")
    def bad():
        raise RuntimeError("failing on purpose")

    @app.task(name="it_hard_limit", time_limit=1)
    def hard_limit():
        import time
        time.sleep(30)  # the pool kills this process after 1 s

    @app.task(name="it_lost")
    def lost():
        os._exit(1)  # the pool process dies under the task

    @app.task(name="it_routed")
    def routed():
        return 1

    instrument_celery(app, metrics_port=int(os.environ["METRICS_PORT"]), metrics_addr="127.0.0.1")
""")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_prefork_children_metrics_reach_the_worker_metrics(tmp_path, redis_url):
    (tmp_path / "tasksapp.py").write_text(TASKS)
    mp = tmp_path / "mp"
    mp.mkdir()
    port = free_port()
    env = subprocess_env(str(tmp_path), BROKER_URL=redis_url.replace("/0", "/1"), METRICS_PORT=str(port),
                         PROMETHEUS_MULTIPROC_DIR=str(mp))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasksapp", "worker", "--pool", "prefork", "--concurrency", "2",
         "--loglevel", "WARNING", "--queues", "it", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=tmp_path, env=env, stdout=(tmp_path / "worker.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        try:
            wait_for_port(port, timeout=60, proc=worker)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}; the worker said:\n{(tmp_path / 'worker.log').read_text()[-3000:]}")
        from celery import Celery

        producer = Celery("producer", broker=env["BROKER_URL"])
        for _ in range(6):
            producer.send_task("it_ok", queue="it")
        for _ in range(3):
            producer.send_task("it_bad", queue="it")
        producer.send_task("it_hard_limit", queue="it")
        producer.send_task("it_lost", queue="it")
        for _ in range(4):
            producer.send_task("it_routed", queue="routed")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = scrape(port)
            if (value(text, "celery_task_duration_seconds_count", task_name="it_ok") == 6
                    and value(text, "celery_task_duration_seconds_count", task_name="it_bad") == 3
                    and value(text, "celery_task_failures_total", task_name="it_hard_limit") == 1
                    and value(text, "celery_task_failures_total", task_name="it_lost") == 1):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"task metrics never reached the worker's /metrics:\n{text}\n"
                        f"{(tmp_path / 'worker.log').read_text()[-3000:]}")
        assert value(text, "celery_task_failures_total", task_name="it_bad") == 3
        assert value(text, "celery_task_failures_total", task_name="it_ok") is None
        # failures the main process reports (no task_postrun in a killed pool process)
        # have their run counted too, the one of the hard limit for about its second
        assert value(text, "celery_task_duration_seconds_count", task_name="it_hard_limit") == 1
        assert 0.9 <= value(text, "celery_task_duration_seconds_sum", task_name="it_hard_limit") < 10
        assert value(text, "celery_task_duration_seconds_count", task_name="it_lost") == 1
        # the worker exports the depth of every queue it knows, without the app asking
        assert value(text, "celery_queue_length", queue="it") == 0  # the queue it consumes
        assert value(text, "celery_queue_length", queue="celery") == 0  # the default queue
        deadline = time.monotonic() + 20  # polled every 5 s
        while value(scrape(port), "celery_queue_length", queue="routed") != 4:  # named only by task_routes
            assert time.monotonic() < deadline, scrape(port)
            time.sleep(0.5)
        text = scrape(port)  # seconds later: each failure still counted once, with its run
        for name in ("it_hard_limit", "it_lost"):
            assert value(text, "celery_task_failures_total", task_name=name) == 1
            assert value(text, "celery_task_duration_seconds_count", task_name=name) == 1
        # the tasks ran in the pool's children, not in the process serving /metrics
        assert len({p.name for p in mp.glob("*.db")}) >= 2
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_queue_length_is_the_queued_depth(redis_url):
    from celery import Celery

    from platform_observability.celery import QueueLengthCollector

    app = Celery("ql", broker=redis_url.replace("/0", "/2"))
    app.conf.broker_transport_options = {"priority_steps": list(range(10))}
    for i in range(7):
        app.send_task("anything", queue="backlog", priority=i % 3 * 4)
    collector = QueueLengthCollector(app, queues=["backlog", "empty"])
    assert collector.poll() == {"backlog": 7, "empty": 0}
    family = list(collector.collect())[0]
    collector.stop()
    assert family.name == "celery_queue_length"
    assert {s.labels["queue"]: s.value for s in family.samples} == {"backlog": 7, "empty": 0}


def test_queue_length_keeps_last_value_and_scrapes_fast_when_broker_down(redis_url):
    from celery import Celery

    from platform_observability.celery import QueueLengthCollector

    app = Celery("ql2", broker=redis_url.replace("/0", "/3"))
    app.send_task("anything", queue="q")
    collector = QueueLengthCollector(app, queues=["q"], interval=0.1, timeout=0.5)
    list(collector.collect())
    assert collector.values == {"q": 1}
    app.conf.broker_url = app.conf.broker_read_url = f"redis://127.0.0.1:{free_port()}/0"  # the broker is gone
    errors = collector.errors
    deadline = time.monotonic() + 10
    while collector.errors == errors and time.monotonic() < deadline:
        time.sleep(0.05)
    # The scrape reads cached values: the broker is polled in the collector's own thread
    # only, never in the one that serves /metrics.
    scrape_thread, polled_by = threading.get_ident(), []
    poll = collector.poll
    collector.poll = lambda: polled_by.append(threading.get_ident()) or poll()
    family = list(collector.collect())[0]
    time.sleep(0.3)  # a few background polls
    assert polled_by and scrape_thread not in polled_by
    assert collector.errors > errors
    assert [s.value for s in family.samples] == [1]
    collector.stop()


def test_active_users_shared_through_redis(redis_url):
    import redis

    from platform_observability.context import RedisActiveUsers
    from platform_observability.metrics import ActiveUsersCollector

    client = redis.Redis.from_url(redis_url)
    a = RedisActiveUsers(client, key="au-test", window=60)
    b = RedisActiveUsers(client, key="au-test", window=60)  # another process's tracker
    for user in ("u1", "u2", "u1"):
        a.seen(user)
    b.seen("u2")
    b.seen("u3")
    assert a.count() == 3 == b.count()
    family = list(ActiveUsersCollector(a).collect())[0]
    assert family.name == "active_users" and family.samples[0].value == 3
    client.zadd("au-test", {"old": time.time() - 120})
    assert a.count() == 3


def test_slow_queries_logged_from_postgres(postgres_url, caplog):
    import sqlalchemy as sa

    from platform_observability.sqlalchemy import log_slow_queries

    engine = sa.create_engine(postgres_url.replace("postgresql:", "postgresql+psycopg2:"))
    log_slow_queries(engine, threshold_ms=100)
    with caplog.at_level(logging.WARNING, logger="platform_observability.slow_query"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
            conn.execute(sa.text("SELECT pg_sleep(0.2)")).scalar()
            with pytest.raises(sa.exc.DBAPIError):
                conn.execute(sa.text("SELECT no_such_column FROM pg_class"))
    slow = [r for r in caplog.records if r.name == "platform_observability.slow_query"]
    assert len(slow) == 1
    record = slow[0]
    assert "pg_sleep" in getattr(record, "db.statement")
    assert getattr(record, "db.system") == "postgresql"
    assert getattr(record, "event.duration") >= 200_000_000
    engine.dispose()


def test_tracing_spans_for_postgres_and_redis(postgres_url, redis_url, caplog):
    pytest.importorskip("opentelemetry.sdk")
    import redis
    import sqlalchemy as sa
    from packaging.version import Version

    from tracing_helpers import clear_spans, exporter, finished_spans

    from platform_observability.tracing import configure_tracing

    # opentelemetry-instrumentation-sqlalchemy declares "sqlalchemy >= 1.0.0, < 2.1.0"
    # (its package.py) and does nothing on other versions: then it must say it is off.
    sql_traced = Version(sa.__version__) < Version("2.1")
    engine = sa.create_engine(postgres_url.replace("postgresql:", "postgresql+psycopg2:"))
    with caplog.at_level(logging.WARNING, logger="platform_observability.tracing"):
        enabled = configure_tracing("it", exporter=exporter(), engine=engine, redis=True)
    assert enabled["redis"] and enabled["sqlalchemy"] is sql_traced
    assert sql_traced or any("sqlalchemy instrumentation off" in r.getMessage() for r in caplog.records)
    clear_spans()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 42")).scalar()
    redis.Redis.from_url(redis_url).ping()
    spans = finished_spans()
    systems = {s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in spans}
    assert "redis" in systems
    assert ("postgresql" in systems) is sql_traced, [(s.name, dict(s.attributes)) for s in spans]
    engine.dispose()
