"""Loading the values: YAML files with the line of every key, merged in order.

Later files win. Maps merge key by key, so an overlay names only what it changes; named
collections (scrape jobs, receivers, secrets, alerts) are maps keyed by name for that
reason. A key set to null in a later file removes it (as Helm does). Lists are replaced.

Parsing is bounded: a values file may be at most MAX_FILE_BYTES, expand (through YAML
aliases) to at most MAX_NODES values and nest at most MAX_DEPTH levels, so that a small
hostile file (an alias "billion laughs") cannot exhaust memory or time. Values are plain
YAML: strings, numbers, booleans, null, maps and lists; a date stays the text it was
written as (`tag: 2024-01-15` is the string "2024-01-15"), any other tag is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

KeyPath = tuple  # a key path inside the values, e.g. ("prometheus", "scrape_configs", "api")

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 40

MERGE = "tag:yaml.org,2002:merge"
SCALAR_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null")}
TIMESTAMP = "tag:yaml.org,2002:timestamp"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"


def printable(text: str) -> str:
    """Text for a one-line message: line breaks and other unprintable characters escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def dotted(path: KeyPath) -> str:
    """prometheus.scrape_configs.api.targets[0]"""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{printable(part)}" if out else printable(str(part)))
    return out or "(top level)"


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):
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


class _Limit(Exception):
    """The file expands beyond MAX_NODES values or nests beyond MAX_DEPTH levels."""


def short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def read_limited(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than `limit` (read no further: it may
    be a pipe or a device that never ends)."""
    with open(path, "rb") as stream:
        data = stream.read(limit + 1)
    return None if len(data) > limit else data


def read_text(path: Path, name: str) -> str:
    try:
        data = read_limited(path, MAX_FILE_BYTES)
        if data is None:
            raise InputError([f"{name}: more than {MAX_FILE_BYTES} bytes; a values file may hold at most "
                              f"{MAX_FILE_BYTES} bytes (1 MiB)"])
        return data.decode("utf-8")
    except OSError as exc:
        raise InputError([f"{name}: cannot read the file ({exc.strerror})"]) from None
    except UnicodeDecodeError as exc:
        raise InputError([f"{name}: is not UTF-8 text (byte {exc.start})"]) from None


def load_values_file(path: Path, source: Source) -> dict:
    """Parse one values file, recording each key's line; refuse duplicate keys, tags
    other than plain YAML's, and files that expand or nest beyond the limits."""
    name = display(path)
    text = read_text(path, name)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError([f"{name}{line}: YAML syntax error: {problem}"]) from None
    except RecursionError:
        raise InputError([f"{name}: nested more than {MAX_DEPTH} levels deep"]) from None
    if node is None:
        raise InputError([f"{name}: the file is empty; expected a mapping of values"])
    if not isinstance(node, yaml.MappingNode):
        raise InputError(
            [f"{name}:{node.start_mark.line + 1}: expected a mapping of keys to values at the top level"]
        )
    problems: list[str] = []
    constructor = yaml.SafeLoader("")
    count = [0]

    def at(n: yaml.Node) -> str:
        return f"{name}:{n.start_mark.line + 1}"

    def pairs(n: yaml.MappingNode, path: KeyPath, seen: tuple = ()) -> list[tuple[Any, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping, `<<` merge keys resolved: keys of the
        mapping itself win over merged ones, earlier merged maps over later ones."""
        if id(n) in seen or len(seen) > MAX_DEPTH:
            raise _Limit(f"{at(n)}: {dotted(path)}: merge keys (<<) nest or refer to themselves")
        merged: dict = {}
        own: list = []
        for key_node, value_node in n.value:
            if key_node.tag == MERGE:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, yaml.MappingNode):
                        problems.append(f"{at(src)}: {dotted(path)}: a merge key (<<) takes a map or a list of maps")
                        continue
                    for key, k, v in pairs(src, path, seen + (id(n),)):
                        merged.setdefault(key, (key, k, v))
                continue
            own.append((scalar_key(key_node, path), key_node, value_node))
        explicit: dict = {}
        for key, k, v in own:
            if key is None:
                continue
            if key in explicit:
                problems.append(f"{at(k)}: {dotted(path + (key,))}: duplicate key")
                continue
            explicit[key] = (key, k, v)
        out = dict(merged)
        out.update(explicit)
        return list(out.values())

    def scalar_key(key_node: yaml.Node, path: KeyPath) -> str | None:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:str":
            return key_node.value
        shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else type(key_node).__name__
        problems.append(f"{at(key_node)}: {dotted(path)}: key {shown!r} must be a string")
        return None

    def build(n: yaml.Node, path: KeyPath, line: int | None = None) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise _Limit(f"{name}: expands to more than {MAX_NODES} values (through YAML aliases); "
                         f"a values file may hold at most that many")
        if len(path) > MAX_DEPTH:
            raise _Limit(f"{at(n)}: {dotted(path[:6])}...: nested more than {MAX_DEPTH} levels deep "
                         f"(or an alias refers to itself)")
        # A key is reported on its own line, not on that of its value's first child.
        source.origin[path] = (name, line or n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            if n.tag != MAP:
                problems.append(f"{at(n)}: {dotted(path)}: the tag {short(n.tag)} is not supported; "
                                f"values are plain YAML maps, lists and scalars")
                return None
            return {key: build(v, path + (key,), k.start_mark.line + 1) for key, k, v in pairs(n, path)}
        if isinstance(n, yaml.SequenceNode):
            if n.tag != SEQ:
                problems.append(f"{at(n)}: {dotted(path)}: the tag {short(n.tag)} is not supported; "
                                f"values are plain YAML maps, lists and scalars")
                return None
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        if n.tag == TIMESTAMP:
            return n.value  # the text as written: a date is not a type the values use
        if n.tag not in SCALAR_TAGS:
            problems.append(f"{at(n)}: {dotted(path)}: the tag {short(n.tag)} is not supported; "
                            f"write the value as plain text")
            return None
        return constructor.construct_object(n, deep=True)

    try:
        data = build(node, ())
    except _Limit as limit:
        raise InputError([str(limit)]) from None
    except RecursionError:
        raise InputError([f"{name}: nested more than {MAX_DEPTH} levels deep"]) from None
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
