"""Shared by the alerting tests: the values the rules are rendered with, and the rules.

The rule tests render with the values in use (values.yaml plus the VALUES overlays that
`make` exports as BUNDLE_VALUES), with every layer and every optional alert switched on,
so that each rule any configuration can produce is rendered and tested with the very
thresholds the values set.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import yaml

from bundle import DEFAULT_VALUES
from bundle.cli import load
from bundle.output import render_tree
from bundle.values import merge

ROOT = Path(__file__).resolve().parents[2]
# promtool test files a user keeps for the rules under values `custom_rules`.
KEPT_RULE_TESTS = ROOT / "tests" / "rules"

# Every layer and every optional alert on: the superset of the rules the templates make.
EVERYTHING_ON = {
    "layers": {"dashboards": True, "logs": True, "tracing": True, "apm": True,
               "edge": True, "alertmanager_ha": True, "blackbox": True},
    "alerts": {"NginxHighErrorRate": {"enabled": True}},
    # An agent host: the alerts on remote hosts and remote write render.
    "hosts": {"web-1": {"mode": "agent", "exporters": ["node"]}},
}


def values_in_use() -> dict:
    overlays = [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]
    values, _ = load([DEFAULT_VALUES, *overlays])
    return values


def rule_values() -> dict:
    return merge(values_in_use(), EVERYTHING_ON)


def render_to(values: dict, target: Path) -> Path:
    """Render every template into `target` (no validators: the tests run them)."""
    render_tree(values, target)
    return target


def alert_rules(rules_dir: Path, names: list[str] | None = None) -> dict[str, list[dict]]:
    """alert name -> its rules, from the rendered rule files (all, or those named)."""
    found: dict[str, list[dict]] = {}
    for path in sorted(rules_dir.glob("*.yml")):
        if names is not None and path.name not in names:
            continue
        for group in yaml.safe_load(path.read_text())["groups"] or []:
            for rule in group["rules"]:
                if "alert" in rule:
                    found.setdefault(rule["alert"], []).append(rule)
    return found
