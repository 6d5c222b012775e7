"""Grafana dashboards as Python data: each dashboard module lists rows of compact panel
specs; this builder lays them out on Grafana's 24-column grid, numbers the panels,
fills in datasource uids and alert thresholds from the values, and returns the JSON
model. The tests import the same builder.

Panel spec keys (all optional but title):
  type        timeseries (default), stat, gauge, bargauge, table, logs, traces,
              nodeGraph, alertlist
  title, description
  w, h        width (default: the row shared equally) and height (default 8, stat 4)
  ds          key under values grafana.datasources (default prometheus; none for alertlist)
  targets     Prometheus: {expr, legend, instant, table}; other datasources: their query
              model (refId and datasource are added)
  unit, min, max, decimals, stack (timeseries stacked), no_value
  alert       an alert of the catalogue: its threshold colours the panel red beyond it
  below       with alert: red below the threshold rather than above it
  steps       explicit threshold steps (for values that are not alert thresholds)
  mappings    value mappings (e.g. 0 -> down, 1 -> up)
  exemplars   show exemplars (links to traces) when the tracing layer is on
  links       [{title, url}] panel links
  options, overrides, transformations: passed through to Grafana
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import alerts

# Every dashboard carries this tag: the "Dashboards" menu of each lists them all.
BUNDLE_TAG = "observability-bundle"
GRID_WIDTH = 24
# Thresholds and value mappings of an `up`-style 0/1 gauge.
UP_STEPS = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
UP_MAPPINGS = [{"type": "value", "options": {"0": {"text": "down", "color": "red", "index": 0},
                                              "1": {"text": "up", "color": "green", "index": 1}}}]
SELECTOR = 'host=~"$host",job=~"$job",instance=~"$instance"'  # the $host, $job and $instance variables
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
REDUCE = {"calcs": ["lastNotNull"], "fields": "", "values": False}
OPTIONS = {
    "timeseries": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "stat": {"reduceOptions": REDUCE, "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
             "orientation": "auto", "textMode": "auto"},
    "gauge": {"reduceOptions": REDUCE, "showThresholdLabels": False, "showThresholdMarkers": True},
    "bargauge": {"reduceOptions": REDUCE, "displayMode": "gradient", "orientation": "horizontal",
                 "showUnfilled": True},
    "table": {"showHeader": True, "cellHeight": "sm"},
}
FIELD_CONFIG_KINDS = ("timeseries", "stat", "gauge", "bargauge", "table")


@dataclass
class Dashboard:
    """One dashboard: where it goes, when it exists, and its content."""

    folder: str                      # Grafana folder = directory under config/grafana/dashboards
    uid: str                         # also the file name
    title: str
    description: str
    tags: list[str]
    rows: list[dict]                 # [{title, panels: [spec, ...]}]
    vars_from: str | None = None     # a metric whose host, job and instance labels fill the variables
    variables: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    time_from: str = "now-1h"
    refresh: str = "30s"


@dataclass
class Layout:
    """Left to right, top to bottom: a row title, then its panels; a panel that does not
    fit on the current line starts the next one."""

    x: int = 0
    y: int = 0
    line_height: int = 0
    next_id: int = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def row(self) -> int:
        self.y += self.line_height
        self.x, self.line_height = 0, 0
        y = self.y
        self.y += 1
        return y

    def place(self, w: int, h: int) -> dict:
        if self.x + w > GRID_WIDTH:
            self.y += self.line_height
            self.x, self.line_height = 0, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.line_height = max(self.line_height, h)
        return pos


def thresholds(spec: dict, values: dict) -> tuple[list[dict], str | None]:
    """Threshold steps (green, red beyond the alert threshold) and the note saying so."""
    if "alert" in spec:
        limit = alerts.settings(values)[spec["alert"]]["threshold"]
        below = spec.get("below", False)
        steps = ([{"color": "red", "value": None}, {"color": "green", "value": limit}] if below
                 else [{"color": "green", "value": None}, {"color": "red", "value": limit}])
        note = (f"Red {'below ' if below else 'from '}{limit}: the threshold of the {spec['alert']} alert "
                f"(values.yaml alerts.{spec['alert']}).")
    else:
        steps, note = [{"color": "green", "value": None}], None
    return spec.get("steps", steps), note


def panel(spec: dict, pos: dict, panel_id: int, values: dict) -> dict:
    kind = spec.get("type", "timeseries")
    ds_key = spec.get("ds", None if kind == "alertlist" else "prometheus")
    # A datasource's key under grafana.datasources is its Grafana type.
    ds = {"type": ds_key, "uid": values["grafana"]["datasources"][ds_key]["uid"]} if ds_key else None
    out: dict[str, Any] = {"id": panel_id, "type": kind, "title": spec["title"]}
    steps, note = thresholds(spec, values)
    notes = [text for text in (spec.get("description"), note) if text]
    if notes:
        out["description"] = " ".join(notes)
    if ds:
        out["datasource"] = ds
    out["gridPos"] = pos
    defaults: dict[str, Any] = {
        "unit": spec.get("unit", "short"),
        "color": {"mode": "thresholds" if kind in ("stat", "gauge", "bargauge") else "palette-classic"},
        "thresholds": {"mode": "absolute", "steps": steps},
    }
    defaults.update({key: spec[key] for key in ("min", "max", "decimals") if key in spec})
    if "mappings" in spec:
        defaults["mappings"] = spec["mappings"]
    if "no_value" in spec:
        defaults["noValue"] = spec["no_value"]
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if spec.get("stack") else "none"},
            "thresholdsStyle": {"mode": "dashed" if "alert" in spec else "off"},
        }
    if kind in FIELD_CONFIG_KINDS:
        out["fieldConfig"] = {"defaults": defaults, "overrides": spec.get("overrides", [])}
    out["options"] = {**OPTIONS.get(kind, {}), **spec.get("options", {})}
    if ds:
        out["targets"] = [target(t, ref, ds, spec, values) for t, ref in zip(spec["targets"], REF_IDS)]
    for key in ("transformations", "links"):
        if key in spec:
            out[key] = spec[key]
    return out


def target(t: dict, ref: str, ds: dict, spec: dict, values: dict) -> dict:
    if ds["type"] != "prometheus":
        return {"datasource": ds, "refId": ref, **t}
    instant = t.get("instant", False)
    out = {"datasource": ds, "refId": ref, "editorMode": "code", "expr": t["expr"],
           "legendFormat": t.get("legend", "__auto"), "range": not instant, "instant": instant}
    if t.get("table"):
        out["format"] = "table"
    if spec.get("exemplars") and values["layers"]["tracing"]:
        out["exemplar"] = True
    return out


def variables_from(metric: str, prom: dict) -> list[dict]:
    """$host (values `host` and `hosts`: every series carries one), then $job and
    $instance among the chosen hosts. "All" of $host also matches a series without it."""
    out = []
    for name, selector, everything in (("host", metric, ".*"), ("job", metric + '{host=~"$host"}', ".+"),
                                       ("instance", metric + '{host=~"$host",job=~"$job"}', ".+")):
        query = f"label_values({selector}, {name})"
        out.append({"name": name, "label": name.capitalize(), "type": "query", "datasource": prom, "query": query,
                    "definition": query, "refresh": 2, "sort": 1, "multi": True, "includeAll": True,
                    "allValue": everything, "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                    "options": [], "hide": 0})
    return out


def build(board: Dashboard, values: dict, source: str) -> dict:
    """The Grafana JSON model of one dashboard; `source` names the module it comes from."""
    prom = {"type": "prometheus", "uid": values["grafana"]["datasources"]["prometheus"]["uid"]}
    layout = Layout()
    panels = []
    for row in board.rows:
        panels.append({"id": layout.new_id(), "type": "row", "title": row["title"], "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": layout.row()}, "panels": []})
        for spec in row["panels"]:
            kind = spec.get("type", "timeseries")
            w = spec.get("w", GRID_WIDTH // len(row["panels"]))
            h = spec.get("h", 4 if kind == "stat" else 8)
            pos = layout.place(w, h)
            panels.append(panel(spec, pos, layout.new_id(), values))
    links = [{"type": "dashboards", "title": "Dashboards", "tags": [BUNDLE_TAG], "asDropdown": True,
              "includeVars": False, "keepTime": True, "icon": "external link", "tooltip": "", "url": "",
              "targetBlank": False}]
    links += [{"type": "link", "title": link["title"], "url": link["url"], "asDropdown": False,
               "includeVars": link.get("include_vars", False), "keepTime": True,
               "icon": link.get("icon", "dashboard"), "tooltip": link.get("tooltip", ""), "tags": [],
               "targetBlank": False} for link in board.links]
    annotations = [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                    "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                    "type": "dashboard"}]
    if board.vars_from:
        annotations.append({"datasource": prom, "enable": True, "hide": False, "iconColor": "red",
                            "name": "Firing alerts", "expr": 'ALERTS{alertstate="firing"}', "step": "60s",
                            "titleFormat": "{{alertname}}", "textFormat": "{{summary}}",
                            "tagKeys": "severity,job,instance", "useValueForTime": False})
    templating = (variables_from(board.vars_from, prom) if board.vars_from else []) + board.variables
    return {
        "uid": board.uid,
        "title": board.title,
        "description": f"{board.description} Generated by render.py from {source}. "
                       "Do not edit: change values.yaml and run `make render`.",
        "tags": [BUNDLE_TAG, *board.tags],
        "editable": False,
        "graphTooltip": 1,
        "timezone": "browser",
        "time": {"from": board.time_from, "to": "now"},
        "refresh": board.refresh,
        "schemaVersion": 39,
        "version": 1,
        "links": links,
        "annotations": {"list": annotations},
        "templating": {"list": templating},
        "panels": panels,
    }


def host_filesystems() -> str:
    """The label matchers of real host filesystems, shared with the disk alerts."""
    return alerts.catalogue()["snippets"]["host_filesystems"]
