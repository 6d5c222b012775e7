"""The checks of the contract (guide.py), shared by the rendered and the live halves.

Each check takes what a configuration says (rendered files, or what the running
Prometheus and Alertmanager loaded) and compares it with the table; its failure message
names the document to update when the change is deliberate.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import requests
import yaml

import guide
from alert_cases import CASES, STEP
from rule_tests import promtool_tests, run_promtool_tests, seconds, window_test


def deliberate(what: str, doc: str) -> str:
    return (f"{what}\nThis is what users rely on (tests/contract/guide.py). If the change is deliberate, "
            f"update tests/contract/guide.py and {doc} with it.\n")


# --------------------------------------------------------------------------- alerts


def check_alert(name: str, rule: dict, promtool: str, workdir: Path) -> None:
    """One alert rule against its row: severity, `for`, and with promtool: fires at the
    guide's level after the guide's `for` with the guide's severity, stays quiet just
    under the guide's threshold, and its rate window is the guide's."""
    promise = guide.ALERTS[name]
    hint = deliberate(f"{name} is not the guide's ({promise.describe()}; from {promise.source}).", guide.ALERT_DOC)
    assert rule["labels"].get("severity") == promise.severity, hint + f"severity: {rule['labels'].get('severity')}"
    assert seconds(rule["for"]) == seconds(promise.for_), hint + f"for: {rule['for']}"
    workdir.mkdir(parents=True, exist_ok=True)
    rules_file = workdir / f"{name}.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": [rule]}]}, sort_keys=False, width=1000))
    runbook_base = rule["annotations"]["runbook_url"].rsplit("#", 1)[0]
    groups = promtool_tests(name, CASES[name], promise.settings(), rule, runbook_base)
    if promise.window:
        groups.append(window_test(name, CASES[name], promise.settings(), rule["expr"], promise.window, promise.kind))
    run_promtool_tests(promtool, workdir, [rules_file.name], groups, name, hint)


def rendered_rules(rules_dir: Path) -> dict[str, dict]:
    """alert name -> its rule, from rendered rule files."""
    found = {}
    for path in sorted(rules_dir.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"] or []:
            for rule in group["rules"]:
                found.setdefault(rule["alert"], rule)
    return found


def live_rules(prometheus) -> dict[str, dict]:
    """alert name -> the bundle's rule of that name as the running Prometheus loaded it
    (values custom_rules, in custom.yml, may reuse a name: they are the user's)."""
    found = {}
    for group in prometheus.get("/api/v1/rules", type="alert")["data"]["groups"]:
        if group["file"].endswith("/custom.yml"):
            continue
        for rule in group["rules"]:
            found.setdefault(rule["name"], {
                "alert": rule["name"], "expr": rule["query"], "for": f"{int(rule['duration'])}s",
                "labels": rule["labels"], "annotations": rule["annotations"]})
    return found


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)))


def check_opt_in(rules: dict[str, dict]) -> None:
    """Every alert that reads an opt-in metric comes with the alert for its absence."""
    for metric, absence in guide.OPT_IN.items():
        readers = [n for n, r in rules.items() if metric in metric_names(r["expr"]) and n != absence]
        if readers:
            assert absence in rules, deliberate(
                f"{readers} read {metric}, which exists only when the app opts in, but {absence} (its absence) "
                f"is not rendered.", "README.md (Instrument your apps) and instrumentation/README.md")


# --------------------------------------------------------------------------- Alertmanager


def routes_test(amtool: str, config_dir: Path, labels: dict) -> list[str]:
    """The receivers amtool's routing walk gives for a label set."""
    args = [f"{k}={v}" for k, v in labels.items()]
    result = subprocess.run([amtool, "config", "routes", "test", "--config.file=alertmanager.yml", *args],
                            cwd=config_dir, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return sorted(result.stdout.strip().split(","))


def check_routing(amtool: str, config_dir: Path, only: set[str] | None = None) -> None:
    """Each severity reaches the guide's receivers (`only`: the receivers to look at, when
    an overlay adds receivers of its own)."""
    for title, labels, expected in guide.ROUTES:
        got = routes_test(amtool, config_dir, labels)
        if only is not None:
            got = [r for r in got if r in only]
        assert got == sorted(expected), deliberate(
            f"routing: {title}: amtool routes {labels} to {got}, the guide to {expected}.", guide.ROUTING_DOC)


def check_receivers(config: dict) -> None:
    receivers = {r["name"]: r for r in config["receivers"]}
    for name, (emails, slack) in guide.RECEIVERS.items():
        hint = deliberate(f"receiver {name!r} is not the guide's (email {emails}, Slack {slack}).", guide.ROUTING_DOC)
        assert name in receivers, hint + f"receivers: {sorted(receivers)}"
        got_emails = [c["to"] for c in receivers[name].get("email_configs", [])]
        got_slack = [(c.get("channel"), c.get("api_url_file", "").removeprefix("/run/secrets/"))
                     for c in receivers[name].get("slack_configs", [])]
        assert got_emails == emails and got_slack == slack, hint + f"got email {got_emails}, Slack {got_slack}"


def check_timings(config: dict) -> None:
    route = config["route"]
    got = {k: route.get(k) for k in guide.TIMINGS}
    assert got == guide.TIMINGS, deliberate(f"route timings {got}, the guide's {guide.TIMINGS}.", guide.ROUTING_DOC)
    overridden = [(c.get("receiver"), k) for c in route.get("routes", []) for k in guide.TIMINGS if k in c
                  and c.get("receiver") in guide.RECEIVERS]
    assert not overridden, deliberate(f"child routes override the guide's timings: {overridden}", guide.ROUTING_DOC)
    resolve = config.get("global", {}).get("resolve_timeout", "5m")
    assert seconds(resolve) == seconds(guide.RESOLVE_TIMEOUT), deliberate(
        f"resolve_timeout {resolve}", guide.ROUTING_DOC)


def check_smtp_auth(config: dict, keys: tuple[str, ...] = tuple(guide.SMTP)) -> None:
    smtp = config.get("global", {})
    got = {k: smtp.get(f"smtp_{k}") for k in keys}
    want = {k: guide.SMTP[k] for k in keys}
    assert got == want, deliberate(f"mail is not sent with SMTP AUTH as documented: {got}", guide.SECURITY_DOC)


def inhibition_alerts(token: str) -> tuple[list[dict], list[tuple[str, dict, bool]]]:
    """The alerts to post (targets first, then the sources: those of groups with a muted
    target last, so once that target shows muted, Alertmanager has seen every source)
    and the targets with their expected state."""
    now = datetime.now(timezone.utc)
    span = {"startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=10)).isoformat()}
    targets, sources, checks = [], [], []
    groups = sorted(enumerate(guide.INHIBITION), key=lambda g: any(m for _, _, m in g[1][2]))
    for i, (title, source, members) in groups:
        cluster = f"contract-{token}-{i}"
        sources.append({"labels": {"cluster": cluster, "contract_run": token, **source}, "annotations": {}, **span})
        for label, target, muted in members:
            labels = {"cluster": cluster, "contract_run": token, **target}
            targets.append({"labels": labels, "annotations": {}, **span})
            checks.append((f"{title}: {label}", labels, muted))
    return targets + sources, checks


def check_inhibition(base_url: str, timeout: float = 60) -> None:
    """Every inhibit rule's behaviour, by the Alertmanager at base_url: post the alerts,
    wait until every target that must be muted is, then no other target may be."""
    token = uuid.uuid4().hex[:8]
    alerts, checks = inhibition_alerts(token)
    requests.post(f"{base_url}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()
    try:
        def state() -> dict[str, list[str]]:
            got = requests.get(f"{base_url}/api/v2/alerts", params={"filter": f'contract_run="{token}"'},
                               timeout=10).json()
            return {json.dumps(a["labels"], sort_keys=True): a["status"]["inhibitedBy"] for a in got}

        deadline = time.monotonic() + timeout
        while True:
            seen = state()
            pending = [t for t, labels, muted in checks
                       if muted and not seen.get(json.dumps(labels, sort_keys=True))]
            if not pending:
                break
            assert time.monotonic() < deadline, deliberate(
                f"inhibition: not muted within {timeout:.0f}s: {pending}", guide.INHIBITION_DOC)
            time.sleep(0.5)
        wrong = [t for t, labels, muted in checks if not muted and seen.get(json.dumps(labels, sort_keys=True))]
        assert not wrong, deliberate(f"inhibition: muted although they must not be: {wrong}", guide.INHIBITION_DOC)
    finally:
        ended = datetime.now(timezone.utc).isoformat()
        requests.post(f"{base_url}/api/v2/alerts", json=[{**a, "endsAt": ended} for a in alerts], timeout=10)


# --------------------------------------------------------------------------- Prometheus


def check_rule_intervals(intervals: dict[str, float]) -> None:
    """group -> seconds between its evaluations."""
    want = seconds(guide.PROMETHEUS["rule_interval"])
    wrong = {g: i for g, i in intervals.items() if i != want}
    assert intervals and not wrong, deliberate(
        f"rule groups not evaluated every {guide.PROMETHEUS['rule_interval']} (the guide's interval: 30s): {wrong}",
        guide.PROMETHEUS_DOC)


def check_scrape_interval(got: str) -> None:
    assert seconds(got) == seconds(guide.PROMETHEUS["scrape_interval"]), deliberate(
        f"scrape_interval {got}, the guide's {guide.PROMETHEUS['scrape_interval']}", guide.PROMETHEUS_DOC)


def size_in_bytes(size: str) -> int:
    """Prometheus sizes are powers of 1024 whether written 10GB or 10GiB."""
    number, unit = re.fullmatch(r"(\d+)([KMGTPE]?)i?B", size).groups()
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def check_retention(time_flag: str, size_flag: str) -> None:
    ok = seconds(time_flag) == seconds(guide.RETENTION["time"]) and \
        size_in_bytes(size_flag) == size_in_bytes(guide.RETENTION["size"])
    assert ok, deliberate(f"retention time {time_flag}, size {size_flag}; documented: {guide.RETENTION}",
                          guide.PROMETHEUS_DOC)


def wait(what: str, probe: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = probe()
            if got:
                return got
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)


def check_query(what: str, expr: str, series: dict[str, str], value: float, promtool: str, workdir: Path,
                doc: str) -> None:
    """A query, summed over its series, shows `value` on `series` (promtool, 10m in)."""
    test = {"rule_files": [], "evaluation_interval": f"{STEP}s", "tests": [{
        "interval": f"{STEP}s",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "promql_expr_test": [{"expr": f"sum(\n{expr}\n)", "eval_time": "10m",
                              "exp_samples": [{"labels": "{}", "value": value}]}]}]}
    path = workdir / "query.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1000))
    result = subprocess.run([promtool, "test", "rules", path.name], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, deliberate(f"{what} does not show {value:g} for the guide's inputs: {expr}",
                                              doc) + result.stdout + result.stderr
