"""values.schema.json: its source (values.schema.yaml) with the `alerts` branch from the
catalogue, and the checks of the merged values against it, one line per problem."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from typing import Iterator

import jsonschema
import yaml

from . import PACKAGE, ROOT, alerts
from .values import Source, dotted

SCHEMA_JSON = ROOT / "values.schema.json"


@cache
def schema() -> dict:
    source = yaml.safe_load((PACKAGE / "values.schema.yaml").read_text(encoding="utf-8"))
    source["properties"]["alerts"] = alerts.schema()
    return source


def json_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def problems(values: dict, source: Source) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    found = [line for error in validator.iter_errors(values) for line in describe(error, source)]
    return sorted(found, key=by_position)


def by_position(problem: str) -> tuple:
    """Sort key: file, then line number, for messages that start with file:line:."""
    match = re.match(r"([^:]*):(\d+):", problem)
    return (match.group(1), int(match.group(2)), problem) if match else (problem, 0, problem)


def describe(error: jsonschema.ValidationError, source: Source) -> Iterator[str]:
    path = tuple(error.absolute_path)
    schema_node = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and schema_node.get("additionalProperties") is False:
        allowed = sorted(schema_node.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            hint = difflib.get_close_matches(key, allowed, n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else f"; expected one of: {', '.join(allowed)}"
            yield f"{source.where(path + (key,))}: {dotted(path + (key,))}: unknown key{guess}"
        return
    if error.validator == "required":
        missing = re.match(r"'([^']+)'", error.message)
        key = missing.group(1) if missing else error.message
        yield f"{source.where(path)}: {dotted(path + (key,))}: required key is missing"
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        yield from describe(best, source)
        return
    expected = schema_node.get("x-expect")
    if not expected:
        expected = {
            "type": f"a value of type {error.validator_value}",
            "enum": "one of: " + ", ".join(map(str, error.validator_value or [])),
            "minimum": f"a number >= {error.validator_value}",
            "exclusiveMinimum": f"a number > {error.validator_value}",
            "maximum": f"a number <= {error.validator_value}",
            "minItems": f"at least {error.validator_value} item(s)",
            "minProperties": f"at least {error.validator_value} entry(ies)",
            "minLength": "a non-empty string",
            "uniqueItems": "items without repeats",
            "pattern": f"a string matching {error.validator_value}",
        }.get(error.validator, error.message)
    got = json.dumps(error.instance) if not isinstance(error.instance, (dict, list)) else type(error.instance).__name__
    yield f"{source.where(path)}: {dotted(path)}: expected {expected} (got {got})"
