"""Every alerting rule, unit-tested with the real promtool (`promtool test rules`).

Each alert's test is generated: its input series come from tests/config/alert_cases.py,
everything else from the rules rendered with the values in use (values.yaml plus the
VALUES overlays), so a threshold or `for` changed in the values changes the test with it:
  - fire:    a faulty series makes it fire at exactly (condition true) + `for`, with the
             expected labels and severity, and annotations whose Prometheus templates
             expand ($labels, $value, humanize) to the expected text; it is still only
             pending one evaluation before: `for` is honoured;
  - healthy: healthy series keep it quiet;
  - under:   series just on the quiet side of the threshold keep it quiet;
  - extra quiet cases where a selector must not match (an overlay filesystem, a
    read-only one, a Redis without maxmemory, an exporter for ServiceDown, ...).
The meta-test at the end fails for any rendered alert without a firing and a quiet case.
Rules from values `custom_rules` are the user's: their tests are promtool files kept
under tests/rules/ (see docs/alerting.md).
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alert_cases import CASES, STEP, Case, Series, target_missing_series
from alerting import KEPT_RULE_TESTS, alert_rules, render_to, rule_values
from bundle.alerts import settings
from bundle.values import merge

pytestmark = pytest.mark.config

TAIL = 600  # seconds of data after the firing point, for the quiet checks
# The bundle's own rule files; custom.yml (values custom_rules) has kept tests instead.
BUNDLE_RULE_FILES = ["platform.yml", "bundle.yml", "logs.yml"]


# --------------------------------------------------------------------------- helpers


def seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return int(sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(duration))))


def humanize(v: float) -> str:
    """Prometheus' `humanize` template function (metric prefixes, 4 significant digits)."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return "%.4g" % v
    prefix = ""
    if abs(v) >= 1:
        for p in "kMGTPEZY":
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in "mun":
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return "%.4g%s" % (v, prefix)


def humanize_duration(v: float) -> str:
    """Prometheus' `humanizeDuration` for values below a minute."""
    assert 0 < v < 60, v
    return "%.4gs" % v if v >= 1 else "%.4gms" % (v * 1000)


def go_value(v: float) -> str:
    """A sample value as Go prints `{{ $value }}`."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# The part of Prometheus' alert templating the bundle's annotations use.
TEMPLATE = re.compile(r"\{\{\s*(?:\$labels\.(\w+)|(\$value))\s*(?:\|\s*(humanize|humanizeDuration)\s*)?\}\}")
FORMAT = {None: go_value, "humanize": humanize, "humanizeDuration": humanize_duration}


def expand(text: str, labels: dict, value: float) -> str:
    """An annotation as Prometheus renders it for an alert with these labels and value."""
    def one(match: re.Match) -> str:
        label, is_value, function = match.groups()
        if label:
            assert label in labels, f"the annotation reads $labels.{label}, which the alert does not carry"
            return labels[label]
        return FORMAT[function](value)

    out = TEMPLATE.sub(one, text)
    assert "{{" not in out, f"templating this test cannot expand: {text}"
    return out


# --------------------------------------------------------------------------- generation


def samples(kind: str, v: float, n: int) -> str:
    return f"{v:g}+0x{n}" if kind == "gauge" else f"0+{v:g}x{n}"


def input_series(series: Series, n: int) -> list[dict]:
    return [{"series": sel, "values": samples(kind, v, n)} for sel, (kind, v) in series.items()]


def duration(sec: int) -> str:
    return f"{sec}s"


def promtool_tests(name: str, case: Case, a: dict, rule: dict, runbook_base_url: str) -> list[dict]:
    """The promtool test groups of one alert: fire (with `for`), healthy, under, quiet."""
    hold = seconds(a["for"])
    fire_at = case.true_from + math.ceil(hold / STEP) * STEP
    n = (fire_at + TAIL) // STEP + 1
    level = case.fire(a)
    labels = {k: str(v) for k, v in case.labels(a, level).items()}
    value = case.value(a, level)
    expected = {
        "exp_labels": {**labels, "severity": a["severity"]},
        "exp_annotations": {
            "summary": expand(rule["annotations"]["summary"], labels, value),
            "description": expand(rule["annotations"]["description"], labels, value),
            "runbook_url": f"{runbook_base_url}#{name.lower()}",
        },
    }
    checks = []
    if fire_at > 0 and hold > 0:
        # `for` honoured: still pending one evaluation before it may fire.
        checks.append({"eval_time": duration(fire_at - STEP), "alertname": name, "exp_alerts": []})
    checks.append({"eval_time": duration(fire_at), "alertname": name, "exp_alerts": [expected]})
    checks.append({"eval_time": duration(fire_at + TAIL), "alertname": name, "exp_alerts": [expected]})
    groups = [{"name": f"{name}: fires after for={a['for']}", "interval": duration(STEP),
               "input_series": input_series(case.series(a, level), n), "alert_rule_test": checks}]

    def quiet(label: str, series: Series) -> dict:
        return {"name": f"{name}: quiet ({label})", "interval": duration(STEP), "input_series": input_series(series, n),
                "alert_rule_test": [{"eval_time": duration(t), "alertname": name, "exp_alerts": []}
                                    for t in (fire_at, fire_at + TAIL)]}

    groups.append(quiet("healthy", case.series(a, case.healthy)))
    if case.under is not None:
        groups.append(quiet(f"just under the threshold {a['threshold']}", case.series(a, case.under(a))))
    for label, make in case.quiet.items():
        groups.append(quiet(label, make(a)))
    return groups


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    values = rule_values()
    out = render_to(values, tmp_path_factory.mktemp("rules") / "config")
    return values, out / "prometheus" / "rules"


@pytest.fixture(scope="module")
def promtool(tool):
    return tool("promtool")


def case_for(name: str, values: dict) -> Case:
    case = CASES[name]
    if name == "TargetMissing":
        case.series = target_missing_series(values)
    return case


def alert_settings(values: dict, name: str) -> dict:
    own = dict(settings(values)[name])
    if name == "DiskMetricsMissing":  # watches the mountpoint DatabaseDiskFull reads
        own["mountpoint"] = settings(values)["DatabaseDiskFull"]["mountpoint"]
    return own


def run_promtool_tests(promtool: str, rules_dir: Path, rule_files: list[str], groups: list[dict], name: str) -> None:
    test_file = rules_dir / f"{name}.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": rule_files, "evaluation_interval": duration(STEP), "tests": groups,
    }, sort_keys=False, width=1000))
    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=rules_dir, capture_output=True, text=True)
    assert result.returncode == 0, f"{test_file}:\n{result.stdout}{result.stderr}"


def only_alert(rules_dir: Path, name: str) -> str:
    """A rule file holding just the rules of one alert, exactly as rendered: promtool
    then evaluates only them, which keeps each test fast and independent."""
    path = rules_dir / f"{name}.rules.yml"
    rules = alert_rules(rules_dir, BUNDLE_RULE_FILES)[name]
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}, sort_keys=False, width=1000))
    return path.name


def bundle_alerts(rules_dir: Path) -> list[str]:
    return sorted(alert_rules(rules_dir, BUNDLE_RULE_FILES))


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_fires_on_time_with_its_labels_and_stays_quiet_otherwise(name, rendered, promtool):
    values, rules_dir = rendered
    if name not in bundle_alerts(rules_dir):
        # CeleryWorkerOffline exists only while a job named flower is scraped.
        pytest.skip(f"the values in use render no {name} rule")
    rule = alert_rules(rules_dir, BUNDLE_RULE_FILES)[name][0]
    groups = promtool_tests(name, case_for(name, values), alert_settings(values, name), rule,
                            values["runbook_base_url"])
    run_promtool_tests(promtool, rules_dir, [only_alert(rules_dir, name)], groups, name)


# --------------------------------------------------------------------------- kept tests


def kept_test_files() -> list[Path]:
    return sorted(KEPT_RULE_TESTS.glob("**/*.test.yml")) if KEPT_RULE_TESTS.exists() else []


def kept_cases(path: Path) -> dict[str, set[str]]:
    """alert name -> {"fire", "quiet"}: the kinds of checks a kept test file makes."""
    found: dict[str, set[str]] = {}
    for test in yaml.safe_load(path.read_text()).get("tests", []):
        for check in test.get("alert_rule_test", []):
            found.setdefault(check["alertname"], set()).add("fire" if check.get("exp_alerts") else "quiet")
    return found


def test_kept_rule_tests_pass_for_the_custom_rules_in_use(rendered, promtool, tmp_path):
    """Every kept promtool file whose alerts are all among the custom rules in use runs
    against the rendered custom.yml (its rule_files: [custom.yml])."""
    values, rules_dir = rendered
    custom = set(alert_rules(rules_dir, ["custom.yml"]))
    for path in kept_test_files():
        if not set(kept_cases(path)) <= custom:
            continue  # a test of custom rules another values file defines
        target = rules_dir / path.name
        target.write_text(path.read_text())
        result = subprocess.run([promtool, "test", "rules", target.name], cwd=rules_dir, capture_output=True, text=True)
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- meta-test


# An expression that reads no series, like vector(1): it can only fire, never be quiet.
CONSTANT = re.compile(r"\s*vector\(\s*[0-9.]+\s*\)\s*")


def untested(rules_dir: Path) -> list[str]:
    """Alerts of the rendered rules without both a firing and a quiet test."""
    problems = []
    for name in bundle_alerts(rules_dir):
        if name not in CASES:
            problems.append(f"{name}: no test case in tests/config/alert_cases.py CASES")
    kinds: dict[str, set[str]] = {}
    for path in kept_test_files():
        for name, found in kept_cases(path).items():
            kinds.setdefault(name, set()).update(found)
    for name, rules in sorted(alert_rules(rules_dir, ["custom.yml"]).items()):
        needed = {"fire"} if all(CONSTANT.fullmatch(r["expr"]) for r in rules) else {"fire", "quiet"}
        missing = needed - kinds.get(name, set())
        if missing:
            problems.append(f"{name} (custom_rules): no {' and no '.join(sorted(missing))} case in a "
                            f"promtool test file under tests/rules/")
    return problems


def test_every_alert_has_a_firing_and_a_quiet_test(rendered):
    _, rules_dir = rendered
    assert bundle_alerts(rules_dir), "no alert rendered"
    assert not untested(rules_dir), "\n".join(untested(rules_dir))


def test_every_case_checks_fire_and_quiet(rendered):
    values, rules_dir = rendered
    rules = alert_rules(rules_dir, BUNDLE_RULE_FILES)
    for name in CASES:
        groups = promtool_tests(name, case_for(name, values), alert_settings(values, name), rules[name][0], "x")
        assert any(c["exp_alerts"] for g in groups for c in g["alert_rule_test"]), name
        assert sum(1 for g in groups if "quiet" in g["name"]) >= 1, name


def test_meta_test_catches_an_untested_rule(tmp_path):
    """A custom rule nobody tested, and a bundle rule without a case, are both reported."""
    values = merge(rule_values(), {"custom_rules": [{
        "alert": "UntestedSignupsStalled", "expr": "vector(1)", "for": "5m", "severity": "warning",
        "summary": "s", "description": "d", "runbook_url": "https://wiki.example.com/signups"}]})
    rules_dir = render_to(values, tmp_path / "config") / "prometheus" / "rules"
    assert any(p.startswith("UntestedSignupsStalled (custom_rules)") for p in untested(rules_dir))
    custom = alert_rules(rules_dir, ["custom.yml"])["UntestedSignupsStalled"][0]
    assert custom["annotations"]["runbook_url"] == "https://wiki.example.com/signups"
    platform = rules_dir / "platform.yml"
    platform.write_text(platform.read_text().replace("- alert: RedisDown", "- alert: RedisGone"))
    assert "RedisGone: no test case in tests/config/alert_cases.py CASES" in untested(rules_dir)


def test_every_rule_carries_summary_description_and_runbook(rendered):
    values, rules_dir = rendered
    for name, rules in alert_rules(rules_dir, BUNDLE_RULE_FILES).items():
        for rule in rules:
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
            assert rule["annotations"]["runbook_url"] == f"{values['runbook_base_url']}#{name.lower()}"
            assert rule["labels"]["severity"] == settings(values)[name]["severity"]
            assert rule["for"] == settings(values)[name]["for"]


def test_every_alert_has_a_runbook_section(rendered, root):
    """docs/runbooks.md has a heading for each alert, so each runbook_url anchor resolves."""
    _, rules_dir = rendered
    text = (root / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9_-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"(?m)^#{2,3} (.+)$", text)}
    missing = [n for n in bundle_alerts(rules_dir) if n.lower() not in anchors]
    assert not missing, f"no section in docs/runbooks.md for {missing}"
