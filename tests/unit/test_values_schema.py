"""values.yaml and values.schema.json must not drift apart, and values.yaml documents itself."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest


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
    list or a free-form map: those keys must all appear in the defaults."""
    node = resolve(schema, node)
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


def test_every_alert_in_values_has_a_rule_and_every_rule_its_values(values, run_render):
    # Every layer and the opt-in alerts on, so that every rule the templates hold renders.
    result = run_render({"layers": {"dashboards": True, "logs": True, "tracing": True, "apm": True},
                         "alerts": {"NginxHighErrorRate": {"enabled": True}}})
    assert result.code == 0, result.stderr
    rules = [rule for path in sorted((result.output / "prometheus/rules").glob("*.yml")) if path.name != "custom.yml"
             for group in result.yaml(f"prometheus/rules/{path.name}")["groups"] for rule in group["rules"]]
    names = [r["alert"] for r in rules]
    assert sorted(names) == sorted(values["alerts"])
    for rule in rules:
        spec = values["alerts"][rule["alert"]]
        assert rule["for"] == spec["for"]
        assert rule["labels"]["severity"] == spec["severity"]
        if "threshold" in spec:
            assert re.search(rf"[<>]\s*{re.escape(str(spec['threshold']))}\b", rule["expr"]), rule["alert"]
