"""What a user's CI runs: the example jobs of docs/ci/ call `make smoke` with the report
options and only variables make smoke reads, the GitHub summary step reads the JSON
report it writes; and the live level refuses a stack that is not a test stack."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from bundle.smoke.cli import ENV
from bundle.smoke.report import Report, Result, to_json

pytestmark = pytest.mark.unit

# What make smoke reads from the environment (README "Check a running stack").
KNOWN = ({f"SMOKE_{part}_URL" for part in ENV.values()}
         | {f"SMOKE_{part}_{what}" for part in ENV.values() for what in ("USERNAME", "PASSWORD")}
         | {"SMOKE_USERNAME", "SMOKE_PASSWORD", "SMOKE_GRAFANA_TOKEN", "SMOKE_APM_SECRET_TOKEN", "SMOKE_CA_FILE"})


@pytest.fixture(scope="module")
def github(root) -> dict:
    return yaml.safe_load((root / "docs/ci/github-actions-smoke.yml").read_text())


@pytest.fixture(scope="module")
def gitlab(root) -> dict:
    return yaml.safe_load((root / "docs/ci/gitlab-ci-smoke.yml").read_text())


def test_the_examples_run_make_smoke_with_junit_and_json(github, gitlab):
    steps = github["jobs"]["smoke"]["steps"]
    assert any(s.get("run", "").startswith('make smoke SMOKE_ARGS="--junit smoke.xml --json"') for s in steps)
    assert gitlab["smoke"]["script"] == ['make smoke SMOKE_ARGS="--junit smoke.xml --json" > smoke.json']
    assert gitlab["smoke"]["artifacts"]["reports"]["junit"] == "smoke.xml"
    assert gitlab["smoke"]["artifacts"]["when"] == "always"


def test_the_examples_set_only_variables_make_smoke_reads_and_credentials_from_secrets(root, github):
    env = github["jobs"]["smoke"]["env"]
    smoke_vars = {k for k in env if k.startswith("SMOKE_")}
    assert smoke_vars <= KNOWN, smoke_vars - KNOWN
    for name, value in env.items():
        if re.search(r"PASSWORD|TOKEN|USERNAME|PEM", name):
            assert value.startswith("${{ secrets."), name
        else:
            assert value.startswith("${{ vars."), name
    listed = set(re.findall(r"SMOKE_[A-Z_]+", (root / "docs/ci/gitlab-ci-smoke.yml").read_text())) - {"SMOKE_ARGS"}
    assert listed <= KNOWN, listed - KNOWN
    assert {f"SMOKE_{part}_URL" for part in ENV.values()} <= listed


def test_the_github_summary_step_reads_the_json_report(github, tmp_path):
    step = next(s for s in github["jobs"]["smoke"]["steps"] if s.get("name") == "Summary")
    report = Report(mode="remote", endpoints={})
    report.results = [Result("prometheus.targets", "t", "pass", "9 of 9 targets up"),
                      Result("grafana.datasources", "t", "fail", "1 of 4 broken: a|b")]
    (tmp_path / "smoke.json").write_text(to_json(report, 1))
    summary = tmp_path / "summary.md"
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 0, proc.stderr
    text = summary.read_text()
    assert "### make smoke: FAILED" in text
    assert "| grafana.datasources | fail | 1 of 4 broken: a/b |" in text


# ---------------------------------------------------------------- the live level's guard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def collect_live(root, **env):
    return subprocess.run([sys.executable, "-m", "pytest", "tests/live", "-m", "live", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_the_live_level_refuses_a_stack_that_is_not_a_test_stack(root):
    proc = collect_live(root, LIVE_SINK=f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "refuses this stack: it is not a test stack" in out and "make smoke" in out and "LIVE_TEST_STACK=1" in out


def test_the_live_level_runs_next_to_the_demo_platform_or_when_declared_disposable(root):
    class Sink(BaseHTTPRequestHandler):  # answers as tests/platform/app/sink.py does
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        proc = collect_live(root, LIVE_SINK=f"http://127.0.0.1:{server.server_port}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        server.shutdown()
    proc = collect_live(root, LIVE_SINK=f"http://127.0.0.1:{free_port()}", LIVE_TEST_STACK="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_other_levels_are_not_refused(root):
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit/test_smoke_compare.py", "-q",
                           "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LIVE_SINK": f"http://127.0.0.1:{free_port()}"})
    assert proc.returncode == 0, proc.stdout


def test_json_report_round_trip_is_plain_json():
    report = Report(mode="local", endpoints={"prometheus": "http://127.0.0.1:9090"})
    assert json.loads(to_json(report, 0))["checks"] == []
