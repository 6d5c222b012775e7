"""Alertmanager routing, inhibition and notification texts, checked with the real amtool.

- Routing: `amtool config routes test --verify.receivers=...` on the rendered config, for
  the severity of every alert the rules define, and for a label set made up for every
  route of the values in use; every receiver must be reached by at least one test.
- Inhibition: every inhibit matcher of the values in use is one amtool parses (their
  behaviour: the real Alertmanager in tests/contract/ and the live suite).
- Notification texts: `amtool template render` of the Slack and email templates shows
  the alert name, severity, summary, instance, runbook link and every alert of a group.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from bundle import DEFAULT_VALUES
from bundle.cli import load
from bundle.notifications import route
from alerting import alert_rules, render_to, rule_values, values_in_use

pytestmark = pytest.mark.config


@pytest.fixture(scope="module")
def amtool(tool):
    return tool("amtool")


@pytest.fixture(scope="module")
def default_config(tmp_path_factory) -> Path:
    """alertmanager/ rendered from values.yaml alone (the defaults a user starts from)."""
    values, _ = load([DEFAULT_VALUES])
    return render_to(values, tmp_path_factory.mktemp("defaults") / "config") / "alertmanager"


@pytest.fixture(scope="module")
def in_use(tmp_path_factory) -> tuple[dict, Path]:
    values = values_in_use()
    return values, render_to(values, tmp_path_factory.mktemp("in-use") / "config") / "alertmanager"


def routes_test(amtool: str, config_dir: Path, labels: dict, receivers: list[str]) -> subprocess.CompletedProcess:
    args = [f"{k}={v}" for k, v in labels.items()]
    return subprocess.run(
        [amtool, "config", "routes", "test", "--config.file=alertmanager.yml",
         f"--verify.receivers={','.join(receivers)}", *args],
        cwd=config_dir, capture_output=True, text=True)


def assert_routes(amtool: str, config_dir: Path, labels: dict, receivers: list[str]) -> None:
    result = routes_test(amtool, config_dir, labels, receivers)
    assert result.returncode == 0, (f"{labels} should reach {receivers}; amtool: "
                                    f"{result.stdout.strip()} {result.stderr.strip()}")


# --------------------------------------------------------------------------- a model of the tree


MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$')


def parse_matcher(text: str) -> tuple[str, str, str]:
    match = MATCHER.match(text)
    assert match, text
    name, op, quoted, bare = match.groups()
    value = bytes(quoted, "utf-8").decode("unicode_escape") if quoted is not None else bare
    return name, op, value


def matches(matchers: list[str], labels: dict) -> bool:
    for text in matchers:
        name, op, value = parse_matcher(text)
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


def expected_receivers(route: dict, labels: dict) -> list[str]:
    """Alertmanager's walk: children in order, first match wins unless `continue`;
    no matching child means the route itself."""
    found: list[str] = []
    for child in route.get("routes", []):
        if matches(child.get("matchers", []), labels):
            found += expected_receivers(child, labels)
            if not child.get("continue", False):
                break
    return found or [route["receiver"]]


def inherit(route: dict, parent_receiver: str | None = None) -> dict:
    """Child routes without a receiver take their parent's (as Alertmanager does)."""
    receiver = route.get("receiver", parent_receiver)
    return {**route, "receiver": receiver, "routes": [inherit(r, receiver) for r in route.get("routes", [])]}


def satisfying(matchers: list[str]) -> dict:
    """A label set that satisfies every matcher of a route (equality and simple regexes)."""
    labels: dict[str, str] = {}
    for text in matchers:
        name, op, value = parse_matcher(text)
        if op == "=":
            labels[name] = value
        elif op == "=~":
            labels[name] = next(v for v in re.split(r"\|", value.strip("()")) + ["x"] if re.fullmatch(value, v))
    for text in matchers:
        name, op, value = parse_matcher(text)
        if op in ("!=", "!~") and not matches([text], labels):
            labels[name] = "something-else"
    assert matches(matchers, labels), matchers
    return labels


def every_route(route: dict, path: tuple = ()) -> list[tuple[tuple, list[str]]]:
    """(path, matchers of the route and all its ancestors) for each child route."""
    out = []
    for i, child in enumerate(route.get("routes", [])):
        here = path + (i,)
        out.append((here, child.get("matchers", [])))
        out += [(p, child.get("matchers", []) + m) for p, m in every_route(child, here)]
    return out


# --------------------------------------------------------------------------- every alert


def test_a_wrong_expectation_fails(amtool, default_config):
    """--verify.receivers really checks: a critical alert does not go (only) to email."""
    assert routes_test(amtool, default_config, {"severity": "critical"}, ["default"]).returncode != 0
    assert routes_test(amtool, default_config, {"severity": "critical"}, ["critical", "warning"]).returncode != 0


def test_every_alert_of_the_rules_reaches_the_receivers_of_its_severity(amtool, tmp_path):
    """Each alert the templates can render, with its severity from the values in use."""
    values = rule_values()
    config = render_to(values, tmp_path / "config")
    tree = inherit(values["alertmanager"]["route"])
    for name, rules in sorted(alert_rules(config / "prometheus" / "rules").items()):
        for rule in rules:
            labels = {"alertname": name, **rule.get("labels", {}),
                      "cluster": values["cluster"], "environment": values["environment"]}
            assert_routes(amtool, config / "alertmanager", labels, expected_receivers(tree, labels))


# --------------------------------------------------------------------------- the values in use


def test_every_route_of_the_values_in_use(amtool, in_use):
    """For each route: labels made to match it (and its parents) reach the receivers
    Alertmanager's walk gives; the default route with labels no child matches."""
    values, config_dir = in_use
    tree = inherit(route(values))  # as rendered: with the smoke-notify route when it is set
    reached = set()
    cases = [({"alertname": "NoChildRouteMatchesThis"}, ())] + [(satisfying(m), p) for p, m in every_route(tree)]
    for labels, where in cases:
        labels.setdefault("alertname", f"RouteTest{''.join(map(str, where))}")
        receivers = expected_receivers(tree, labels)
        assert_routes(amtool, config_dir, labels, receivers)
        reached.update(receivers)
    unreached = set(values["alertmanager"]["receivers"]) - reached
    assert not unreached, f"receivers no route leads to: {sorted(unreached)}"


# --------------------------------------------------------------------------- inhibition


def inhibit_config(rule: dict) -> str:
    return yaml.safe_dump({"route": {"receiver": "x"}, "receivers": [{"name": "x"}], "inhibit_rules": [rule]})


def amtool_accepts(amtool: str, tmp_path: Path, rule: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "inhibit.yml"
    path.write_text(inhibit_config(rule))
    return subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)


def test_every_inhibition_matcher_is_one_alertmanager_parses(amtool, in_use, tmp_path):
    """Each inhibit rule of the values in use, alone in a config, passes amtool
    check-config (the parser Alertmanager uses), so a refused one names its rule; and a
    malformed matcher is refused, so the check can fail. Their behaviour is proven by
    the real Alertmanager: tests/contract/ and the live suite."""
    values, _ = in_use
    for rule in values["alertmanager"]["inhibit_rules"]:
        result = amtool_accepts(amtool, tmp_path, rule)
        assert result.returncode == 0, f"{rule}: {result.stdout}{result.stderr}"
    broken = {"source_matchers": ['severity=="critical"'], "target_matchers": ['severity="warning"']}
    assert amtool_accepts(amtool, tmp_path, broken).returncode != 0


# --------------------------------------------------------------------------- notification texts


def template_data(status: str = "firing") -> dict:
    """Two alerts of one group, as Alertmanager hands them to the templates."""
    def alert(instance: str, summary: str) -> dict:
        return {
            "status": status,
            "labels": {"alertname": "HighErrorRate", "severity": "critical", "instance": instance,
                       "job": "api-gateway", "service": "api-gateway", "cluster": "platform"},
            "annotations": {"summary": summary, "description": "More than 5% of the requests answered 5xx.",
                            "runbook_url": "https://runbooks.example.com/runbooks.md#higherrorrate"},
            "startsAt": "2026-11-28T07:00:00Z",
            "endsAt": "2026-11-28T07:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": instance,
        }

    return {
        "receiver": "critical", "status": status,
        "alerts": [alert("api-1:8000", "api-1: 12% of requests fail"), alert("api-2:8000", "api-2: 7% of requests fail")],
        "groupLabels": {"alertname": "HighErrorRate", "cluster": "platform", "service": "api-gateway"},
        "commonLabels": {"alertname": "HighErrorRate", "severity": "critical", "cluster": "platform",
                         "job": "api-gateway", "service": "api-gateway"},
        "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "version": "4",
        "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
    }


def render_template(amtool: str, config_dir: Path, tmp_path: Path, name: str, data: dict, kind: str = "text") -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    result = subprocess.run(
        [amtool, "template", "render", "--template.glob=templates/*.tmpl",
         f"--template.text={{{{ template \"{name}\" . }}}}", f"--template.data={data_file}", f"--template.type={kind}"],
        cwd=config_dir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name,kind", [("bundle.slack.text", "text"), ("bundle.email.text", "text"),
                                       ("bundle.email.html", "html")])
def test_notifications_show_name_severity_summary_instance_runbook_and_the_whole_group(
        name, kind, amtool, default_config, tmp_path):
    text = render_template(amtool, default_config, tmp_path, name, template_data(), kind)
    for needle in ("HighErrorRate", "critical", "api-1: 12% of requests fail", "api-2: 7% of requests fail",
                   "api-1:8000", "api-2:8000", "https://runbooks.example.com/runbooks.md#higherrorrate"):
        assert needle in text, f"{name} lacks {needle!r}:\n{text}"


def test_titles_carry_status_count_name_and_severity(amtool, default_config, tmp_path):
    assert render_template(amtool, default_config, tmp_path, "bundle.title", template_data()) == \
        "[FIRING:2] HighErrorRate (critical)"
    assert render_template(amtool, default_config, tmp_path, "bundle.email.subject", template_data("resolved")) == \
        "[RESOLVED] HighErrorRate (critical) on platform"


def test_slack_and_email_receivers_use_the_templates_unless_they_set_their_own(run_render):
    result = run_render({"alertmanager": {"receivers": {
        "default": {"email_configs": [{"to": "ops@example.com"}]},
        "critical": {"slack_configs": [{"channel": "#oncall", "api_url_secret": "slack_critical_webhook_url",
                                        "title": "{{ .CommonLabels.alertname }} (custom)"}]},
        "warning": {"webhook_configs": [{"url_secret": "slack_warning_webhook_url"}]}}}})
    assert result.code == 0, result.stderr
    receivers = {r["name"]: r for r in result.yaml("alertmanager/alertmanager.yml")["receivers"]}
    email = receivers["default"]["email_configs"][0]
    assert email["html"] == '{{ template "bundle.email.html" . }}'
    assert email["headers"]["Subject"] == '{{ template "bundle.email.subject" . }}'
    slack = receivers["critical"]["slack_configs"][0]
    assert slack["title"] == "{{ .CommonLabels.alertname }} (custom)"  # the user's own wins
    assert slack["text"] == '{{ template "bundle.slack.text" . }}'
    assert receivers["warning"]["webhook_configs"][0] == {"url_file": "/run/secrets/slack_warning_webhook_url"}


def test_amtool_check_config_parses_the_templates(amtool, default_config, tmp_path):
    result = subprocess.run([amtool, "check-config", "alertmanager.yml"], cwd=default_config,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 1 templates" in result.stdout
    # and a broken template is refused: the check covers them.
    broken = tmp_path / "alertmanager"
    subprocess.run(["cp", "-r", str(default_config), str(broken)], check=True)
    with (broken / "templates" / "notifications.tmpl").open("a") as fh:
        fh.write('{{ define "broken" }}{{ .Status \n')
    result = subprocess.run([amtool, "check-config", "alertmanager.yml"], cwd=broken, capture_output=True, text=True)
    assert result.returncode != 0 and "notifications.tmpl" in result.stdout + result.stderr


# --------------------------------------------------------------------------- bad input


def assert_refused(run_render, overlay: dict, *needles: str) -> None:
    good = run_render()
    assert good.code == 0, good.stderr
    before = {p: p.read_bytes() for p in good.output.rglob("*") if p.is_file()}
    result = run_render(overlay, extra=["--require-validators"])
    assert result.code == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in good.output.rglob("*") if p.is_file()} == before


def test_bad_promql_in_a_custom_rule_is_refused_and_config_kept(run_render):
    assert_refused(run_render, {"custom_rules": [{
        "alert": "Broken", "expr": "sum(rate(x[5m]) >", "for": "5m", "severity": "warning",
        "summary": "s", "description": "d"}]},
        "config/prometheus/prometheus.yml: promtool check config failed",
        'rules/custom.yml', '"Broken": could not parse expression')


def test_a_route_to_an_unknown_receiver_is_refused_and_config_kept(run_render):
    assert_refused(run_render, {"alertmanager": {"route": {"routes": [
        {"matchers": ['team="billing"'], "receiver": "billing-pager"}]}}},
        "alertmanager.route.routes[0].receiver: route names receiver 'billing-pager', which is not defined")


def test_a_malformed_route_matcher_is_refused_and_config_kept(run_render):
    assert_refused(run_render, {"alertmanager": {"route": {"routes": [
        {"matchers": ['severity=="critical"'], "receiver": "default"}]}}},
        "alertmanager.route.routes[0].matchers[0]: expected a matcher")
