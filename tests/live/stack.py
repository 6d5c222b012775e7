"""Helpers of the live smoke suite: the stack's containers through Compose, their logs,
and waits that have a deadline and show why they failed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

import pytest
import requests

from bundle.alerts import settings

ROOT = Path(__file__).resolve().parents[2]
# The demo platform's notification sink (tests/platform/app/sink.py), published on loopback.
SINK = os.environ.get("LIVE_SINK", "http://127.0.0.1:18080")


def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "compose.sh"), *args], cwd=ROOT,
                          capture_output=True, text=True, check=check)


def containers() -> list[dict]:
    out = compose("ps", "--all", "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def logs(*services: str, tail: int = 40) -> str:
    return compose("logs", "--no-color", "--tail", str(tail), *services, check=False).stdout


def wait_for(what: str, probe: Callable[[], object], timeout: float, interval: float = 1.0,
             services: tuple[str, ...] = ()):
    """Call probe until it returns something truthy; fail with the last error and the
    logs of the services involved when the deadline passes or a container has exited."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
            last = f"probe returned {result!r}"
        except (requests.RequestException, AssertionError, KeyError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        exited = [c["Service"] for c in containers()
                  if c["Service"] in services and c["State"] != "running"]
        if exited:
            pytest.fail(f"{what}: {', '.join(exited)} stopped\n{logs(*exited)}")
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f}s (last: {last})\n{logs(*services)}")


def probe_token() -> str:
    """A fresh value for a probe label. Letters first: an all-digit value (1 in about 280
    of 12 hex digits) is a number to YAML, and Prometheus shows it quoted."""
    return "t" + uuid.uuid4().hex[:12]


def platform(*args: str) -> subprocess.CompletedProcess:
    """docker compose on the demo platform (tests/platform/compose.yml)."""
    return subprocess.run(["docker", "compose", "--env-file", str(ROOT / ".env"),
                           "-f", str(ROOT / "tests" / "platform" / "compose.yml"), *args],
                          cwd=ROOT, capture_output=True, text=True, check=True)




def seconds(duration: str) -> float:
    """A Prometheus duration (1h30m, 15s) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))


def route_group_wait(values: dict, receiver: str) -> float:
    """group_wait of the first route (depth first, in order) that names `receiver`,
    inherited from its parents as Alertmanager does."""
    def walk(route: dict, inherited: str):
        wait = route.get("group_wait", inherited)
        if route.get("receiver") == receiver:
            return wait
        for child in route.get("routes", []):
            found = walk(child, wait)
            if found is not None:
                return found
        return None

    top = values["alertmanager"]["route"]
    return seconds(walk(top, top["group_wait"]) or top["group_wait"])


def alert_bound(values: dict, alert: str, receiver: str) -> tuple[float, list[tuple[str, float]]]:
    """The longest a fault may take to reach `receiver` as a notification of `alert`, and
    its terms (docs/alerting.md, "How long an alert takes"):
      scrape       the first scrape that can see the fault starts within scrape_interval;
      scrape time  it ends within scrape_timeout (an exporter whose service vanished may
                   wait that long for its name or connection to fail);
      evaluation   the rule group evaluates within evaluation_interval after the sample;
      for          it fires on the first evaluation at least `for` after the one that saw
                   it first: `for` rounded up to whole evaluation intervals;
      group_wait   of the receiver's route, before Alertmanager sends a new group;
      send         Prometheus to Alertmanager to the receiver: one second."""
    prom = values["prometheus"]
    every = seconds(prom["evaluation_interval"])
    terms = [("scrape", seconds(prom["scrape_interval"])), ("scrape time", seconds(prom["scrape_timeout"])),
             ("evaluation", every),
             ("for", math.ceil(seconds(settings(values)[alert]["for"]) / every) * every),
             ("group_wait", route_group_wait(values, receiver)), ("send", 1.0)]
    return sum(t for _, t in terms), terms


TRAFFIC = """
import urllib.error, urllib.request
for _ in range({rounds}):
    for method, path in [("GET", "/api/items/1"), ("GET", "/api/fail"), ("GET", "/nowhere"),
                         ("POST", "/api/tasks/generate_document"), ("POST", "/api/tasks/broken_task")]:
        try:
            urllib.request.urlopen(urllib.request.Request("http://nginx" + path, method=method), timeout=5)
        except urllib.error.HTTPError:
            pass
"""


def send_traffic(rounds: int) -> None:
    """Requests through the demo platform's nginx (2xx, 5xx, 404) and both Celery tasks
    (one fails), sent from inside the api-gateway container."""
    platform("exec", "-T", "api-gateway", "python3", "-c", TRAFFIC.format(rounds=rounds))


def make_values(overlays, *extra) -> str:
    """The VALUES argument of make for the stack's overlays plus `extra` files."""
    files = [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in overlays]
    return "VALUES=" + " ".join(files + [str(p) for p in extra])


def smoke(overlays, *extra, junit=None) -> tuple[int, dict, str]:
    """`make smoke --json` as a user runs it: (make's exit code, the JSON report, the check
    lines). make exits 2 whenever its recipe fails; the report has the command's own code."""
    args = "--json" + (f" --junit {junit}" if junit else "")
    proc = subprocess.run(["make", "--no-print-directory", "smoke", make_values(overlays, *extra),
                           f"SMOKE_ARGS={args}"], cwd=ROOT, capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"make smoke printed no JSON report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.returncode, report, proc.stderr


def check_result(report: dict, check: str) -> dict:
    found = [c for c in report["checks"] if c["id"] == check]
    assert found, f"no check {check} in the report: {[c['id'] for c in report['checks']]}"
    return found[0]


class Api:
    """A JSON API of the stack (Prometheus, Alertmanager) on its published address, with
    the session's login and trust (values web_tls) when one is given."""

    def __init__(self, base: str, session: requests.Session | None = None):
        self.base = base
        self.http = session or requests.Session()

    def get(self, path: str, **params):
        response = self.http.get(self.base + path, params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body):
        response = self.http.post(self.base + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def query(self, expr: str, **params) -> list:
        return self.get("/api/v1/query", query=expr, **params)["data"]["result"]
