"""The running stack as Compose sees it, for make backup, restore and upgrade: its model
(`docker compose config`), its containers, and waits that have a deadline."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from functools import cached_property

from . import ROOT, layers
from .secrets import read_env

COMPOSE = [str(ROOT / "scripts" / "compose.sh")]


class StackError(Exception):
    """One line saying why an operation on the stack stopped."""


@dataclass(frozen=True)
class Volume:
    key: str                    # the name in the Compose files (prometheus-data)
    name: str                   # the Docker volume (observability_prometheus-data)
    service: str                # the long-running service that writes it
    path: str                   # where that service mounts it
    method: str                 # how make backup copies it (bundle/layers.yaml `backup`)
    services: tuple[str, ...]   # every service that mounts it


class Stack:
    def __init__(self, timeout: float = 300):
        self.timeout = timeout

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([*COMPOSE, *args], cwd=ROOT, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise StackError(f"docker compose {' '.join(args)} failed: {' '.join(result.stderr.split())[-600:]}")
        return result

    @cached_property
    def model(self) -> dict:
        return json.loads(self.compose("config", "--format", "json").stdout)

    @property
    def project(self) -> str:
        return self.model["name"]

    def volumes(self) -> list[Volume]:
        """The named volumes of the enabled layers, in the order layers.yaml lists them."""
        services = self.model["services"]
        out = []
        for layer in layers.all_layers():
            for key, method in layer.backup.items():
                if key not in self.model.get("volumes", {}):
                    continue
                mounts = [(name, v["target"]) for name, s in services.items()
                          for v in s.get("volumes", []) if v["type"] == "volume" and v["source"] == key]
                writer = [(n, t) for n, t in mounts if services[n].get("restart") != "no"] or mounts
                out.append(Volume(key, self.model["volumes"][key]["name"], writer[0][0], writer[0][1], method,
                                  tuple(n for n, _ in mounts)))
        return out

    def containers(self) -> dict[str, dict]:
        """service -> its container (Name, State, Health, Image...), stopped ones too."""
        out = self.compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def running(self) -> set[str]:
        return {s for s, c in self.containers().items() if c["State"] in ("running", "restarting", "paused")}

    def container(self, service: str) -> str:
        """The container of a service, created (not started) when there is none."""
        found = self.containers().get(service)
        if found is None:
            self.compose("create", "--no-recreate", service)
            found = self.containers().get(service)
        if found is None:
            raise StackError(f"{service}: Compose created no container")
        return found["Name"]

    def wait_healthy(self, service: str) -> None:
        """Until the service runs and (when it has a healthcheck) is healthy."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            row = self.containers().get(service, {})
            if row.get("State") == "running" and row.get("Health") in ("", "healthy"):
                return
            if row.get("State") == "exited" or row.get("Health") == "unhealthy":
                break
            time.sleep(1)
        logs = self.compose("logs", "--no-color", "--tail", "30", service, check=False).stdout
        raise StackError(f"{service} did not become healthy within {self.timeout:.0f}s; its last logs:\n{logs}")

    def setting(self, name: str) -> str:
        return read_env(ROOT / "config" / "compose.env")[name]

    def secret(self, name: str) -> str:
        return read_env(ROOT / ".env").get(name, "")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise StackError(f"docker {' '.join(args[:3])} failed: {' '.join(result.stderr.split())[-600:]}")
    return result
