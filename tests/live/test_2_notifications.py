"""Alerts travel to people: a fault on the demo platform reaches the receivers the
routing tree chooses, its recovery too, and inhibition keeps the warning twin quiet."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from stack import SINK, alert_bound, platform, route_group_wait, seconds, wait_for

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


def receiver_of(stack_values, labels: dict) -> str:
    """The receiver of the first route of the values in use whose matchers are all
    equalities the labels satisfy (the default tree's routes are such); else the top one."""
    route = stack_values["alertmanager"]["route"]
    for child in route["routes"]:
        if all(labels.get(k) == v.strip('"') for k, v in (m.split("=", 1) for m in child["matchers"])):
            return child["receiver"]
    return route["receiver"]


def test_mail_is_delivered_with_smtp_auth(sink, alertmanager, stack_values):
    """An alert without severity goes to the default receiver's email; the sink only takes
    mail after AUTH LOGIN with the generated SMTP_PASSWORD, so its arrival proves the
    password reached Alertmanager from .env through its secret file."""
    token = uuid.uuid4().hex[:10]
    alert = {"labels": {"alertname": f"EmailProbe{token}", "cluster": stack_values["cluster"],
                        "service": "live-tests", "instance": "probe"},
             "annotations": {"summary": f"mail probe {token}", "description": "sent by the live tests"}}
    alertmanager.post("/api/v2/alerts", [alert])
    try:
        mail = wait_for("the probe's mail at the sink", lambda: emails(sink(), f"EmailProbe{token}"),
                        timeout=60, services=("alertmanager",))
        message = mail[0]["body"]["message"]
        assert f"mail probe {token}" in message
        am = stack_values["alertmanager"]
        assert mail[0]["body"]["user"] == am["smtp"]["auth_username"]
        receiver = am["receivers"][receiver_of(stack_values, alert["labels"])]
        assert [to.strip("<>") for to in mail[0]["body"]["to"]] == [c["to"] for c in receiver["email_configs"]]
    finally:
        ended = dict(alert, endsAt=datetime.now(timezone.utc).isoformat())
        alertmanager.post("/api/v2/alerts", [ended])


SMTP_PROBE = """
import smtplib, sys
s = smtplib.SMTP("sink", 2525, timeout=10)
s.ehlo()
try:
    s.sendmail("probe@example.com", ["x@example.com"], "Subject: no auth\\n\\nx")
    print("accepted without auth")
except smtplib.SMTPException as e:
    print("refused without auth", e)
try:
    s.login("alertmanager", "not-the-password")
    print("accepted a wrong password")
except smtplib.SMTPAuthenticationError as e:
    print("refused a wrong password", e.smtp_code)
"""


def test_the_demo_sink_refuses_mail_without_the_right_login(demo_platform):
    """The mail test above proves SMTP AUTH only because the sink is strict."""
    out = platform("exec", "-T", "api-gateway", "python3", "-c", SMTP_PROBE).stdout
    assert "refused without auth" in out and "refused a wrong password 535" in out, out


def twin_gap(prometheus, since: float) -> float:
    """Seconds from the critical RedisDown's first firing sample to its warning twin's.
    They sit in different rule groups (platform.yml, custom.yml), which Prometheus
    evaluates at different offsets within the evaluation interval."""
    result = prometheus.get("/api/v1/query_range", query='ALERTS{alertname="RedisDown",alertstate="firing"}',
                            start=since, end=time.time(), step=1)["data"]["result"]
    first = {r["metric"]["severity"]: float(r["values"][0][0]) for r in result}
    return first["warning"] - first["critical"]


def test_inhibition_waits_for_a_critical_twin_from_another_rule_group(stack_values):
    """Alertmanager decides inhibition when it sends a group (alertmanager#2229): a warning
    whose critical twin arrives after the warning's group_wait is sent. Twins in two rule
    groups fire up to one evaluation interval apart, so the warning's route must wait
    longer than that for the outage test below to mean anything (the cause of its
    earlier flakiness: a live group_wait of 2s against 5s evaluations)."""
    every = seconds(stack_values["prometheus"]["evaluation_interval"])
    wait = route_group_wait(stack_values, receiver_of(stack_values, {"severity": "warning"}))
    assert wait > every, f"group_wait {wait:g}s of the warning route is not longer than the evaluation interval {every:g}s"


def test_redis_outage_reaches_on_call_and_resolves(sink, stack_values, alertmanager, prometheus, record_property):
    requests.delete(f"{SINK}/records", timeout=10)
    bound, _ = alert_bound(stack_values, "RedisDown", "pager")
    critical = stack_values["alertmanager"]["receivers"][receiver_of(stack_values, {"severity": "critical"})]
    oncall = [c["to"] for c in critical["email_configs"]]
    started = time.time()
    platform("stop", "redis")
    try:
        # Critical: the routing tree sends it to the on-call email and the critical Slack
        # channel, and (continue) to the paging webhook the live values add.
        hits = wait_for("RedisDown at the paging webhook",
                        lambda: notifications(sink(), "/pager", "RedisDown", "firing"), timeout=bound + 60,
                        services=("prometheus", "alertmanager"))
        latency = hits[0]["received"] - started
        record_property("alert_latency_seconds", round(latency, 1))
        record_property("alert_latency_bound_seconds", bound)
        print(f"RedisDown reached the webhook {latency:.1f}s after Redis stopped (bound {bound:.0f}s)")
        wait_for("RedisDown in #alerts-critical",
                 lambda: notifications(sink(), "/slack-critical", "RedisDown", "firing"), timeout=30)
        mail = wait_for("RedisDown mailed to on-call", lambda: emails(sink(), "RedisDown"), timeout=30)
        assert [to.strip("<>") for to in mail[0]["body"]["to"]] == oncall

        # The warning twin fires too, and the default inhibition mutes it.
        warning = 'ALERTS{alertname="RedisDown",severity="warning",alertstate="firing"}'
        wait_for("warning twin firing in Prometheus", lambda: prometheus.query(warning), timeout=30)

        def inhibited():
            alerts = alertmanager.get("/api/v2/alerts", filter='alertname="RedisDown"')
            twin = [a for a in alerts if a["labels"]["severity"] == "warning"]
            assert twin and twin[0]["status"]["inhibitedBy"], twin
            return True

        wait_for("warning twin inhibited in Alertmanager", inhibited, timeout=30)
        gap = twin_gap(prometheus, started)
        record_property("twin_gap_seconds", gap)
        print(f"the warning twin fired {gap:+.1f}s after RedisDown (critical)")
    finally:
        platform("start", "redis")

    wait_for("RedisDown resolved at the paging webhook",
             lambda: notifications(sink(), "/pager", "RedisDown", "resolved"), timeout=bound + 60,
             services=("prometheus", "alertmanager"))
    leaked = notifications(sink(), "/slack-warning", "RedisDown", "firing")
    assert not leaked, f"the inhibited warning twin reached #alerts-warning: {leaked}"
