"""The layer table (layers.yaml): what each layer renders, starts, scrapes and wires."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from . import PACKAGE, ROOT


@dataclass(frozen=True)
class Layer:
    name: str
    compose: str                        # compose/<layer>.yml, relative to the repository
    templates: tuple[str, ...]          # folders under templates/
    jobs: dict                          # scrape job name -> job (values shape)
    secrets: dict                       # service -> values paths whose *_secret keys it gets
    users: dict                         # service -> the uid its process runs as
    requires: tuple[str, ...]
    reloads: dict                       # service -> {paths, signal, metrics, metric}: re-read without a restart
    stored: dict                        # values path of a *_secret key -> {service, kind}: kept in its state
    backup: dict                        # named volume -> how make backup copies it
    alertmanagers: tuple[str, ...]      # host:port Prometheus sends alerts to

    @property
    def services(self) -> tuple[str, ...]:
        """The services its Compose file defines."""
        return tuple(compose_services(self.compose))


@cache
def table() -> dict:
    return yaml.safe_load((PACKAGE / "layers.yaml").read_text(encoding="utf-8"))


@cache
def compose_file(path: str) -> dict:
    """A Compose file of the repository (path relative to it), parsed."""
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def compose_services(path: str) -> tuple[str, ...]:
    return tuple(compose_file(path)["services"])


def all_layers() -> list[Layer]:
    return [Layer(name=name, compose=row["compose"], templates=tuple(row.get("templates", ())),
                  jobs=row.get("jobs", {}), secrets=row.get("secrets", {}), users=row.get("users", {}),
                  requires=tuple(row.get("requires", ())), reloads=row.get("reloads", {}),
                  stored=row.get("stored", {}), backup=row.get("backup", {}),
                  alertmanagers=tuple(row.get("alertmanagers", ())))
            for name, row in table()["layers"].items()]


def optional_layers() -> list[str]:
    return [layer.name for layer in all_layers() if layer.name != "core"]


def enabled(values: dict) -> list[Layer]:
    """The layers that are on, core first, in table order."""
    return [layer for layer in all_layers() if layer.name == "core" or values["layers"][layer.name]]


def is_on(values: dict, name: str) -> bool:
    return name == "core" or bool(values["layers"][name])


def layer_of_template(template: str) -> Layer | None:
    """The layer whose folder holds a template (templates/<folder>/...), if any."""
    folder = template.split("/", 1)[0]
    return next((layer for layer in all_layers() if folder in layer.templates), None)


def defaults() -> dict:
    """What the layers add under values.yaml: their scrape jobs, each tagged with its
    layer. values.yaml and the overlays merge over it, so a job of a layer is changed by
    naming it and removed by setting it to null."""
    return {"prometheus": {"scrape_configs": {
        name: {**job, "layer": layer.name} for layer in all_layers() for name, job in layer.jobs.items()}}}


def scrape_jobs(values: dict) -> dict[str, dict]:
    """The jobs Prometheus scrapes: those of the values (without a layer) first, then
    those of the enabled layers, each in the order it was defined."""
    jobs = values["prometheus"]["scrape_configs"]
    return {name: job for pass_ in ("own", "layers") for name, job in jobs.items()
            if ("layer" in job) == (pass_ == "layers") and is_on(values, job.get("layer", "core"))}


def service_users() -> dict[str, int]:
    """service -> the uid its process runs as, for every layer's services."""
    return {service: uid for layer in all_layers() for service, uid in layer.users.items()}


def alertmanagers(values: dict) -> list[str]:
    """Every Alertmanager of the enabled layers: Prometheus sends each alert to all of
    them, never through a load balancer (they deduplicate among themselves).
    https://github.com/prometheus/alertmanager#high-availability"""
    return [target for layer in enabled(values) for target in layer.alertmanagers]


def service_defaults() -> dict[str, Any]:
    return table()["service_defaults"]
