"""make doctor: what on this host would make the stack unsafe or broken, before `make up`.

Each check is a function registered with @check(name); it gets a Host (the values in use
and a way to ask the Docker engine) and returns findings. `python -m bundle.doctor` prints
one line per finding (what, why, fix) and exits 1 when a blocker is left. A blocker the
user has weighed can be accepted by name: DOCTOR_ACCEPT="name other-name" make up.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import DEFAULT_VALUES, ROOT

OK, WARNING, BLOCKER = "ok", "warning", "blocker"


@dataclass
class Finding:
    level: str
    what: str
    why: str = ""
    fix: str = ""


@dataclass
class Host:
    values: dict
    # docker(*args) -> its standard output; raises DockerError when the command fails.
    docker: Callable[..., str]
    env: dict = field(default_factory=lambda: dict(os.environ))


class DockerError(Exception):
    pass


CHECKS: dict[str, Callable[[Host], list[Finding]]] = {}


def check(name: str):
    def register(function: Callable[[Host], list[Finding]]):
        CHECKS[name] = function
        return function
    return register


def run_docker(*args: str) -> str:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerError(str(exc)) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise DockerError(lines[-1] if lines else f"docker {' '.join(args)} exited with {result.returncode}")
    return result.stdout.strip()


# --------------------------------------------------------------------------- checks

# The first Docker Engine release that drops direct routing to ports published on a
# loopback address (moby#49325).
FIXED_ENGINE = (28, 0, 0)
MOBY_45610 = "https://github.com/moby/moby/issues/45610"


def engine_version(host: Host) -> tuple[tuple[int, ...] | None, str]:
    """The engine's version as numbers (None if it cannot be read) and as reported."""
    reported = host.docker("version", "--format", "{{.Server.Version}}")
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", reported)
    return (tuple(int(part or 0) for part in match.groups()) if match else None), reported


def loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


@check("engine-loopback-exposure")
def engine_loopback_exposure(host: Host) -> list[Finding]:
    """Engines before 28.0.0 let hosts on the same network segment reach ports published
    on 127.0.0.1 (moby#45610): the stack's promise to publish on loopback only would not
    hold."""
    bind = host.values["bind_address"]
    try:
        version, reported = engine_version(host)
    except DockerError as exc:
        return [Finding(BLOCKER, f"cannot read the Docker engine's version: {exc}",
                        "make up needs a running engine it may use",
                        "start the engine, or run as root / a member of the docker group")]
    if version is None:
        return [Finding(WARNING, f"unrecognised Docker engine version {reported!r}",
                        f"engines before 28.0.0 expose ports published on 127.0.0.1 to the local network ({MOBY_45610})",
                        "make sure the engine is 28.0.0 or newer")]
    if not loopback(bind):
        return [Finding(OK, f"Docker Engine {reported}; ports are published on {bind} by choice (bind_address)")]
    if version >= FIXED_ENGINE:
        return [Finding(OK, f"Docker Engine {reported} keeps ports published on {bind} to this host")]
    return [Finding(
        BLOCKER,
        f"Docker Engine {reported} is older than 28.0.0: hosts on the same network segment can reach the ports "
        f"it publishes on {bind} (Prometheus, Alertmanager, Grafana, Kibana, Elasticsearch...)",
        f"moby#45610, fixed in Engine 28.0.0: {MOBY_45610}",
        "upgrade to Docker Engine 28.0.0 or newer (https://docs.docker.com/engine/install/); on a host no other "
        "machine can reach, accept it with DOCTOR_ACCEPT=engine-loopback-exposure")]


@check("network-gateway-order")
def network_gateway_order(host: Host) -> list[Finding]:
    """Services on both networks publish their ports through the stack's own network: it
    is their gateway by gw_priority on Engine 28+, by network name order before that."""
    try:
        version, reported = engine_version(host)
    except DockerError:
        return []   # engine-loopback-exposure says it
    if version is None or version >= FIXED_ENGINE:
        return []
    stack = f"{host.values['project_name']}_default"
    app = host.values["app_network"]
    if stack < app:
        return [Finding(OK, f"on Engine {reported}, network {stack} sorts before {app}: published ports map into it")]
    return [Finding(
        BLOCKER,
        f"on Engine {reported}, the app network {app!r} sorts before the stack's network {stack!r}, so Docker maps "
        f"the published ports of Prometheus, Jaeger and Logstash into the app network, where their query and "
        f"admin ports do not listen",
        "before Engine 28.0.0 a container's gateway network is the first by name (gw_priority needs 28.0.0)",
        "upgrade to Docker Engine 28.0.0 or newer, or pick an app_network / project_name that sorts the "
        "stack's network first")]


# --------------------------------------------------------------------------- running

def run(host: Host, accepted: set[str], out=sys.stdout) -> int:
    """Run every check; print one line per finding; 1 if a blocker is not accepted."""
    blocked = False
    for name, function in CHECKS.items():
        for finding in function(host):
            level = finding.level
            if level == BLOCKER and name in accepted:
                level = "accepted"
            elif level == BLOCKER:
                blocked = True
            line = f"doctor: {level}: {name}: {finding.what}"
            if finding.why:
                line += f" ({finding.why})"
            if finding.fix and finding.level != OK:
                line += f"; fix: {finding.fix}"
            print(line, file=out)
    unknown = accepted - set(CHECKS)
    for name in sorted(unknown):
        print(f"doctor: warning: DOCTOR_ACCEPT names {name!r}, which is no check (checks: {', '.join(CHECKS)})", file=out)
    return 1 if blocked else 0


def main() -> int:
    from .cli import load
    from .errors import InputError

    overlays = [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]
    try:
        values, _ = load([DEFAULT_VALUES, *overlays])
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    accepted = set(os.environ.get("DOCTOR_ACCEPT", "").replace(",", " ").split())
    return run(Host(values=values, docker=run_docker), accepted)


if __name__ == "__main__":
    sys.exit(main())
