"""State survives restarts, and `make reload` applies only valid configuration."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from stack import ROOT, compose, containers, probe_token, wait_for

pytestmark = pytest.mark.live


def healthy(*services):
    def probe():
        state = {c["Service"]: c["Health"] for c in containers()}
        return all(state.get(s) == "healthy" for s in services)

    return probe


def test_series_and_silences_survive_a_restart(prometheus, alertmanager):
    now = datetime.now(timezone.utc)
    silence = alertmanager.post("/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "DurabilityProbe", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "live-tests", "comment": "must survive a restart"})["silenceID"]
    wait_for("a sample of up to look back at", lambda: prometheus.query('up{job="prometheus"}'), timeout=30)
    before = time.time() - 2
    assert prometheus.query('up{job="prometheus"}', time=before)

    compose("restart", "prometheus", "alertmanager")
    wait_for("prometheus and alertmanager healthy again", healthy("prometheus", "alertmanager"),
             timeout=90, services=("prometheus", "alertmanager"))

    kept = wait_for("the silence after the restart",
                    lambda: alertmanager.get(f"/api/v2/silence/{silence}"), timeout=30)
    assert kept["status"]["state"] == "active" and kept["comment"] == "must survive a restart"
    assert prometheus.query('up{job="prometheus"}', time=before), "the sample from before the restart is gone"
    started = prometheus.get("/api/v1/status/runtimeinfo")["data"]["startTime"]
    assert datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() > before
    requests.delete(f"{alertmanager.base}/api/v2/silence/{silence}", timeout=10).raise_for_status()


def make_reload(overlays, extra=None) -> subprocess.CompletedProcess:
    files = [str(p.relative_to(ROOT)) for p in overlays] + ([str(extra)] if extra else [])
    return subprocess.run(["make", "reload", f"VALUES={' '.join(shlex.quote(f) for f in files)}"],
                          cwd=ROOT, capture_output=True, text=True)


def config_digest() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((ROOT / "config").rglob("*")) if p.is_file()}


def started_at(service: str) -> str:
    name = [c["Name"] for c in containers() if c["Service"] == service][0]
    return subprocess.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_reload_refuses_an_invalid_change_and_applies_a_valid_one(prometheus, alertmanager, overlays, tmp_path):
    running_config = prometheus.get("/api/v1/status/config")["data"]["yaml"]
    files_before = config_digest()
    starts = {s: started_at(s) for s in ("prometheus", "alertmanager")}

    # Valid for the schema, refused by promtool: nothing may change anywhere.
    bad = tmp_path / "bad.yaml"
    bad.write_text("prometheus:\n  scrape_interval: 5s\n  scrape_timeout: 30s\n")
    refused = make_reload(overlays, bad)
    assert refused.returncode != 0
    assert "promtool check config failed" in refused.stderr
    assert config_digest() == files_before
    assert prometheus.get("/api/v1/status/config")["data"]["yaml"] == running_config

    # A valid change is live after the reload, without a restart.
    token = probe_token()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"prometheus": {"external_labels": {"reload_probe": token}},
                                    "alertmanager": {"resolve_timeout": "7m"}}))
    try:
        applied = make_reload(overlays, good)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"reload_probe: {token}" in prometheus.get("/api/v1/status/config")["data"]["yaml"]
        assert "resolve_timeout: 7m" in alertmanager.get("/api/v2/status")["config"]["original"]
        assert {s: started_at(s) for s in starts} == starts, "a service was restarted"
    finally:
        restored = make_reload(overlays)
        assert restored.returncode == 0, restored.stderr
    assert "reload_probe" not in prometheus.get("/api/v1/status/config")["data"]["yaml"]
