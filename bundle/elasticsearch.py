"""The Elasticsearch roles and users of elasticsearch.yaml, for the values in use: what
elasticsearch-setup creates."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from . import PACKAGE, layers


@cache
def table() -> dict:
    return yaml.safe_load((PACKAGE / "elasticsearch.yaml").read_text(encoding="utf-8"))


def _at(values: dict, dotted: str) -> Any:
    node = values
    for key in dotted.split("."):
        node = node[key]
    return node


def _names(values: dict) -> dict[str, str]:
    stream = values["logstash"]["data_stream"]
    return {"logs_stream": f"logs-{stream['dataset']}-{stream['namespace']}",
            "logs": f"logs-{stream['dataset']}-*"}


def _on(values: dict, entry: dict) -> bool:
    return all(layers.is_on(values, layer) for layer in entry["layers"])


def roles(values: dict) -> dict[str, dict]:
    """role name -> its body for the role API (cluster, indices, applications), for the
    roles whose layers are on."""
    names = _names(values)
    out = {}
    for name, role in table()["roles"].items():
        if not _on(values, role):
            continue
        body: dict[str, Any] = {"cluster": list(role.get("cluster", []))}
        body["indices"] = [{**entry, "names": [n.format(**names) for n in entry["names"]]}
                           for entry in role.get("indices", [])]
        if role.get("applications"):
            body["applications"] = role["applications"]
        out[name] = body
    return out


def users(values: dict) -> dict[str, dict]:
    """key -> {username, password_secret, roles, full_name}, for the users whose layers are on."""
    out = {}
    for key, user in table()["users"].items():
        if not _on(values, user):
            continue
        settings = _at(values, user["values"])
        out[key] = {"username": settings["username"], "password_secret": settings["password_secret"],
                    "roles": user["roles"], "full_name": user["full_name"]}
    return out
