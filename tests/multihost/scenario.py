"""The multi-host scenario: the central stack (make up with tests/values/multihost.yaml)
plus simulated remote hosts and a long-term store, each a Compose project of its own.

    python tests/multihost/scenario.py up     # after `make up` with the same VALUES
    python tests/multihost/scenario.py down   # every project and network it made

Networks stand for what joins real hosts: simulated-wan (the internet: the agent hosts
and, of the central stack, the edge alone, as monitoring.test), simulated-pull (the
central Prometheus and the pull-mode host) and simulated-longterm (the central
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
# Named to sort after the stack's own network (<project>_default): engines before 28.0
# publish a container's ports into the network whose name sorts first (gw_priority
# decides from 28.0 on), and Prometheus listens on the stack's network only.
WAN, PULL, LONGTERM = "simulated-wan", "simulated-pull", "simulated-longterm"
EDGE_NAME = "monitoring.test"
LONGTERM_URL = "http://127.0.0.1:18428"


def overlays() -> list[Path]:
    return [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]


def scenario_values() -> dict:
    values, _ = load([DEFAULT_VALUES, *overlays()])
    return values


def central(values: dict):
    """(base URL, requests session) of the central Prometheus on its own published port:
    with web_tls, over TLS trusting the local CA, with the login of .env."""
    import requests

    from bundle import hosts
    from bundle.secrets import read_env

    session = requests.Session()
    # Else REQUESTS_CA_BUNDLE, where set, wins over session.verify:
    # https://github.com/psf/requests/issues/3829
    session.trust_env = False
    session.auth = hosts.direct_login(values, read_env(ROOT / ".env"))
    session.verify = hosts.direct_trust(values, ROOT / ".env")
    return hosts.direct_url(values, "prometheus").rstrip("/"), session


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
        assert network > f"{values['project_name']}_default", network
        if run("docker", "network", "inspect", network, check=False).returncode != 0:
            run("docker", "network", "create", network)
    # Of the central stack, only the edge is on the simulated internet.
    connect(WAN, central_container("edge"), EDGE_NAME)
    prometheus = central_container("prometheus")
    connect(PULL, prometheus)
    connect(LONGTERM, prometheus)
    base, env = longterm_compose(values)
    # Recreated: Compose copies environment secrets only into new containers, and a
    # container left from another run would keep that run's password.
    run(*base, "up", "--detach", "--force-recreate", "--wait", "--wait-timeout", "60", env=env)
    values_args = [a for p in overlays() for a in ("--values", str(p))]
    for name, host in values["hosts"].items():
        run(sys.executable, "-m", "bundle.agent", *values_args, name)
    # Where this machine's / is a private mount, the bundles' node-exporter needs
    # HOST_ROOT_MOUNT=ro, as their README says: scripts/host-env.sh finds out, as for the
    # central stack.
    found = run(str(ROOT / "scripts" / "host-env.sh"), str(ROOT / "config" / "compose.env")).stdout
    host_env = dict(line.split("=", 1) for line in found.splitlines() if line.startswith("HOST_ROOT_MOUNT="))
    # Not waiting for their healthchecks: the tests wait for their samples.
    for name, host in values["hosts"].items():
        run(*host_compose(name, host), "up", "--detach", "--force-recreate", env={**os.environ, **host_env})
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


def agent_counters(name: str, *metrics: str) -> dict[str, float]:
    """Counters of a simulated host's agent, read from its own /metrics (summed over
    their label sets)."""
    out = run("docker", "exec", f"{project(name)}-prometheus-agent-1", "wget", "-q", "-O", "-",
              "http://127.0.0.1:9090/metrics").stdout
    totals = dict.fromkeys(metrics, 0.0)
    for line in out.splitlines():
        name_part = line.split("{", 1)[0].split(" ", 1)[0]
        if name_part in totals:
            totals[name_part] += float(line.rsplit(" ", 1)[1])
    return totals


LOSS_COUNTERS = ("prometheus_remote_storage_samples_failed_total", "prometheus_remote_storage_samples_dropped_total")


def samples(prometheus, host: str, start: float, end: float) -> list[float]:
    """Timestamps of the samples of up{job="node",host=...} the central holds in [start, end]
    (prometheus: the pair `central` returns)."""
    url, session = prometheus
    expr = f'up{{job="node",host="{host}"}}[{int(end - start) + 1}s]'
    response = session.get(f"{url}/api/v1/query", params={"query": expr, "time": end}, timeout=10)
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return sorted(float(t) for series in result for t, _ in series["values"] if float(t) >= start)


def missing(timestamps: list[float], interval: float, start: float, end: float) -> int:
    """Scheduled scrapes without a sample: the agent scrapes every `interval` at a fixed
    phase, so [start, end] must hold a sample every `interval` from the first one on."""
    if not timestamps:
        return int((end - start) // interval)
    expected = int(round((timestamps[-1] - timestamps[0]) / interval)) + 1
    # Scrapes due after the last sample (a second of slack for the scrape's own jitter).
    tail = max(int((end - timestamps[-1] - 1) // interval), 0)
    return expected - len(timestamps) + tail


def receiving(prometheus, edge_port: int) -> bool:
    """The central stack takes samples again: Prometheus is ready and the edge accepts
    connections."""
    import socket

    url, session = prometheus
    if session.get(f"{url}/-/ready", timeout=2).status_code != 200:
        return False
    socket.create_connection(("127.0.0.1", edge_port), timeout=2).close()
    return True


def outage(prometheus, edge_port: int, agent_hosts: list[str], interval: float,
           seconds: float = 60) -> dict:
    """Stop the whole central stack for `seconds`, start it, and measure for each agent
    host: how long until the central holds every sample taken meanwhile (catch-up, from
    the moment Prometheus and the edge answer again), and how many it never got."""
    compose = str(ROOT / "scripts" / "compose.sh")
    before = {name: agent_counters(name, *LOSS_COUNTERS) for name in agent_hosts}
    stopped = time.time()
    run(compose, "stop")
    time.sleep(seconds)
    run(compose, "start")
    wait_until("the central stack receiving again", lambda: receiving(prometheus, edge_port), timeout=120,
               interval=0.5)
    healthy = time.time()
    window = (stopped - 30, healthy)
    caught_up: dict[str, float] = {}
    lost: dict[str, int] = {}
    deadline = healthy + 120
    while time.time() < deadline and len(caught_up) < len(agent_hosts):
        for name in agent_hosts:
            if name in caught_up:
                continue
            try:
                gaps = missing(samples(prometheus, name, *window), interval, *window)
            except Exception:  # noqa: BLE001 - Prometheus is still starting
                continue
            if gaps == 0:
                caught_up[name] = time.time() - healthy
        time.sleep(0.5)
    for name in agent_hosts:
        lost[name] = missing(samples(prometheus, name, *window), interval, *window)
    after = {name: agent_counters(name, *LOSS_COUNTERS) for name in agent_hosts}
    dropped = {name: sum(after[name].values()) - sum(before[name].values()) for name in agent_hosts}
    return {"stopped": stopped, "healthy": healthy, "outage_seconds": healthy - stopped,
            "catch_up_seconds": caught_up, "samples_lost": lost, "agent_dropped": dropped}


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
