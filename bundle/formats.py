"""Serializers for each output format: a value always reaches a file as one value of
that format, quoted as it needs, never as markup that could change the file's shape."""

from __future__ import annotations

import json
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Key order kept, lists indented under their key, no anchors; strings with line
    breaks or unprintable characters always double-quoted, so a value stays one scalar."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = '"' if any(c in text for c in "\n\r\t\x85\u2028\u2029") or not text.isprintable() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


class _DocumentDumper(_Dumper):
    """For whole generated documents (rule files): multi-line text such as a PromQL
    expression as a literal block, as people write it."""


def _represent_document_str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    lines = text.split("\n")
    if len(lines) > 1 and all(line.isprintable() and line == line.rstrip() for line in lines):
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return _represent_str(dumper, text)


_DocumentDumper.add_representer(str, _represent_document_str)


def to_yaml(value: Any) -> str:
    """One value as inline YAML: always a single line, quoted as needed."""
    out = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=float("inf"),
                    allow_unicode=True, sort_keys=False)
    return out.removesuffix("\n...\n").rstrip("\n")


def to_block_yaml(value: Any, indent: int = 0) -> str:
    """A nested value as block YAML, every line indented by `indent` spaces."""
    out = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, width=float("inf"),
                    allow_unicode=True, sort_keys=False, indent=2)
    return "\n".join(" " * indent + line for line in out.rstrip("\n").splitlines())


def to_document(value: Any) -> str:
    """A whole YAML document, block style, multi-line strings as literal blocks."""
    return yaml.dump(value, Dumper=_DocumentDumper, default_flow_style=False, width=float("inf"),
                     allow_unicode=True, sort_keys=False, indent=2)


def to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False)


def logstash_string(value: Any) -> str:
    """A Logstash config string literal (needs config.support_escapes: true)."""
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


class Unwritable(ValueError):
    """A value that a format cannot hold; build.py names the key it came from."""

    def __init__(self, value: Any, reason: str):
        super().__init__(reason)
        self.value = value
        self.reason = reason


def to_env(value: Any) -> str:
    r"""A value for a Compose env file, taken literally: in single quotes (where nothing is
    special), or, when it holds a ' or a backslash, in double quotes with \\ \" and \$
    escaped. https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/#env-file-syntax"""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if any(c in text for c in "\n\r\0"):
        raise Unwritable(value, "a Compose env file holds one line per value: no line breaks")
    if "'" not in text and "\\" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def dollars(value: Any) -> Any:
    """Every $ doubled, in a string or in the strings of a map or list: Prometheus (its
    external labels) and Grafana (every provisioning value) expand $VAR, ${VAR},
    $__env{} and $__file{}, and read $$ as one literal $.
    https://prometheus.io/docs/prometheus/latest/configuration/configuration/#configuration-file
    https://grafana.com/docs/grafana/latest/administration/provisioning/#using-environment-variables"""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: dollars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [dollars(item) for item in value]
    return value


def comment(text: str) -> str:
    """Text as YAML / shell / Logstash comment lines."""
    return "\n".join(f"# {line}".rstrip() for line in text.splitlines())
