"""Secrets a service keeps in its own state, where recreating its container changes nothing.

bundle/layers.yaml `stored` names them: a values path whose `*_secret` key names the
secret, the service that keeps it and its kind:

  grafana-admin  Grafana keeps its admin's password in its database; the setting applies
                 only when Grafana creates the admin on its first start
                 (https://github.com/grafana/grafana/issues/4923). `make up` logs in with
                 .env's value and, when Grafana refuses it, sets it with Grafana's own CLI
                 (`grafana cli admin reset-admin-password --password-from-stdin`), which
                 needs no old password.
  elastic        Elasticsearch keeps the password of `elastic` in its .security index; the
                 bootstrap password from ELASTIC_PASSWORD_FILE counts only until one is
                 stored. Changing it needs the current one (the change-password API), so
                 it is changed with `make rotate` (bundle/rotate.py), never by editing .env.

Both are reached on the port Compose publishes on the bind address (config/compose.env).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import requests

from . import DEFAULT_VALUES, ROOT, layers
from .secrets import read_env

TIMEOUT = 10


@dataclass(frozen=True)
class Stored:
    secret: str     # name in values.yaml `secrets`
    env: str        # its variable in .env
    service: str
    kind: str


def values_from_environment() -> dict:
    """The values `make` rendered with: values.yaml + BUNDLE_VALUES (site.yaml, VALUES)."""
    from .cli import load

    default = "site.yaml" if (ROOT / "site.yaml").exists() else ""
    overlays = [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", default))]
    values, _ = load([DEFAULT_VALUES, *overlays])
    return values


def lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def stored(values: dict) -> list[Stored]:
    """The stored secrets of the enabled layers."""
    out = []
    for layer in layers.enabled(values):
        for path, spec in layer.stored.items():
            name = lookup(values, path)
            out.append(Stored(name, values["secrets"][name]["env"], spec["service"], spec["kind"]))
    return out


def base_url(settings: dict[str, str], port_variable: str) -> str:
    host = settings["BIND_ADDRESS"]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings[port_variable]}"


class Kind:
    """How to test a credential against the service that stores it."""

    port: str
    path: str

    def user(self, settings: dict[str, str]) -> str:
        raise NotImplementedError

    def accepts(self, settings: dict[str, str], password: str) -> bool | None:
        """True or False as the service answers; None when it does not answer."""
        try:
            response = requests.get(base_url(settings, self.port) + self.path,
                                    auth=(self.user(settings), password), timeout=TIMEOUT)
        except requests.RequestException:
            return None
        if response.status_code == 401:
            return False
        return True if response.ok else None


class GrafanaAdmin(Kind):
    port, path = "GRAFANA_PORT", "/api/user"

    def user(self, settings):
        return settings["GRAFANA_ADMIN_USER"]

    @staticmethod
    def reset(container_id: str, password: str) -> str:
        """Set the admin's password with Grafana's CLI inside its container (the password
        on stdin, never on a command line); returns the CLI's complaint, if any."""
        from .drift import docker

        result = docker("exec", "-i", container_id, "sh", "-c",
                        'exec grafana cli --homepath "${GF_PATHS_HOME:-/usr/share/grafana}" '
                        '--config "${GF_PATHS_CONFIG:-/etc/grafana/grafana.ini}" '
                        'admin reset-admin-password --password-from-stdin',
                        stdin=password + "\n")
        return "" if result.returncode == 0 else (result.stderr or result.stdout).strip().splitlines()[-1:][0]


class Elastic(Kind):
    port, path = "ELASTICSEARCH_PORT", "/_security/_authenticate"

    def user(self, settings):
        return "elastic"

    def change(self, settings: dict[str, str], old: str, new: str) -> str:
        """Set elastic's password to `new`, logged in with `old`; returns the error, if any.
        https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-security-change-password"""
        try:
            response = requests.post(base_url(settings, self.port) + "/_security/user/elastic/_password",
                                     auth=("elastic", old), json={"password": new}, timeout=TIMEOUT)
        except requests.RequestException as exc:
            return f"Elasticsearch did not answer ({type(exc).__name__})"
        return "" if response.ok else f"Elasticsearch answered HTTP {response.status_code}"


KINDS: dict[str, Kind] = {"grafana-admin": GrafanaAdmin(), "elastic": Elastic()}


def pending_file(state: Path, secret: str) -> Path:
    return state / "rotate" / secret


def rejected_line(item: Stored, settings: dict[str, str], state: Path) -> str:
    if item.kind == "elastic":
        if pending_file(state, item.secret).exists():
            return (f"{item.env}: Elasticsearch rejects the value in .env for its user elastic, and a rotation "
                    f"of {item.secret} is pending: finish it with `make rotate SECRET={item.secret}`")
        return (f"{item.env}: Elasticsearch rejects the value in .env for its user elastic (it keeps its own "
                f"copy): put the previous value back in .env, then run "
                f"`make rotate SECRET={item.secret} VALUE=<new value>`")
    user = KINDS[item.kind].user(settings)
    return (f"{item.env}: Grafana rejects the value in .env for its admin user {user}; `make up` sets it "
            f"with Grafana's CLI once Grafana is healthy (see `make logs S={item.service}`)")


def keepers() -> set[str]:
    """The services that may keep a secret in their state (layers.yaml `stored`)."""
    return {spec["service"] for layer in layers.all_layers() for spec in layer.stored.values()}


def rejected(checkout, running: dict, before_up: bool = False, values: dict | None = None) -> list[str]:
    """One line per stored credential a running service rejects. Before `compose up`,
    only those `make up` cannot apply by itself (they need the old value)."""
    if not keepers() & set(running):
        return []
    values = values if values is not None else values_from_environment()
    settings = checkout.settings()
    env = read_env(checkout.env_file)
    lines = []
    for item in stored(values):
        if item.service not in running or (before_up and item.kind == "grafana-admin"):
            continue
        if KINDS[item.kind].accepts(settings, env.get(item.env, "")) is False:
            lines.append(rejected_line(item, settings, checkout.state))
    return lines


def apply(checkout, running: dict, values: dict | None = None) -> list[str]:
    """After `compose up`: set what `make up` can set (Grafana's admin password), and one
    line per stored credential still rejected."""
    if not keepers() & set(running):
        return []
    values = values if values is not None else values_from_environment()
    settings = checkout.settings()
    env = read_env(checkout.env_file)
    lines = []
    for item in stored(values):
        container = running.get(item.service)
        if container is None:
            continue
        kind, password = KINDS[item.kind], env.get(item.env, "")
        if kind.accepts(settings, password) is not False:
            continue
        if isinstance(kind, GrafanaAdmin):
            complaint = kind.reset(container.id, password)
            if not complaint and kind.accepts(settings, password):
                print(f"make up: set the password of Grafana's admin user {kind.user(settings)} from {item.env}")
                continue
            lines.append(f"{item.env}: Grafana still rejects the value in .env for its admin user after "
                         f"`grafana cli admin reset-admin-password`" + (f": {complaint}" if complaint else ""))
            continue
        lines.append(rejected_line(item, settings, checkout.state))
    return lines
