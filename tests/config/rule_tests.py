"""promtool tests of the bundle's alerts, generated from their input series
(alert_cases.py) and the rendered rules: the firing, healthy, just-under and quiet cases
of test_rules.py and the contract tests, and step inputs that pin a rule's rate window.
`a` is an alert's settings (threshold, for, severity and its params): the values' in
test_rules.py, the monitoring guide's in tests/contract/."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import yaml

from alert_cases import CASES, STEP, Case, Series, level_itself, target_missing_series
from alerting import alert_rules
from bundle.alerts import settings

TAIL = 600  # seconds of data after the firing point, for the quiet checks
# The bundle's own rule files; custom.yml (values custom_rules) has kept tests instead.
BUNDLE_RULE_FILES = ["platform.yml", "bundle.yml", "logs.yml", "hosts.yml"]


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
    """Prometheus' `humanizeDuration` for positive values (template/template.go)."""
    assert v > 0, v
    if v < 1:
        return "%.4gms" % (v * 1000)
    whole = int(v)
    days, hours, minutes, secs = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    if days:
        return f"{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return "%.4gs" % v


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
    if kind == "once":  # one sample at the start, then none
        return f"{v:g} _x{n}"
    if kind == "clock":  # v plus the time since the start: v - time() stays v
        return f"{v:g}+{STEP}x{n}"
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

    near = near_level(case, a)
    if near is not None:
        # Just past the threshold it fires too: the threshold is the one in `a`, not
        # anywhere between it and the firing level.
        firing = f'count(ALERTS{{alertname="{name}",alertstate="firing"}})'
        groups.append({"name": f"{name}: fires just past the threshold {a['threshold']}", "interval": duration(STEP),
                       "input_series": input_series(case.series(a, near), n),
                       "promql_expr_test": [{"expr": firing, "eval_time": duration(fire_at),
                                             "exp_samples": [{"labels": "{}", "value": 1}]}]})
    groups.append(quiet("healthy", case.series(a, case.healthy)))
    if case.under is not None:
        groups.append(quiet(f"just under the threshold {a['threshold']}", case.series(a, case.under(a))))
    for label, make in case.quiet.items():
        groups.append(quiet(label, make(a)))
    return groups


def near_level(case: Case, a: dict) -> float | None:
    if case.near is not None:
        return case.near(a)
    if case.under is not None and case.value is level_itself and case.under(a) != a["threshold"]:
        return 2 * a["threshold"] - case.under(a)
    return None


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


def run_promtool_tests(promtool: str, rules_dir: Path, rule_files: list[str], groups: list[dict], name: str,
                       hint: str = "") -> None:
    test_file = rules_dir / f"{name}.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": rule_files, "evaluation_interval": duration(STEP), "tests": groups,
    }, sort_keys=False, width=1000))
    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=rules_dir, capture_output=True, text=True)
    assert result.returncode == 0, f"{hint}{test_file}:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- rate windows

# How the value of a windowed expression mixes a fault with the healthy level when the
# window holds both (a fraction p of it faulty):
#   share     linear (shares of counters, averages): p*fault + (1-p)*healthy
#   p95       a 95th percentile: in the fault's bucket while p > 5 %
#   increase  any increment in the window counts (increase(...) > threshold 0)
WINDOW_KINDS = ("share", "p95", "increase")


def phased(series_by_phase: list[tuple[Series, int]]) -> list[dict]:
    """Input series made of phases (series at one level, number of samples): gauges take
    each phase's value, counters keep counting with each phase's increase per sample."""
    names = list(series_by_phase[0][0])
    out = []
    for name in names:
        values, total = [], 0.0
        for series, count in series_by_phase:
            kind, v = series[name]
            for _ in range(count):
                if kind == "gauge":
                    values.append(v)
                else:
                    values.append(total)
                    total += v
        out.append({"series": name, "values": " ".join(f"{x:g}" for x in values)})
    return out


def window_test(name: str, case: Case, a: dict, expr: str, window: str, kind: str) -> dict:
    """A promtool test group that pins the rate window of `expr` with a step input: a
    long healthy stretch, the fault for longer than the window, then healthy again. The
    condition still holds shortly before the window has slid past the fault as far as
    `kind` says it must, and no longer holds shortly after: a window of another length
    (1m, 1h) moves that point by more than the two samples of slack either side."""
    assert kind in WINDOW_KINDS, kind
    w = seconds(window)
    steps = math.ceil(w / STEP) + 2
    fault, healthy = case.fire(a), case.healthy
    q = {"share": lambda: (a["threshold"] - healthy) / (fault - healthy), "p95": lambda: 0.05,
         "increase": lambda: 0.0}[kind]()
    # Samples are STEP apart: a window of w seconds holds w/STEP - 1 intervals of them.
    quiet_after = (w - STEP) * (1 - q)
    # Counters grow by a sample's level up to the next sample: the fault's last increase
    # lands on the first sample after its phase.
    end = 2 * steps * STEP
    still = end + max(STEP, math.floor((quiet_after - 2 * STEP) / STEP) * STEP)
    gone = end + math.ceil((quiet_after + 2 * STEP) / STEP) * STEP
    count = f"count((\n{expr.strip()}\n))"
    return {
        "name": f"{name}: a step input pins its {window} window", "interval": duration(STEP),
        "input_series": phased([(case.series(a, healthy), steps), (case.series(a, fault), steps),
                                (case.series(a, healthy), 2 * steps)]),
        "promql_expr_test": [
            {"expr": count, "eval_time": duration(end), "exp_samples": [{"labels": "{}", "value": 1}]},
            {"expr": count, "eval_time": duration(still), "exp_samples": [{"labels": "{}", "value": 1}]},
            {"expr": count, "eval_time": duration(gone), "exp_samples": []},
        ],
    }


def only_alert(rules_dir: Path, name: str) -> str:
    """A rule file holding just the rules of one alert, exactly as rendered: promtool
    then evaluates only them, which keeps each test fast and independent."""
    path = rules_dir / f"{name}.rules.yml"
    rules = alert_rules(rules_dir, BUNDLE_RULE_FILES)[name]
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}, sort_keys=False, width=1000))
    return path.name


def bundle_alerts(rules_dir: Path) -> list[str]:
    return sorted(alert_rules(rules_dir, BUNDLE_RULE_FILES))


