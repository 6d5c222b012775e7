"""Checks the schema cannot express: cross-references between values."""

from __future__ import annotations

import difflib
from typing import Iterator

from . import layers, schema
from .errors import InputError
from .secrets import secret_references
from .values import KeyPath, Source, dotted


def route_receivers(route: dict, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if "receiver" in route:
        yield path + ("receiver",), route["receiver"]
    for i, child in enumerate(route.get("routes", [])):
        yield from route_receivers(child, path + ("routes", i))


def mebibytes(size: str) -> int:
    """512m -> 512, 2g -> 2048 (the schema allows only these forms for heaps and limits)."""
    return int(size[:-1]) * (1024 if size[-1] == "g" else 1)


def semantic_problems(values: dict, source: Source) -> list[str]:
    problems = []
    am = values["alertmanager"]
    names = list(am["receivers"])
    for where, name in route_receivers(am["route"], ("alertmanager", "route")):
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(
                f"{source.where(where)}: {dotted(where)}: route names receiver '{name}', which is not "
                f"defined under alertmanager.receivers (defined: {', '.join(names)}){guess}"
            )

    for service in ("elasticsearch", "logstash"):
        heap, limit = values[service]["heap"], values["memory"][service]
        if mebibytes(heap) >= mebibytes(limit):
            where = (service, "heap")
            problems.append(f"{source.where(where)}: {dotted(where)}: a heap of {heap} does not fit in the "
                            f"container's memory.{service} of {limit}; expected less (about half)")

    for layer in layers.all_layers():
        for needed in layer.requires:
            if layers.is_on(values, layer.name) and not layers.is_on(values, needed):
                where = ("layers", layer.name)
                problems.append(f"{source.where(where)}: {dotted(where)}: the {layer.name} layer needs the "
                                f"{needed} layer; switch layers.{needed} on too")

    declared = sorted(values["secrets"])
    for where, name in secret_references(values):
        if name not in declared:
            hint = difflib.get_close_matches(name, declared, n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(
                f"{source.where(where)}: {dotted(where)}: secret '{name}' is not declared under secrets{guess}"
            )
    return problems


def check_values(values: dict, source: Source) -> None:
    problems = schema.problems(values, source)
    if not problems:
        problems = semantic_problems(values, source)
    if problems:
        raise InputError(problems)
