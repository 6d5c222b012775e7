"""Two Alertmanagers in a gossip cluster: a notification goes out once, also while one is
down; a silence made on one holds on the other. The blackbox probe of a platform
endpoint reaches the sink when the endpoint stops, with links that point at the edge."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

from urllib.parse import urlparse

import pytest
import requests

from bundle.secrets import read_env
from scenario import ROOT
from stack import SINK, compose, platform, wait_for

pytestmark = pytest.mark.multihost

# After the first notification, longer than the second peer of the cluster waits before
# it sends what the first has not (--cluster.peer-timeout, 15s, times its position 1):
# a duplicate would have come by then.
DUPLICATE_WINDOW = 18



def webhook_hits(alertname: str, status: str = "firing") -> list[dict]:
    """Notifications at the paging webhook of tests/values/live.yaml (critical alerts)."""
    # Where the sink receives it: the path of PAGER_URL (tests/platform/env.sh).
    path = urlparse(read_env(ROOT / ".env")["PAGER_URL"]).path
    records = requests.get(f"{SINK}/records", timeout=10).json()
    return [r for r in records if r["path"] == path and isinstance(r["body"], dict)
            and r["body"].get("status") == status
            and any(a["labels"].get("alertname") == alertname for a in r["body"].get("alerts", []))]


def probe_alert(name: str) -> dict:
    return {"labels": {"alertname": name, "severity": "critical", "instance": "probe", "service": "multihost"},
            "annotations": {"summary": "sent by the multi-host tests"}}


def test_the_two_alertmanagers_form_one_cluster(alertmanagers):
    for name, am in alertmanagers.items():
        status = wait_for(f"{name} cluster ready", lambda am=am: (
            s := am.get("/api/v2/status"))["cluster"]["status"] == "ready" and len(s["cluster"]["peers"]) == 2 and s,
            timeout=60)
        assert len(status["cluster"]["peers"]) == 2


def test_an_alert_sent_to_both_notifies_once(alertmanagers, sink_ready):
    """What Prometheus does: the same alert to every Alertmanager. One notification."""
    name = f"HaProbe{uuid.uuid4().hex[:8]}"
    for am in alertmanagers.values():
        am.post("/api/v2/alerts", [probe_alert(name)])
    wait_for(f"{name} at the webhook", lambda: webhook_hits(name), timeout=60)
    time.sleep(DUPLICATE_WINDOW)
    assert len(webhook_hits(name)) == 1


def test_a_silence_made_on_one_holds_on_the_other(alertmanagers, sink_ready):
    first, second = alertmanagers["alertmanager-2"], alertmanagers["alertmanager"]
    name = f"SilenceProbe{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    silence = first.post("/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": name, "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "multihost-tests", "comment": "made on alertmanager-2"})["silenceID"]
    try:
        replicated = wait_for("the silence on the other Alertmanager",
                              lambda: second.get(f"/api/v2/silence/{silence}"), timeout=30)
        assert replicated["status"]["state"] == "active"
        second.post("/api/v2/alerts", [probe_alert(name)])
        alert = wait_for("the alert on the other Alertmanager", lambda: [
            a for a in second.get("/api/v2/alerts", filter=f'alertname="{name}"')], timeout=30)
        assert alert[0]["status"]["state"] == "suppressed" and alert[0]["status"]["silencedBy"] == [silence]
    finally:
        first.http.delete(f"{first.base}/api/v2/silence/{silence}", timeout=10)


def test_an_endpoint_down_notifies_once_while_one_alertmanager_is_down(scenario, sink_ready):
    """The blackbox probe of the platform's nginx fails once nginx stops: EndpointDown
    reaches the sink exactly once, through the Alertmanager that is still up, and its
    links lead to the edge."""
    base = f"https://{scenario['edge']['hostname']}:{scenario['ports']['edge']}"
    requests.delete(f"{SINK}/records", timeout=10)
    compose("stop", "alertmanager")
    platform("stop", "nginx")
    try:
        hits = wait_for("EndpointDown at the webhook", lambda: webhook_hits("EndpointDown"), timeout=120,
                        services=("prometheus", "alertmanager-2", "blackbox-exporter"))
        time.sleep(DUPLICATE_WINDOW)
        assert len(webhook_hits("EndpointDown")) == 1
        body = hits[0]["body"]
        # Alertmanager writes its external URL without the final slash.
        assert body["externalURL"] == base + "/alertmanager"
        alert = next(a for a in body["alerts"] if a["labels"]["alertname"] == "EndpointDown")
        assert alert["generatorURL"].startswith(base + "/prometheus/graph?"), alert["generatorURL"]
        assert alert["labels"]["probe"] == next(iter(scenario["blackbox"]["probes"]))
    finally:
        platform("start", "nginx")
        compose("start", "alertmanager")
        # Until the resolved notification is out, Alertmanager's notification log holds the
        # firing one: should the stack restart before (the outage test), a later firing of
        # the same alert would count as already sent for repeat_interval (a re-run's).
        if webhook_hits("EndpointDown"):
            wait_for("EndpointDown resolved at the webhook", lambda: webhook_hits("EndpointDown", "resolved"),
                     timeout=180, services=("prometheus", "alertmanager", "alertmanager-2"))
