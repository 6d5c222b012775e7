"""`make smoke` on the running stack: every check passes, the JSON and JUnit reports parse
as CI systems read them, and a run changes nothing. `make smoke-notify` reaches its
receiver and no other. First of the live level: nothing has been broken on purpose yet."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from junitparser import Failure, JUnitXml, Skipped

from stack import ROOT, compose, make_values, smoke

pytestmark = pytest.mark.live

# The checks README "Check a running stack" lists for the core (the only layer here).
CORE_CHECKS = {
    "stack.containers", "prometheus.health", "prometheus.config", "prometheus.rules", "prometheus.targets",
    "prometheus.tsdb", "prometheus.disk", "prometheus.notifications", "alertmanager.health",
    "alertmanager.config", "alertmanager.cluster", "alertmanager.notifications", "alerts.self_monitoring",
}


def started() -> dict[str, str]:
    ids = compose("ps", "--all", "--quiet").stdout.split()
    out = subprocess.run(["docker", "inspect", "--format", "{{.Name}} {{.State.StartedAt}} {{.RestartCount}}", *ids],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def snapshot(prometheus, alertmanager) -> dict:
    """What a run could change: loaded configs, start times, alerts, silences."""
    runtime = prometheus.get("/api/v1/status/runtimeinfo")["data"]
    status = alertmanager.get("/api/v2/status")
    return {
        "prometheus config": prometheus.get("/api/v1/status/config")["data"]["yaml"],
        "prometheus started": runtime["startTime"],
        "prometheus config loaded": runtime["lastConfigTime"],
        "alertmanager config": status["config"]["original"],
        "alertmanager up since": status["uptime"],
        # updatedAt and endsAt move whenever Prometheus re-sends an alert: not compared.
        "alerts": sorted((a["fingerprint"], a["startsAt"], a["status"]["state"])
                         for a in alertmanager.get("/api/v2/alerts")),
        "silences": sorted(json.dumps(s, sort_keys=True) for s in alertmanager.get("/api/v2/silences")),
        "containers": started(),
    }


@pytest.fixture(scope="module")
def settled(overlays):
    """A stack just started is not healthy yet (targets never scraped, rules never run):
    wait, with a deadline, for the first run that passes."""
    deadline = time.monotonic() + 120
    while True:
        code, report, lines = smoke(overlays)
        if code == 0:
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"make smoke did not pass within 120 s of the stack's start:\n{lines}")
        time.sleep(5)


def test_make_smoke_passes_changes_nothing_and_reports_for_ci(overlays, settled, prometheus, alertmanager,
                                                              tmp_path, record_property):
    before = snapshot(prometheus, alertmanager)
    code, report, lines = smoke(overlays, junit=tmp_path / "smoke.xml")
    after = snapshot(prometheus, alertmanager)
    assert code == 0, lines
    assert after == before, "make smoke changed the stack"
    record_property("smoke_seconds", report["duration_seconds"])

    # JSON: the documented shape.
    assert report["passed"] is True and report["exit_code"] == 0 and report["mode"] == "local"
    ids = {c["id"] for c in report["checks"]}
    assert ids == CORE_CHECKS
    assert all(c["status"] == "pass" and c["message"] for c in report["checks"])
    assert report["summary"] == {"passed": len(CORE_CHECKS), "failed": 0, "skipped": 0}
    # One line per check on the terminal, then the summary.
    shown = [row for row in lines.splitlines() if row.startswith("PASS ")]
    assert len(shown) == len(CORE_CHECKS) and "all checks passed" in lines.splitlines()[-1]

    # JUnit, read as CI systems read it.
    xml = JUnitXml.fromfile(str(tmp_path / "smoke.xml"))
    suites = list(xml) if isinstance(xml, JUnitXml) else [xml]
    cases = [case for suite in suites for case in suite]
    assert {case.name for case in cases} == CORE_CHECKS
    assert all(case.is_passed and not any(isinstance(r, (Failure, Skipped)) for r in case.result) for case in cases)
    assert sum(suite.tests for suite in suites) == len(CORE_CHECKS)


def test_make_smoke_notify_reaches_its_receiver_and_no_other(overlays, sink, stack_values):
    receiver = stack_values["smoke"]["notify_receiver"]
    assert receiver, "tests/values/live.yaml names the smoke-notify receiver"
    before = len(sink())
    proc = subprocess.run(["make", "--no-print-directory", "smoke-notify", make_values(overlays)],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    token = next(w.split("=", 1)[1].rstrip(")") for w in proc.stdout.split() if w.startswith("(smoke_notify="))
    assert f"delivered to {receiver}" in proc.stdout and "resolved notification delivered" in proc.stdout

    mine = [r for r in sink()[before:] if token in json.dumps(r["body"])]
    # tests/platform/env.sh points the smoke receiver at the sink's /smoke.
    assert {r["path"] for r in mine} == {"/smoke"}, mine
    assert sorted(r["body"]["status"] for r in mine) == ["firing", "resolved"]
    alert = mine[0]["body"]["alerts"][0]
    assert alert["labels"]["alertname"] == "BundleSmokeNotify" and "severity" not in alert["labels"]
