"""values.schema.json: its source (values.schema.yaml) with the `alerts` branch from the
catalogue, and the checks of the merged values against it, one line per problem."""

from __future__ import annotations

import difflib
import json
import math
import re
from functools import cache
from typing import Iterator

import jsonschema
import yaml

from . import PACKAGE, ROOT, alerts
from .values import Source, dotted, printable

SCHEMA_JSON = ROOT / "values.schema.json"


@cache
def schema() -> dict:
    source = yaml.safe_load((PACKAGE / "values.schema.yaml").read_text(encoding="utf-8"))
    source["properties"]["alerts"] = alerts.schema()
    return source


def json_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def _integer(_checker, value) -> bool:
    """Only whole numbers written as such: 9090.0 is a float to Compose ("Invalid hostPort")
    and to Elasticsearch ("30.0d"), though JSON Schema counts it as an integer."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(_checker, value) -> bool:
    """Finite numbers only: .nan and .inf are no threshold a rule or a dashboard can use."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _integer, "number": _number}),
)


def problems(values: dict, source: Source) -> list[str]:
    validator = Validator(schema())
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
    expected = schema_node.get("x-expect") or expectation(error)
    yield f"{source.where(path)}: {dotted(path)}: expected {expected} (got {shown(error.instance)})"


def expectation(error: jsonschema.ValidationError) -> str:
    """What a schema keyword asks for, in words."""
    value = error.validator_value
    kind = error.validator
    if kind == "type":
        return f"a value of type {value}"
    if kind == "enum":
        return "one of: " + ", ".join(map(str, value))
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"a number {sign} {value}"
    if kind == "minItems":
        return f"at least {value} item(s)"
    if kind == "minProperties":
        return f"at least {value} entry(ies)"
    if kind == "minLength":
        return "a non-empty string" if value == 1 else f"a string of at least {value} characters"
    if kind == "uniqueItems":
        return "items without repeats"
    if kind == "pattern":
        return f"a string matching {value}"
    return error.message


def shown(value) -> str:
    """A value for a message: JSON-like, at most 60 characters."""
    if isinstance(value, (dict, list)):
        return type(value).__name__
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = printable(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= 60 else text[:57] + '..."'

