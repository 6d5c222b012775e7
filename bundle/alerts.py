"""The alert catalogue (alerts.yaml) merged with values.yaml `alerts`: the rule files,
the schema of `alerts`, and the table of docs/alerting.md all come from here."""

from __future__ import annotations

import re
import textwrap
from functools import cache
from typing import Any

import yaml

from . import PACKAGE, layers
from .errors import InputError
from .formats import comment, to_document

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)\}")
SETTINGS = ("enabled", "threshold", "for", "severity")
UNITS = {  # unit of a threshold -> its schema
    "percent": {"type": "number", "minimum": 0, "maximum": 100, "x-expect": "a percentage 0-100"},
    "seconds": {"type": "number", "exclusiveMinimum": 0, "x-expect": "a number of seconds > 0"},
    "count": {"type": "number", "minimum": 0, "x-expect": "a number >= 0"},
    "days": {"type": "number", "exclusiveMinimum": 0, "x-expect": "a number of days > 0"},
}
# Conditions an entry can name in `requires` (what the docs table says, and the test).
REQUIRES = {
    "agent_hosts": ("while a host of `hosts` is in mode agent",
                    lambda values: any(h["mode"] == "agent" for h in values["hosts"].values())),
    "remote_write": ("while `prometheus.remote_write` or an agent host sends",
                     lambda values: bool(values["prometheus"]["remote_write"])
                     or any(h["mode"] == "agent" for h in values["hosts"].values())),
}


@cache
def catalogue() -> dict:
    return yaml.safe_load((PACKAGE / "alerts.yaml").read_text(encoding="utf-8"))


def entries() -> list[dict]:
    return catalogue()["alerts"]


def defaults(entry: dict) -> dict:
    """An alert's settings when the values say nothing: enabled, threshold, for,
    severity and its own params."""
    out = {"enabled": True, **entry["defaults"]}
    out.update({name: param["default"] for name, param in entry.get("params", {}).items()})
    return out


def settings(values: dict) -> dict[str, dict]:
    """alert name -> its settings: the catalogue's defaults with values `alerts` over them."""
    chosen = values.get("alerts", {})
    return {e["alert"]: {**defaults(e), **chosen.get(e["alert"], {})} for e in entries()}


def substitute(text: str, own: dict, every: dict[str, dict], computed: dict[str, str], where: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if "." in name:
            alert, key = name.split(".", 1)
            found = every.get(alert, {}).get(key)
        else:
            found = own.get(name, catalogue()["snippets"].get(name, computed.get(name)))
        if found is None:
            raise InputError([f"bundle/alerts.yaml: {where}: unknown placeholder ${{{name}}}"])
        return str(found)

    return PLACEHOLDER.sub(value, text)


def rendered(values: dict, runbook_base_url: str) -> list[tuple[dict, dict]]:
    """(catalogue entry, rule) of every alert the values render: enabled, of an enabled
    layer, and with the scrape job it requires."""
    every = settings(values)
    jobs = layers.scrape_jobs(values)
    computed = {"scrape_jobs_absent": "\n".join(
        ("" if i == 0 else "or ") + f'absent(up{{job="{name}"}})' for i, name in enumerate(jobs))}
    out = []
    names: set[str] = set()
    for entry in entries():
        name, own = entry["alert"], every[entry["alert"]]
        if not (own["enabled"] and layers.is_on(values, entry.get("layer", "core"))):
            continue
        if entry.get("requires_job") and entry["requires_job"] not in jobs:
            continue
        # The catalogue lists an alert before any alert that requires it.
        if entry.get("requires_alert") and entry["requires_alert"] not in names:
            continue
        if entry.get("requires") and not REQUIRES[entry["requires"]][1](values):
            continue
        names.add(name)
        text = {key: substitute(entry[key], own, every, computed, f"{name}.{key}")
                for key in ("expr", "summary", "description")}
        out.append((entry, {
            "alert": name,
            "expr": text["expr"],
            "for": own["for"],
            "labels": {"severity": own["severity"]},
            "annotations": {
                "summary": text["summary"],
                "description": text["description"],
                "runbook_url": f"{runbook_base_url}#{name.lower()}",
            },
        }))
    return out


def rule_files(values: dict) -> dict[str, str]:
    """config/prometheus/rules/<file> -> its text, for every file that has a rule."""
    by_group: dict[str, list[dict]] = {}
    for entry, rule in rendered(values, values["runbook_base_url"]):
        by_group.setdefault(entry["group"], []).append(rule)
    files: dict[str, list[dict]] = {}
    for group, file in catalogue()["groups"].items():
        if group in by_group:
            files.setdefault(file, []).append({"name": group, "rules": by_group[group]})
    why = {entry["alert"]: entry["why"] for entry in entries() if "why" in entry}
    out = {}
    for file, groups in files.items():
        header = "\n".join([
            "Generated by render.py from bundle/alerts.yaml and values.yaml `alerts`.",
            "Do not edit: change values.yaml and run `make render`.",
            *textwrap.wrap(" ".join(catalogue()["files"][file].split()), 86),
            "https://prometheus.io/docs/prometheus/latest/configuration/alerting_rules/"])
        lines = []
        for line in to_document({"groups": groups}).splitlines():
            # Each rule's reasoning as a comment above it (a serializer writes no comments).
            name = line.removeprefix("      - alert: ")
            if name != line and name in why:
                lines += [f"      # {text}" for text in textwrap.wrap(" ".join(why[name].split()), 80)]
            lines.append(line)
        out[file] = comment(header) + "\n" + "\n".join(lines) + "\n"
    return out


def schema() -> dict:
    """The `alerts` branch of values.schema.json: one key per alert of the catalogue."""
    properties = {}
    for entry in entries():
        props: dict[str, Any] = {"enabled": {"type": "boolean"},
                                 "for": {"$ref": "#/$defs/duration"},
                                 "severity": {"$ref": "#/$defs/severity"}}
        if "threshold" in entry["defaults"]:
            props["threshold"] = UNITS[entry["unit"]]
        for name, param in entry.get("params", {}).items():
            props[name] = param["schema"]
        text = entry["about"].strip()
        props_defaults = defaults(entry)
        properties[entry["alert"]] = {
            "type": "object",
            "additionalProperties": False,
            "properties": props,
            "description": f"{text} Defaults: " + ", ".join(
                f"{k} {v}" for k, v in props_defaults.items()) + ".",
        }
    return {"type": "object", "additionalProperties": False, "properties": properties}


def docs_table() -> str:
    """The table of docs/alerting.md: every alert, where it is written, its defaults,
    what its threshold means and when it is rendered."""
    rows = ["| alert | rule file / group | severity | for | threshold | what it watches | rendered |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for entry in entries():
        d = defaults(entry)
        threshold = f"{d['threshold']} ({entry['unit']})" if "threshold" in d else "-"
        when = ([f"`layers.{entry['layer']}`"] if entry.get("layer", "core") != "core" else []) + (
            [f"while a job named `{entry['requires_job']}` is scraped"] if entry.get("requires_job") else []) + (
            [f"while {entry['requires_alert']} is"] if entry.get("requires_alert") else []) + (
            [REQUIRES[entry["requires"]][0]] if entry.get("requires") else []) + (
            ["`enabled: true`"] if not d["enabled"] else [])
        about = " ".join(entry["about"].split()).replace("|", "\\|")
        rows.append(f"| [{entry['alert']}](runbooks.md#{entry['alert'].lower()}) "
                    f"| {catalogue()['groups'][entry['group']]} / {entry['group']} | {d['severity']} | {d['for']} "
                    f"| {threshold} | {about} | {', '.join(when) or 'always'} |")
    return "\n".join(rows) + "\n"


def custom_rule_file(values: dict) -> str:
    """config/prometheus/rules/custom.yml: values `custom_rules`, written as given."""
    rules = []
    for rule in values["custom_rules"]:
        annotations = {"summary": rule["summary"], "description": rule["description"]}
        if "runbook_url" in rule:
            annotations["runbook_url"] = rule["runbook_url"]
        rules.append({"alert": rule["alert"], "expr": rule["expr"], "for": rule["for"],
                      "labels": {**rule.get("labels", {}), "severity": rule["severity"]},
                      "annotations": annotations})
    header = ("Generated by render.py from values.yaml `custom_rules`, written as given.\n"
              "Do not edit: change values.yaml and run `make render`. Their promtool tests\n"
              "are kept under tests/rules/ (docs/alerting.md).")
    return comment(header) + "\n" + to_document({"groups": [{"name": "custom", "rules": rules}] if rules else []})
