"""Loading the values: YAML files with the line of every key, merged in order.

Later files win. Maps merge key by key, so an overlay names only what it changes; named
collections (scrape jobs, receivers, secrets, alerts) are maps keyed by name for that
reason. A key set to null in a later file removes it (as Helm does). Lists are replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

KeyPath = tuple  # a key path inside the values, e.g. ("prometheus", "scrape_configs", "api")


def dotted(path: KeyPath) -> str:
    """prometheus.scrape_configs.api.targets[0]"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class Source:
    """Where each key path of the merged values came from: file and line."""

    origin: dict[KeyPath, tuple[str, int]] = field(default_factory=dict)

    def where(self, path: KeyPath) -> str:
        for cut in range(len(path), -1, -1):
            hit = self.origin.get(tuple(path[:cut]))
            if hit:
                return f"{hit[0]}:{hit[1]}" if hit[1] else hit[0]
        return "values"


def load_values_file(path: Path, source: Source) -> dict:
    """Parse one values file, recording each key's line; refuse duplicate keys."""
    name = display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError([f"{name}: cannot read the file ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise InputError([f"{name}: is not UTF-8 text"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError([f"{name}{line}: YAML syntax error: {problem}"]) from None
    if node is None:
        raise InputError([f"{name}: the file is empty; expected a mapping of values"])
    if not isinstance(node, yaml.MappingNode):
        raise InputError(
            [f"{name}:{node.start_mark.line + 1}: expected a mapping of keys to values at the top level"]
        )
    problems: list[str] = []
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, path: KeyPath, line: int | None = None) -> Any:
        # A key is reported on its own line, not on that of its value's first child.
        source.origin[path] = (name, line or n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)
            out: dict = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    problems.append(
                        f"{name}:{key_node.start_mark.line + 1}: {dotted(path)}: key {key!r} must be a string"
                    )
                    continue
                if key in out:
                    problems.append(
                        f"{name}:{key_node.start_mark.line + 1}: {dotted(path + (key,))}: duplicate key"
                    )
                out[key] = build(value_node, path + (key,), key_node.start_mark.line + 1)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    data = build(node, ())
    if problems:
        raise InputError(problems)
    return data


def merge(base: Any, overlay: Any) -> Any:
    """Deep merge: maps merge key by key (a null in the overlay removes the key),
    anything else is replaced by the overlay."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for key, value in overlay.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value) if key in base else strip_nulls(value)
        return out
    return strip_nulls(overlay)


def strip_nulls(value: Any) -> Any:
    """A map that a file adds anew has nothing to remove: its null entries are dropped."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def load_values(paths: list[Path], base: tuple[str, dict] | None = None) -> tuple[dict, Source]:
    """Merge the files in order over `base` (a name for messages, and its values)."""
    source = Source()
    merged: dict = {}
    if base:
        name, merged = base[0], strip_nulls(base[1])
        source.origin.update({path: (name, 0) for path in key_paths(merged)})
    for path in paths:
        layer = Source()
        data = load_values_file(path, layer)
        merged = merge(merged, data)
        # A path set by a later file now belongs to it, and so does everything below it
        # when the later file replaced (rather than merged) that branch.
        source.origin.update(layer.origin)
    return merged, source


def key_paths(node: Any, path: KeyPath = ()) -> list[KeyPath]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += key_paths(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += key_paths(item, path + (i,))
    return out
