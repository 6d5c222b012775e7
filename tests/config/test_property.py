"""Property-based: whatever a values file holds, render.py keeps its promise.

Each example takes the defaults and replaces one key (or adds one) with a value drawn
from that key's own schema (hypothesis-jsonschema: valid for the schema, so the checks
beyond it are exercised), from hostile scalars and strings ($, ${}, quotes, line breaks,
NaN, huge numbers), or from raw YAML (dates, tags, anchors). Then:
  - the exit code is 0 or 1, and stderr holds no traceback and no internal error;
  - on 1, every line names a file (file:line: key: ...) or is render.py's, and the output
    is byte-for-byte as it was;
  - on 0, the validators accept the output on their own: promtool, amtool and `docker
    compose config`, every YAML file parses, every JSON file is strict JSON (no NaN).

CI runs the "ci" profile (a fixed number of examples, derandomized, so it is the same
run every time); `make fuzz` runs the "fuzz" profile, many more and random.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from bundle import DEFAULT_VALUES, schema
from bundle.cli import load
from bundle.validate import find_tool
from compose_project import compose_command
from inprocess import render, snapshot

pytestmark = pytest.mark.config

CI_EXAMPLES = 40
settings.register_profile("ci", max_examples=CI_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

LINE = re.compile(r"^(render\.py: |[^\s:][^:]*(:\d+)?: )")


@cache
def defaults() -> dict:
    values, _ = load([DEFAULT_VALUES])
    return values


@cache
def generation_schema() -> dict:
    """The values schema, its one recursive definition (child routes) cut at one level,
    which hypothesis-jsonschema cannot generate."""
    out = copy.deepcopy(schema.schema())
    out["$defs"]["route"]["properties"]["routes"] = {"type": "array", "maxItems": 0}
    return out


def subschema(path: tuple) -> dict | None:
    """The schema of the value at `path`, with the $defs it may refer to."""
    whole = generation_schema()
    node = whole
    for part in path:
        while "$ref" in node:
            node = whole["$defs"][node["$ref"].rsplit("/", 1)[1]]
        if isinstance(part, int):
            node = node.get("items")
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return None
        if node is None:
            return None
    return {**node, "$defs": whole["$defs"]}


def paths(node, path=()) -> list[tuple]:
    out = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += paths(item, path + (i,))
    return out


HOSTILE_TEXT = st.lists(st.sampled_from(list("a0_-.:/@ ${}[]()'\"\\\n\t#%&*!|>?,=~`^") +
                                        ["\u2028", "\x00", "\x85", "é", "\ufeff", "${HOME}", "$$",
                                         "$__file{/run/secrets/elastic_password}", "{{ .X }}", "{{", "\r\n",
                                         "127.0.0.1", "9090", "15s", "latest", "ops@example.com"]),
                        max_size=8).map("".join)
HOSTILE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
              st.floats(allow_nan=True, allow_infinity=True), HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(HOSTILE_TEXT, inner, max_size=3)),
    max_leaves=6)
# Raw YAML that no Python value dumps to.
RAW = st.sampled_from(["2024-01-15", "2024-01-15 10:00:00", "!vault x", "!!binary aGk=", "&a [*a]", ".nan",
                       "-.inf", "0x1F", "0o17", "1:30", "~", "yes", "'${HOME}'", '"\\u2028"', "!!set {a}",
                       "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                       "*undefined", "{a: 1, a: 2}", "!!str 9090", "!!int '9090'", "!!float 1"])


# Subschemas larger than this (whole sections) take hypothesis-jsonschema too long to
# turn into a strategy; their keys are drawn one by one instead.
MAX_SCHEMA_CHARS = 4000


@cache
def schema_values(path: tuple):
    sub = subschema(path)
    if sub is None or len(json.dumps({k: v for k, v in sub.items() if k != "$defs"})) > MAX_SCHEMA_CHARS:
        return st.nothing()
    try:
        return from_schema(sub)
    except Exception:  # noqa: BLE001 - a schema hypothesis-jsonschema cannot turn into a strategy
        return st.nothing()


@st.composite
def overlays(draw) -> str:
    """The text of one values overlay: one key of the defaults (or a new one) replaced."""
    known = paths(defaults())
    path = draw(st.sampled_from(known))
    parent = defaults()
    for part in path[:-1]:
        parent = parent[part]
    if isinstance(parent, dict) and draw(st.integers(0, 9)) == 0:
        # A key of its own next to the known ones.
        path = path[:-1] + (draw(HOSTILE_TEXT.map(lambda k: k.replace("\n", "") or "x")),)
    kind = draw(st.sampled_from(["schema", "schema", "hostile", "raw"]))
    if kind == "schema" and schema_values(path).is_empty:
        kind = "hostile"
    if kind == "raw":
        raw = draw(RAW)
    else:
        value = draw(schema_values(path) if kind == "schema" else HOSTILE)
        raw = None
    # Lists in the path are written whole: the overlay replaces the list.
    cut = next((i for i, part in enumerate(path) if isinstance(part, int)), len(path))
    if cut < len(path):
        container = copy.deepcopy(defaults())
        node = container
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = raw if raw is not None else value
        for part in path[:cut]:
            container = container[part]
        value, raw, path = container, None, path[:cut]
    if raw is None:
        tree = value
        for part in reversed(path):
            tree = {part: tree}
        return yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
    lines = [f"{'  ' * i}{json.dumps(part)}:" for i, part in enumerate(path)]
    lines[-1] += f" {raw}"
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def workplace():
    work = Path(tempfile.mkdtemp(prefix="render-property-"))
    first = render(work)
    assert first.code == 0, first.stderr
    yield work
    shutil.rmtree(work)


def accepted_by_the_validators(config: Path, work: Path) -> None:
    promtool, amtool = find_tool("promtool"), find_tool("amtool")
    assert promtool and amtool, "make tools"
    for command in ([promtool, "check", "config", "prometheus/prometheus.yml"],
                    [amtool, "check-config", "alertmanager/alertmanager.yml"]):
        result = subprocess.run(command, cwd=config, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    if shutil.which("docker"):
        base, env = compose_command(config, work / ".env")
        result = subprocess.run([*base, "config", "--quiet"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    for path in config.rglob("*"):
        if path.suffix == ".yml":
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            def strict(constant):
                raise ValueError(f"{path}: {constant} is not JSON")

            json.loads(path.read_text(encoding="utf-8"), parse_constant=strict)


@given(text=overlays())
def test_render_keeps_its_promise_for_any_values(workplace, text):
    config = workplace / "config"
    before = snapshot(config)
    result = render(workplace, text, extra=["--require-validators"])
    assert result.code in (0, 1), result.stderr
    event(f"exit {result.code}")
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, (text, result.stderr)
    if result.code == 1:
        assert result.problems, text
        for line in result.problems:
            assert LINE.match(line), (text, line)
        assert snapshot(config) == before, text
    else:
        accepted_by_the_validators(config, workplace)
    assert not (config / ".render-staging").exists()
    assert not (config / ".render-journal").exists()


def test_the_generation_covers_the_schema():
    """Most keys of the defaults have a schema hypothesis-jsonschema can draw from."""
    known = [p for p in paths(defaults()) if not any(isinstance(x, int) for x in p)]
    drawable = [p for p in known if subschema(p) is not None]
    assert len(drawable) >= 0.9 * len(known)
