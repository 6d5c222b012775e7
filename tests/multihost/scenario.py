"""The multi-host scenario: the central stack (make up with tests/values/multihost.yaml)
plus simulated remote hosts and a long-term store, each a Compose project of its own.

    python tests/multihost/scenario.py up     # after `make up` with the same VALUES
    python tests/multihost/scenario.py down   # every project and network it made

Networks stand for what joins real hosts: obsbundle-wan (the internet: the agent hosts
and, of the central stack, the edge alone, as monitoring.test), obsbundle-pull (the
central Prometheus and the pull-mode host) and obsbundle-longterm (the central
Prometheus and the long-term store). The hosts run the bundles `make agent` writes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bundle import DEFAULT_VALUES  # noqa: E402
from bundle.build import image_ref  # noqa: E402
from bundle.cli import load  # noqa: E402

HERE = Path(__file__).resolve().parent
WAN, PULL, LONGTERM = "obsbundle-wan", "obsbundle-pull", "obsbundle-longterm"
EDGE_NAME = "monitoring.test"
LONGTERM_URL = "http://127.0.0.1:18428"


def overlays() -> list[Path]:
    return [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]


def scenario_values() -> dict:
    values, _ = load([DEFAULT_VALUES, *overlays()])
    return values


def run(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def project(name: str) -> str:
    return f"obsbundle-{name}"


def host_compose(name: str, host: dict) -> list[str]:
    """docker compose for the simulated host `name`: its bundle, and the override that
    puts it on the simulated networks."""
    override = HERE / ("agent-host.yml" if host["mode"] == "agent" else "pull-host.yml")
    return ["docker", "compose", "-p", project(name), "--project-directory", str(ROOT / "private" / "agents" / name),
            "-f", str(ROOT / "private" / "agents" / name / "compose.yml"), "-f", str(override)]


def central_container(service: str) -> str:
    out = run(str(ROOT / "scripts" / "compose.sh"), "ps", "--all", "--format", "json", service).stdout
    found = [json.loads(line) for line in out.splitlines() if line.strip()]
    if not found:
        raise SystemExit(f"the central stack has no {service}: run make up with tests/values/multihost.yaml")
    return found[0]["Name"]


def connect(network: str, container: str, *aliases: str) -> None:
    attached = json.loads(run("docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container).stdout)
    if network not in attached:
        run("docker", "network", "connect", *(a for alias in aliases for a in ("--alias", alias)), network, container)


def longterm_compose(values: dict) -> tuple[list[str], dict]:
    env = {**os.environ, "VICTORIA_METRICS_IMAGE": image_ref(values, "victoria_metrics")}
    return ["docker", "compose", "--env-file", str(ROOT / ".env"), "-f", str(HERE / "longterm.yml")], env


def up() -> None:
    values = scenario_values()
    for network in (WAN, PULL, LONGTERM):
        if run("docker", "network", "inspect", network, check=False).returncode != 0:
            run("docker", "network", "create", network)
    # Of the central stack, only the edge is on the simulated internet.
    connect(WAN, central_container("edge"), EDGE_NAME)
    prometheus = central_container("prometheus")
    connect(PULL, prometheus)
    connect(LONGTERM, prometheus)
    base, env = longterm_compose(values)
    run(*base, "up", "--detach", "--wait", "--wait-timeout", "60", env=env)
    values_args = [a for p in overlays() for a in ("--values", str(p))]
    for name, host in values["hosts"].items():
        run(sys.executable, "-m", "bundle.agent", *values_args, name)
        run(*host_compose(name, host), "up", "--detach", "--wait", "--wait-timeout", "90")
    print(f"multi-host scenario up: hosts {', '.join(values['hosts'])}, long-term store at {LONGTERM_URL}")


def down() -> None:
    values = scenario_values()
    for name, host in values["hosts"].items():
        if (ROOT / "private" / "agents" / name / "compose.yml").exists():
            run(*host_compose(name, host), "down", "--volumes", "--remove-orphans", check=False)
    base, env = longterm_compose(values)
    run(*base, "down", "--volumes", check=False, env=env)
    for network in (WAN, PULL, LONGTERM):
        for container in json.loads(run("docker", "network", "inspect", "--format", "{{json .Containers}}",
                                        network, check=False).stdout or "{}").values():
            run("docker", "network", "disconnect", "--force", network, container["Name"], check=False)
        run("docker", "network", "rm", network, check=False)


def wait_until(what: str, probe, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - the last error is reported
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


if __name__ == "__main__":
    commands = {"up": up, "down": down}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    commands[sys.argv[1]]()
