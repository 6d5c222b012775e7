"""PROMETHEUS_MULTIPROC_DIR: requests served by several processes all reach /metrics."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import subprocess_env, value

WORKER = textwrap.dedent("""
    import sys
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from platform_observability import instrument_app

    app = FastAPI()

    @app.get("/api/items/{item_id}")
    def item(item_id: int):
        return {}

    instrument_app(app)
    client = TestClient(app)
    for i in range(int(sys.argv[1])):
        client.get(f"/api/items/{i}")
    if len(sys.argv) > 2:
        sys.stdout.write(client.get("/metrics").text)
""")


def test_metrics_of_every_process_are_aggregated(tmp_path):
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(n)], env=env) for n in (10, 20, 30)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert len(list(tmp_path.glob("*.db"))) >= 3  # one file per process and metric type
    # a fourth process serves /metrics: it sees all 60 requests (and its own scrape)
    out = subprocess.run([sys.executable, "-c", WORKER, "0", "scrape"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert value(out, "http_requests_total", method="GET", endpoint="/api/items/{item_id}", status="200") == 60
    assert value(out, "http_request_duration_seconds_count", method="GET", endpoint="/api/items/{item_id}") == 60
    assert "http_request_duration_seconds_bucket" in out
