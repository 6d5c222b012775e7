"""Every PromQL query of every dashboard (panels, variables, annotations) parses with the
real promtool: each becomes a recording rule, Grafana's variables substituted the way
Grafana would (intervals as durations, $job/$instance as the "All" regex)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from bundle import DEFAULT_VALUES
from bundle.cli import load
from bundle.values import merge
from dashboards import VARIABLE, prometheus_queries, render_dashboards

pytestmark = pytest.mark.config

ALL_LAYERS = {"dashboards": True, "logs": True, "tracing": True, "apm": True}


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    values, _ = load([DEFAULT_VALUES])
    values = merge(values, {"layers": ALL_LAYERS})
    dashboards = render_dashboards(values, tmp_path_factory.mktemp("config"))
    found = [q for d in dashboards.values() for q in prometheus_queries(d)]
    assert len(found) > 100, "expected every Prometheus dashboard to contribute its queries"
    return found


def test_every_dashboard_query_parses_with_promtool(queries, tmp_path, tool):
    promtool = tool("promtool")
    groups = [{"name": f"{q.dashboard} #{i}: {q.where}",
               "rules": [{"record": f"dashboard:query_{i}", "expr": q.promql()}]}
              for i, q in enumerate(queries)]
    left = [g["name"] for g in groups if VARIABLE.search(g["rules"][0]["expr"])]
    assert not left, f"variables left unsubstituted in {left}"
    rules = tmp_path / "dashboards.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout, result.stdout


def test_promtool_refuses_a_broken_query(tmp_path, tool):
    """The check above can fail: a query with a typo does not pass."""
    promtool = tool("promtool")
    rules = tmp_path / "broken.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [
        {"record": "dashboard:query_0", "expr": "sum by (job (rate(up[1m]))"}]}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode != 0
