"""Each check of `make smoke` fails on the condition it guards, broken on purpose here on
the test stack: a configuration rendered but not loaded, a target down, a rule erroring,
a notification that failed. Last of the live level: a failed notification stays in the
"last hour" of the counters, and the faults are undone before each test ends."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone

import pytest
import yaml

from stack import ROOT, check_result, make_values, platform, smoke, wait_for

pytestmark = pytest.mark.live


def overlay(tmp_path, name: str, data: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_checks_fail_when_the_loaded_config_is_not_the_rendered_one(overlays, tmp_path):
    """Values changed but not applied (no make reload): what runs is not what renders."""
    changed = overlay(tmp_path, "changed", {
        "prometheus": {"scrape_configs": {"extra": {"targets": ["extra:9100"]}},
                       "external_labels": {"region": "nowhere"}},
        "alertmanager": {"resolve_timeout": "17m"},
    })
    code, report, lines = smoke(overlays, changed)
    assert code != 0 and report["exit_code"] == 1, lines
    failed = check_result(report, "prometheus.config")
    assert failed["status"] == "fail", failed
    text = "\n".join(failed["details"])
    assert "scrape_configs" in text and "extra" in text, text
    assert "external_labels.region" in text, text
    am = check_result(report, "alertmanager.config")
    assert am["status"] == "fail" and any("resolve_timeout" in d for d in am["details"]), am
    # A job of the values with no target at all is a targets failure too.
    assert check_result(report, "prometheus.targets")["status"] == "fail"
    assert check_result(report, "prometheus.rules")["status"] == "pass"


def test_targets_check_fails_on_a_target_down_unless_declared(overlays, prometheus, tmp_path):
    def worker(health):
        def probe():
            targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
            found = [t for t in targets if t["scrapePool"] == "celery-workers"]
            assert found and all(t["health"] == health for t in found), found
            return True
        return probe

    platform("stop", "celery-worker")
    try:
        wait_for("celery-workers target down", worker("down"), timeout=60)
        code, report, lines = smoke(overlays)
        assert code != 0 and report["exit_code"] == 1, lines
        targets = check_result(report, "prometheus.targets")
        assert targets["status"] == "fail" and "celery-workers" in targets["message"], targets
        assert check_result(report, "stack.containers")["status"] == "pass"

        excused = overlay(tmp_path, "excused", {"smoke": {"targets_may_be_down": {"celery-workers": "test"}}})
        _, report, lines = smoke(overlays, excused)
        targets = check_result(report, "prometheus.targets")
        assert targets["status"] == "pass" and "allowed" in targets["message"], targets
    finally:
        platform("start", "celery-worker")
    wait_for("celery-workers target up again", worker("up"), timeout=60)


def test_rules_check_fails_on_a_rule_erroring(overlays, stack_values, prometheus, tmp_path):
    # Valid PromQL that fails at every evaluation while there are two `up` series or more:
    # "many-to-one matching must be explicit (group_left/group_right)".
    broken = {"alert": "SmokeProbeBrokenRule", "for": "0s", "severity": "info", "expr": "up + on() vector(1)",
              "summary": "fails to evaluate on purpose", "description": "live test of make smoke"}
    bad = overlay(tmp_path, "broken-rule", {"custom_rules": [*stack_values["custom_rules"], broken]})
    reload = subprocess.run(["make", "reload", make_values(overlays, bad)], cwd=ROOT, capture_output=True, text=True)
    assert reload.returncode == 0, reload.stdout + reload.stderr
    try:
        def erroring():
            rules = [r for g in prometheus.get("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
            return any(r["name"] == "SmokeProbeBrokenRule" and r["health"] == "err" for r in rules)

        wait_for("the broken rule evaluated", erroring, timeout=60, services=("prometheus",))
        code, report, lines = smoke(overlays, bad)
        assert code != 0 and report["exit_code"] == 1, lines
        rules = check_result(report, "prometheus.rules")
        assert rules["status"] == "fail" and "SmokeProbeBrokenRule" in rules["message"], rules
        assert "many-to-one matching must be explicit" in rules["message"], rules
        # The configuration is the rendered one: only the rule's health fails.
        assert check_result(report, "prometheus.config")["status"] == "pass"
    finally:
        restored = subprocess.run(["make", "reload", make_values(overlays)], cwd=ROOT, capture_output=True, text=True)
        assert restored.returncode == 0, restored.stderr


def test_notifications_check_fails_on_a_failed_notification(overlays, prometheus, alertmanager):
    """The receivers' sink stopped: a warning's Slack message (receiver `warning`, the
    default routing tree) cannot be delivered, Alertmanager counts the failure, and make
    smoke reports it with its receiver."""
    name = f"SmokeProbeUndeliverable{uuid.uuid4().hex[:8]}"
    alert = {"labels": {"alertname": name, "severity": "warning", "service": "live-tests"},
             "annotations": {"summary": "cannot be delivered on purpose"}}
    platform("stop", "sink")
    try:
        alertmanager.post("/api/v2/alerts", [alert])

        def counted():
            return prometheus.query("sum(increase(alertmanager_notifications_failed_total[1h])) > 0")

        wait_for("Alertmanager counting the failed notification", counted, timeout=90,
                 services=("alertmanager", "prometheus"))
        code, report, lines = smoke(overlays)
        assert code != 0 and report["exit_code"] == 1, lines
        notifications = check_result(report, "alertmanager.notifications")
        assert notifications["status"] == "fail", notifications
        assert "receiver_name=warning" in notifications["message"], notifications
    finally:
        alertmanager.post("/api/v2/alerts", [dict(alert, endsAt=datetime.now(timezone.utc).isoformat())])
        platform("start", "sink")
