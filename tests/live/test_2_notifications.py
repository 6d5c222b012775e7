"""Alerts travel to people: a fault on the demo platform reaches the receivers the
routing tree chooses, its recovery too, and inhibition keeps the warning twin quiet."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from stack import SINK, alert_bound, platform, wait_for

pytestmark = pytest.mark.live


def notifications(records, path: str, alertname: str, status: str) -> list[dict]:
    """Sink records at `path` that carry `alertname` with `status` (webhook or Slack JSON)."""
    found = []
    for rec in records:
        body = rec["body"]
        if rec["path"] != path or not isinstance(body, dict):
            continue
        if "alerts" in body:  # webhook
            if body["status"] == status and any(a["labels"]["alertname"] == alertname for a in body["alerts"]):
                found.append(rec)
        elif "attachments" in body:  # Slack
            title = " ".join(a.get("title", "") + a.get("fallback", "") for a in body["attachments"])
            if f"[{status.upper()}" in title and alertname in title:
                found.append(rec)
    return found


def emails(records, alertname: str) -> list[dict]:
    return [r for r in records if r["kind"] == "email" and alertname in r["body"]["message"]]


def test_a_warning_reaches_the_email_receiver(sink, alertmanager, stack_values):
    """A warning goes to ops-email by the default routing tree, and the mail arrives
    with the alert's name, severity and summary (notification template)."""
    token = uuid.uuid4().hex[:10]
    alert = {"labels": {"alertname": f"EmailProbe{token}", "severity": "warning",
                        "cluster": stack_values["cluster"], "service": "live-tests", "instance": "probe"},
             "annotations": {"summary": f"mail probe {token}", "description": "sent by the live tests"}}
    alertmanager.post("/api/v2/alerts", [alert])
    try:
        mail = wait_for("the probe's mail at the sink", lambda: emails(sink(), f"EmailProbe{token}"),
                        timeout=60, services=("alertmanager",))
        message = mail[0]["body"]["message"]
        assert f"mail probe {token}" in message and "warning" in message
        am = stack_values["alertmanager"]
        route = next(r for r in am["route"]["routes"] if 'severity="warning"' in r.get("matchers", []))
        receiver = am["receivers"][route["receiver"]]
        assert [to.strip("<>") for to in mail[0]["body"]["to"]] == [c["to"] for c in receiver["email_configs"]]
    finally:
        ended = dict(alert, endsAt=datetime.now(timezone.utc).isoformat())
        alertmanager.post("/api/v2/alerts", [ended])


def test_redis_outage_reaches_on_call_and_resolves(sink, stack_values, alertmanager, prometheus, record_property):
    requests.delete(f"{SINK}/records", timeout=10)
    bound = alert_bound(stack_values, "RedisDown")
    started = time.time()
    platform("stop", "redis")
    try:
        # Critical: the routing tree sends it to Slack, then (continue) to the webhook.
        wait_for("RedisDown at oncall-slack",
                 lambda: notifications(sink(), "/slack", "RedisDown", "firing"), timeout=bound + 60,
                 services=("prometheus", "alertmanager"))
        hits = wait_for("RedisDown at oncall-webhook",
                        lambda: notifications(sink(), "/oncall", "RedisDown", "firing"), timeout=30)
        latency = hits[0]["received"] - started
        record_property("alert_latency_seconds", round(latency, 1))
        record_property("alert_latency_bound_seconds", bound)
        print(f"RedisDown reached the webhook {latency:.1f}s after Redis stopped (bound {bound:.0f}s)")

        # The warning twin fires too, and the default inhibition mutes it.
        warning = 'ALERTS{alertname="RedisDown",severity="warning",alertstate="firing"}'
        wait_for("warning twin firing in Prometheus", lambda: prometheus.query(warning), timeout=30)

        def inhibited():
            alerts = alertmanager.get("/api/v2/alerts", filter='alertname="RedisDown"')
            twin = [a for a in alerts if a["labels"]["severity"] == "warning"]
            assert twin and twin[0]["status"]["inhibitedBy"], twin
            return True

        wait_for("warning twin inhibited in Alertmanager", inhibited, timeout=30)
    finally:
        platform("start", "redis")

    wait_for("RedisDown resolved at oncall-webhook",
             lambda: notifications(sink(), "/oncall", "RedisDown", "resolved"), timeout=bound + 60,
             services=("prometheus", "alertmanager"))
    assert not emails(sink(), "RedisDown"), "the inhibited warning reached ops-email"
