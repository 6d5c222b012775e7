"""Every alerting rule, unit-tested with the real promtool (`promtool test rules`).

Each alert's test is generated (tests/config/rule_tests.py): its input series come from
tests/config/alert_cases.py, everything else from the rules rendered with the values, so a
threshold or `for` changed in the values changes the test with it:
  - fire:    a faulty series makes it fire at exactly (condition true) + `for`, with the
             expected labels and severity, and annotations whose Prometheus templates
             expand ($labels, $value, humanize) to the expected text; it is still only
             pending one evaluation before: `for` is honoured;
  - healthy: healthy series keep it quiet;
  - under:   series just on the quiet side of the threshold keep it quiet;
  - extra quiet cases where a selector must not match (an overlay filesystem, a
    read-only one, a Redis without maxmemory, an exporter for ServiceDown, ...).
Every test runs twice: with values.yaml alone (the defaults users start from) and with the
values in use (values.yaml plus the VALUES overlays), when those differ. Whether the
defaults are the monitoring guide's is tests/contract/'s question.
The meta-test at the end fails for any rendered alert without a firing and a quiet case.
Rules from values `custom_rules` are the user's: their tests are promtool files kept
under tests/rules/ (see docs/alerting.md).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from alert_cases import CASES
from alerting import EVERYTHING_ON, KEPT_RULE_TESTS, alert_rules, render_to, rule_values
from bundle import DEFAULT_VALUES
from bundle.alerts import settings
from bundle.cli import load
from bundle.values import merge
from rule_tests import (BUNDLE_RULE_FILES, alert_settings, bundle_alerts, case_for, only_alert, promtool_tests,
                        run_promtool_tests)

pytestmark = pytest.mark.config


def value_sets() -> dict[str, dict]:
    """The defaults and, when overlays change anything, the values in use; every layer
    and optional alert on."""
    defaults, _ = load([DEFAULT_VALUES])
    sets = {"defaults": merge(defaults, EVERYTHING_ON)}
    in_use = rule_values()
    if in_use != sets["defaults"]:
        sets["values in use"] = in_use
    return sets


VALUE_SETS = value_sets()


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request, tmp_path_factory):
    values = VALUE_SETS[request.param]
    out = render_to(values, tmp_path_factory.mktemp("rules") / "config")
    return values, out / "prometheus" / "rules"


@pytest.fixture(scope="module")
def promtool(tool):
    return tool("promtool")


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
    for name in sorted(set(CASES) & set(rules)):
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
