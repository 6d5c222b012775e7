"""Helpers shared by the dashboard tests (unit, config, live): render the Grafana
dashboards for some values, and list the PromQL every dashboard runs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from bundle.output import render_tree

DASHBOARDS = Path("grafana") / "dashboards"

# Grafana's own interval variables, replaced by fixed durations so the query runs as is.
# $__rate_interval is at least four scrape intervals; 1m covers every interval used here.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)


def render_dashboards(values: dict, out: Path) -> dict[str, dict]:
    """Render every template for `values` into `out`; the dashboards by their path
    under config/grafana/dashboards (e.g. Infrastructure/system-overview.json)."""
    render_tree(values, out)
    root = out / DASHBOARDS
    return {str(p.relative_to(root)): json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(root.rglob("*.json"))} if root.exists() else {}


def all_panels(dashboard: dict) -> list[dict]:
    """Every panel, rows and the panels folded inside collapsed rows included."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


@dataclass(frozen=True)
class Query:
    dashboard: str   # uid
    where: str       # panel title and refId, variable name or annotation name
    expr: str        # the PromQL as Grafana sends it, variables and all
    kind: str        # panel, variable or annotation
    # (variable, its "All" value) of the dashboard: what Grafana puts in for "All"
    all_values: tuple = ()

    def promql(self, any_value: str = ".+") -> str:
        """Runnable PromQL: Grafana's interval variables become durations, dashboard
        variables (only ever used in regex matchers) match what their "All" does (or
        `any_value`), and a variable query label_values(selector, label) becomes the
        query Grafana runs for it."""
        expr = self.expr
        match = LABEL_VALUES.match(expr.strip())
        if match:
            expr = f"count by ({match.group(2)}) ({match.group(1)})"

        def value(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            return GRAFANA_INTERVALS.get(name) or dict(self.all_values).get(name) or any_value

        return VARIABLE.sub(value, expr)


def prometheus_queries(dashboard: dict) -> list[Query]:
    """Every query a dashboard sends to a Prometheus datasource."""
    uid = dashboard["uid"]
    every = tuple((v["name"], v["allValue"]) for v in dashboard.get("templating", {}).get("list", [])
                  if v.get("includeAll") and v.get("allValue"))
    found = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") == "prometheus":
                found.append(Query(uid, f"{panel['title']} [{target['refId']}]", target["expr"], "panel", every))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and variable.get("datasource", {}).get("type") == "prometheus":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            found.append(Query(uid, f"variable ${variable['name']}", query, "variable", every))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if annotation.get("datasource", {}).get("type") == "prometheus":
            found.append(Query(uid, f"annotation {annotation['name']}", annotation["expr"], "annotation", every))
    return found
