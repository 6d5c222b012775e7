"""The demo platform of the live tests (tests/platform/app), run here on the host
against the private Redis and PostgreSQL: its routes answer as the live suite expects
and its /metrics carry every name the alerts read."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, subprocess_env, value, wait_for_port

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "platform" / "app"


def call(method: str, url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def platform(tmp_path, redis_url, postgres_url):
    if not APP.is_dir():
        pytest.skip("tests/platform/app is not in this checkout")
    pytest.importorskip("uvicorn")
    import redis

    redis.Redis.from_url(redis_url.replace("/0", "/5")).flushdb()  # no tasks left from another test
    api_port, worker_port = free_port(), free_port()
    env = subprocess_env(str(APP), BROKER_URL=redis_url.replace("/0", "/5"), DATABASE_URL=postgres_url,
                         METRICS_PORT=str(worker_port), SLOW_QUERY_THRESHOLD_MS="0", DOCUMENT_TYPES="summary")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs = tmp_path / "api.log"
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "api:app", "--host", "127.0.0.1", "--port",
                            str(api_port), "--no-access-log"], cwd=tmp_path, env=env,
                           stdout=logs.open("w"), stderr=subprocess.STDOUT)
    procs = [api]
    try:
        wait_for_port(api_port, timeout=60, proc=api)
        yield {"api": f"http://127.0.0.1:{api_port}", "env": env, "procs": procs, "worker_port": worker_port,
               "logs": logs, "cwd": tmp_path}
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_routes_metrics_and_logs(platform):
    api = platform["api"]
    assert call("GET", f"{api}/health") == (200, json.dumps({"status": "ok"}, separators=(",", ":")))
    status, body = call("GET", f"{api}/api/items/1", {"X-User-ID": "alice", "X-Request-ID": "demo-1"})
    assert status == 200 and json.loads(body) == {"item": 1, "next": 2}
    assert call("GET", f"{api}/api/fail")[0] == 503
    assert call("GET", f"{api}/nowhere")[0] == 404
    for name in ("generate_document", "broken_task", "generate_document"):
        assert call("POST", f"{api}/api/tasks/{name}")[0] == 200
    assert call("POST", f"{api}/api/tasks/nope")[0] == 404
    status, text = call("GET", f"{api}/metrics")
    assert status == 200
    assert value(text, "http_requests_total", method="GET", endpoint="/api/items/{item_id}", status="200") == 1
    assert value(text, "http_requests_total", method="GET", endpoint="/api/fail", status="503") == 1
    assert value(text, "http_requests_total", endpoint="unmatched", status="404") == 1
    # the routes sit in routers with prefixes: the templates are the full paths
    assert value(text, "http_requests_total", method="POST", endpoint="/api/tasks/{name}", status="200") == 3
    assert value(text, "http_requests_total", method="POST", endpoint="/api/tasks/{name}", status="404") == 1
    assert value(text, "http_requests_total", method="GET", endpoint="/health", status="200") == 1
    assert value(text, "http_request_duration_seconds_bucket", endpoint="/api/fail", le="+Inf") == 1
    assert value(text, "active_users") == 1
    assert value(text, "celery_queue_length", queue="celery") == 3  # no worker yet: all three wait
    lines = [json.loads(line) for line in platform["logs"].read_text().splitlines() if line.startswith("{")]
    item_logs = [d for d in lines if d.get("http", {}).get("request", {}).get("id") == "demo-1"]
    # "request started" is logged before the dependency knows the user; every line after it
    # carries the user.
    started = [d for d in item_logs if d.get("message") == "request started"]
    assert len(started) == 1 and "user" not in started[0]
    after = [d for d in item_logs if d not in started]
    assert after and all(d["user"]["id"] == "alice" for d in after)
    assert any(d["log"]["logger"] == "platform_observability.slow_query" for d in item_logs)  # threshold 0
    assert any(d.get("url", {}).get("path") == "/api/items/1"
               and d["http"].get("response", {}).get("status_code") == 200 for d in item_logs)


def test_worker_serves_task_metrics(platform):
    api = platform["api"]
    for name in ("generate_document", "broken_task"):
        call("POST", f"{api}/api/tasks/{name}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", "solo", "--loglevel", "ERROR"],
        cwd=platform["cwd"], env=platform["env"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    platform["procs"].append(worker)
    wait_for_port(platform["worker_port"], timeout=60, proc=worker)
    deadline = time.monotonic() + 30
    while True:
        _, text = call("GET", f"http://127.0.0.1:{platform['worker_port']}/metrics")
        if value(text, "celery_task_failures_total", task_name="broken_task") == 1 and \
                value(text, "celery_task_duration_seconds_count", task_name="generate_document") == 1:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert value(text, "celery_task_duration_seconds_count", task_name="broken_task") == 1
    assert value(text, "documents_generated_total", type="summary") == 1
    # The worker reports the broker's queue too (the bundle takes the max per queue): drained,
    # once its collector polls again (every 5 s; a scrape reads the last poll).
    deadline = time.monotonic() + 30
    while value(text, "celery_queue_length", queue="celery") != 0:
        assert time.monotonic() < deadline, text
        time.sleep(0.5)
        _, text = call("GET", f"http://127.0.0.1:{platform['worker_port']}/metrics")
    deadline = time.monotonic() + 20
    while value(call("GET", f"{api}/metrics")[1], "celery_queue_length", queue="celery") != 0:
        assert time.monotonic() < deadline, "the queue never drained in celery_queue_length"
        time.sleep(0.5)
