"""Live probes of the whole stack as shipped: the upstream images, started by `make up`.

They need a Docker host that can pull those images (a workstation, a hosted CI runner:
.github/workflows/fullstack.yml); this project's own CI cannot, so the whole directory is
skipped unless FULLSTACK=1. Every address is 127.0.0.1 and every port, name and uid comes
from the values files the stack was rendered from (values.yaml plus the overlays in the
VALUES variable, as for `make render VALUES=...`), secrets from .env. Each probe polls
with a deadline, stops at once when a container it depends on has died, and prints the
containers' logs when it fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from bundle import DEFAULT_VALUES
from bundle.cli import load
from bundle.secrets import read_env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ENABLED = os.environ.get("FULLSTACK") == "1"
# Seconds a probe keeps trying; Elasticsearch and Kibana take a minute or two to start.
DEADLINE = float(os.environ.get("FULLSTACK_DEADLINE", "300"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fullstack: live probes of the full stack with the upstream images (make up, then FULLSTACK=1)"
    )


def pytest_collection_modifyitems(config, items):
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="needs the full stack with the upstream images: make up, then FULLSTACK=1")
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(skip)


def stack_values() -> dict:
    """The values the stack was rendered from: values.yaml, then the VALUES overlays."""
    overlays = [ROOT / path for path in os.environ.get("VALUES", "").split()]
    values, _ = load([DEFAULT_VALUES, *overlays])
    return values


class Stack:
    """The running project: its values, secrets, HTTP helpers and Docker Compose."""

    root = ROOT

    def __init__(self, values: dict, env: dict[str, str]):
        self.values = values
        self.env = env
        self.http = requests.Session()

    # ---- settings
    def layer(self, name: str) -> bool:
        return bool(self.values["layers"][name])

    def url(self, port_key: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.values['ports'][port_key]}{path}"

    def secret(self, name: str) -> str:
        value = self.env.get(self.values["secrets"][name]["env"], "")
        if not value:
            pytest.fail(f".env has no value for secret {name}", pytrace=False)
        return value

    @property
    def elastic(self) -> tuple[str, str]:
        return ("elastic", self.secret("elastic_password"))

    @property
    def grafana_admin(self) -> tuple[str, str]:
        grafana = self.values["grafana"]
        return (grafana["admin_user"], self.secret(grafana["admin_password_secret"]))

    # ---- docker compose
    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "--env-file", "config/compose.env", "--env-file", ".env", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def logs(self, services: list[str]) -> str:
        result = self.compose("logs", "--no-color", "--timestamps", "--tail", "150", *services)
        return result.stdout + result.stderr

    def dead(self, services: list[str]) -> list[str]:
        """Those of `services` whose container is not running (exited, restarting, missing)."""
        result = self.compose("ps", "--all", "--format", "json", *services)
        if result.returncode != 0:
            return [f"docker compose ps failed: {result.stderr.strip()}"]
        text = result.stdout.strip()
        rows: list[dict[str, Any]] = []
        if text.startswith("["):
            rows = json.loads(text)
        elif text:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        states = {row.get("Service"): row for row in rows}
        problems = []
        for service in services:
            row = states.get(service)
            if row is None:
                problems.append(f"{service}: no container")
            elif row.get("State") != "running":
                problems.append(f"{service}: {row.get('State')} (exit code {row.get('ExitCode')})")
        return problems

    # ---- waiting
    def wait(self, what: str, probe: Callable[[], Any], services: list[str], timeout: float = DEADLINE):
        """Call probe() until it returns instead of failing an assertion (or meeting a
        connection error or an unexpected answer), for at most `timeout` seconds; fail at
        once if one of `services` died."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return probe()
            except (AssertionError, requests.RequestException, OSError, ValueError, KeyError, TypeError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            dead = self.dead(services)
            if dead:
                self.fail(f"{what}: container died ({'; '.join(dead)}); last probe: {last}", services)
            if time.monotonic() >= deadline:
                self.fail(f"{what}: not within {timeout:.0f}s; last probe: {last}", services)
            time.sleep(3)

    def fail(self, message: str, services: list[str]):
        pytest.fail(f"{message}\n\n--- docker compose logs {' '.join(services)} ---\n{self.logs(services)}",
                    pytrace=False)


@pytest.fixture(scope="session")
def stack() -> Stack:
    env_file = ROOT / ".env"
    if not env_file.exists():
        pytest.fail(".env is missing: run make up first", pytrace=False)
    return Stack(stack_values(), read_env(env_file))


# Datasources that exist only with their layer on (the others are always provisioned).
DATASOURCE_LAYER = {"elasticsearch": "logs", "jaeger": "tracing"}


def pytest_generate_tests(metafunc):
    """One case per provisioned Grafana datasource, named by its key under grafana.datasources."""
    if "datasource" not in metafunc.fixturenames:
        return
    values = stack_values()
    keys = [key for key in values["grafana"]["datasources"]
            if values["layers"].get(DATASOURCE_LAYER.get(key, ""), True)]
    metafunc.parametrize("datasource", keys, ids=keys)
