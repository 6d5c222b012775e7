"""values.yaml and values.schema.json must not drift apart, values.yaml documents itself,
and the schema source states each shape once."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import yaml

from bundle import PACKAGE, alerts, generate


pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def schema(root):
    return json.loads((root / "values.schema.json").read_text())


def test_values_file_points_editors_at_the_schema(root):
    first = (root / "values.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./values.schema.json"


def test_schema_is_a_valid_draft_2020_12_schema(schema):
    jsonschema.Draft202012Validator.check_schema(schema)


def test_defaults_satisfy_the_schema(schema, values):
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(values))
    assert not errors, [e.message for e in errors]


def fixed_objects(schema, node, path=()):
    """(path, schema) of every object with fixed keys reachable without going through a
    list or a free-form map: those keys must all appear in the defaults. `alerts` is
    not one: its defaults are the catalogue's, values.yaml only overrides them."""
    node = resolve(schema, node)
    if path == ("alerts",):
        return
    if node.get("type") == "object" and "properties" in node:
        yield path, node
        for key, sub in node["properties"].items():
            yield from fixed_objects(schema, sub, path + (key,))


def resolve(schema, node):
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].split("/")[-1]]
    return node


def test_every_schema_key_is_present_in_the_defaults(schema, values):
    missing = []
    for path, node in fixed_objects(schema, schema):
        here = values
        for key in path:
            here = here[key]
        missing += [".".join(path + (k,)) for k in node["properties"] if k not in here]
    assert not missing, f"keys in the schema but not in values.yaml: {missing}"


def test_every_object_refuses_unknown_keys(schema):
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, sub in node.items():
                walk(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}/{i}")

    walk(schema, "#")


def test_every_key_of_values_yaml_has_a_comment_above_it(root):
    """Top-level and second-level keys each have a comment line above them. Entries of
    `secrets` carry their own `description`; `ports` and `memory` are plain maps of
    service to number, explained once above the map."""
    lines = (root / "values.yaml").read_text().splitlines()
    undocumented, parent = [], None
    for i, line in enumerate(lines):
        top = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line)
        parent = top.group(1) if top else parent
        match = re.match(r"^(  )?([A-Za-z_][A-Za-z0-9_]*):", line)
        if not match or (match.group(1) and parent in ("secrets", "ports", "memory")):
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#"):
            undocumented.append(f"values.yaml:{i + 1}: {match.group(2)}")
    assert not undocumented, undocumented


def test_generated_files_are_fresh():
    """values.schema.json, the alert table of docs/alerting.md and the stand-ins overlay
    are what `make generate` writes now."""
    stale = [str(path) for path, text in generate.expected().items() if path.read_text() != text]
    assert not stale, f"run make generate: {stale}"


def test_every_alert_of_the_catalogue_renders_with_the_settings_values_give_it(run_render):
    # Every layer and the opt-in alert on, so that every rule of the catalogue renders.
    overrides = {"HighCPUUsage": {"threshold": 93, "for": "17m", "severity": "critical"},
                 "NginxHighErrorRate": {"enabled": True},
                 "RedisDown": {"for": "3m"}}
    result = run_render({"layers": {"dashboards": True, "logs": True, "tracing": True, "apm": True,
                                    "edge": True, "alertmanager_ha": True, "blackbox": True},
                         "hosts": {"web-1": {"mode": "agent", "exporters": ["node"]}},
                         "alerts": overrides})
    assert result.code == 0, result.stderr
    rules = {rule["alert"]: rule for path in sorted((result.output / "prometheus/rules").glob("*.yml"))
             if path.name != "custom.yml"
             for group in result.yaml(f"prometheus/rules/{path.name}")["groups"] for rule in group["rules"]}
    assert sorted(rules) == sorted(entry["alert"] for entry in alerts.entries())
    cpu = rules["HighCPUUsage"]
    assert cpu["for"] == "17m" and cpu["labels"] == {"severity": "critical"}
    assert re.search(r">\s*93\s*$", cpu["expr"].strip()) and "more than 93%" in cpu["annotations"]["description"]
    assert rules["RedisDown"]["for"] == "3m"


def test_an_alert_switched_off_is_not_rendered(run_render):
    result = run_render({"alerts": {"HighCPUUsage": {"enabled": False}}})
    assert result.code == 0, result.stderr
    assert "alert: HighCPUUsage" not in result.text("prometheus/rules/platform.yml")
    assert "alert: HighMemoryUsage" in result.text("prometheus/rules/platform.yml")


def test_an_unknown_alert_or_setting_is_refused(run_render, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  HighCPUUsge:\n    threshold: 90\n  RedisDown:\n    threshold: 3\n")
    result = run_render(bad)
    assert result.code == 1
    assert "bad.yaml:2: alerts.HighCPUUsge: unknown key; did you mean 'HighCPUUsage'?" in result.stderr
    assert "bad.yaml:5: alerts.RedisDown.threshold: unknown key" in result.stderr


def shapes(node, out):
    """Every mapping of the schema source with its canonical text."""
    if isinstance(node, dict):
        if len(node) >= 3:
            out.append(yaml.safe_dump(node, sort_keys=True))
        for value in node.values():
            shapes(value, out)
    elif isinstance(node, list):
        for value in node:
            shapes(value, out)
    return out


def test_the_schema_source_states_each_shape_once():
    """No object shape of three or more keys is written twice in values.schema.yaml: a
    repeated one belongs in $defs (the alerts branch comes from the catalogue)."""
    source = yaml.safe_load((PACKAGE / "values.schema.yaml").read_text())
    found = shapes(source, [])
    repeated = sorted({text for text in found if found.count(text) > 1})
    assert not repeated, repeated
