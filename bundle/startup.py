"""`make up`'s start: run `docker compose up --wait`, watch the containers while it waits,
and when the stack does not come up say what happened: the service that failed first,
whether it failed or the wait timed out, and that service's last log lines.

    python -m bundle.startup --timeout SECONDS -- COMMAND...

COMMAND is the `compose up` to run (scripts/up.sh passes it). Compose alone waits out its
whole timeout for a container in a restart loop (its health check starts over on every
restart, so it never turns unhealthy), and when the engine refuses to start a container
it prints the engine's error without the container's name. Here a restart loop, an
unhealthy check, an engine error, or a one-shot job that exits non-zero stops the wait
at once and is named. Exit status: COMMAND's when it succeeds, else 1.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from . import ROOT

COMPOSE = [str(ROOT / "scripts" / "compose.sh")]
# A container restarted this many times while `up` waits is in a restart loop.
RESTART_LOOP = 2
LOG_LINES = 40
POLL_SECONDS = 2.0

# Compose's progress lines: " Container observability-alertmanager-1  Starting".
PROGRESS = re.compile(r"^\s*Container (\S+)\s+(\w+)\s*$")
# What Compose prints when it gives up (docker/compose pkg/compose), most specific first.
COMPOSE_ERRORS = [
    # dependency failed to start: container observability-alertmanager-1 is unhealthy
    (re.compile(r"container (\S+) is unhealthy"), "unhealthy"),
    # container observability-x-1 exited (1)
    (re.compile(r"container (\S+) exited \((\d+)\)"), "exited"),
    # service "elasticsearch-setup" didn't complete successfully: exit 1
    (re.compile(r'service "([^"]+)" didn\'t complete successfully: exit (\d+)'), "exited"),
    # Container observability-prometheus-1  Error response from daemon: ...
    (re.compile(r"Container (\S+)\s+Error(?: response from daemon)?:\s*(\S.*)"), "error"),
]
# The engine's own error, which Compose prints without saying for which container.
DAEMON_ERROR = re.compile(r"^\s*Error response from daemon:\s*(.*)$")
# Compose's states of a container it has begun but not finished working on.
PENDING = {"Creating", "Recreate", "Recreated", "Starting", "Restarting", "Waiting"}


@dataclass
class Container:
    service: str
    name: str
    state: str                 # created, running, restarting, exited, dead, ...
    health: str = ""           # "", starting, healthy, unhealthy
    exit_code: int = 0
    restarts: int = 0
    one_shot: bool = False     # restart: "no" (a job that runs once)
    health_log: str = ""       # the last health check's output
    error: str = ""            # the engine's error when it could not start it
    touched: float = 0.0       # when it was last created, started or stopped (Unix time)


@dataclass
class Failure:
    service: str
    how: str                   # what went wrong, in words ("in a restart loop (...)")
    seen: float                # when it was first seen (monotonic seconds)


@dataclass
class Watch:
    """The failures seen so far, each with the time it was first seen."""
    failures: dict[str, Failure] = field(default_factory=dict)

    def note(self, service: str, how: str, now: float) -> None:
        if service not in self.failures or now < self.failures[service].seen:
            self.failures[service] = Failure(service, how, now)


def failure_of(c: Container, since: float) -> str | None:
    """Why a container has failed for good, or None while it may still come up. Only a
    container this `up` created, started or stopped (at `since` or later) counts: one it
    is about to replace may be stopping, or unhealthy from before."""
    if c.touched < since:
        return None
    if c.error and c.state in ("created", "exited", "dead"):
        return f"the engine could not start it: {c.error}"
    if c.restarts >= RESTART_LOOP:
        return (f"in a restart loop (restarted {c.restarts} times, last exit code {c.exit_code})"
                if c.exit_code else f"in a restart loop (restarted {c.restarts} times)")
    if c.health == "unhealthy":
        return "its health check failed" + (f": {c.health_log}" if c.health_log else "")
    if c.state == "dead" or (c.state == "exited" and c.one_shot and c.exit_code != 0):
        return f"exited with code {c.exit_code}"
    return None


def waiting(c: Container) -> str | None:
    """Why a container is not up yet, or None when it is (running and healthy, or a
    one-shot job that completed)."""
    if c.one_shot and c.state == "exited" and c.exit_code == 0:
        return None
    if c.state != "running":
        return c.state
    if c.health and c.health != "healthy":
        return f"health {c.health}"
    return None


def first(failures: Iterable[Failure], order: list[str]) -> Failure:
    """The failure seen first; among those seen at the same moment, the service others
    depend on (dependency order), so the cause comes before what it broke."""
    rank = {service: i for i, service in enumerate(order)}
    return min(failures, key=lambda f: (f.seen, rank.get(f.service, len(rank)), f.service))


def dependency_order(model: dict) -> list[str]:
    """Services with their dependencies before them (Compose's start order)."""
    services = model.get("services", {})
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done or name in path or name not in services:
            return
        for dependency in services[name].get("depends_on", {}) or {}:
            visit(dependency, path + (name,))
        done.append(name)

    for name in sorted(services):
        visit(name)
    return done


def service_of(container: str, services: Iterable[str]) -> str | None:
    """The service of a container named <project>-<service>-<n> (or the service itself),
    when that service is one of the project's."""
    for service in sorted(services, key=len, reverse=True):
        if container == service or re.fullmatch(rf".+[-_]{re.escape(service)}[-_]\d+", container):
            return service
    return None


def compose_failures(lines: list[tuple[float, str]], containers: list[Container],
                     services: Iterable[str]) -> list[tuple[float, str, str]]:
    """(when, service, how) for each failure Compose reported in its output, `lines`
    being (arrival time, line). The engine's error that Compose prints alone goes to the
    container whose start the engine refused (its State.Error), else to the one Compose
    was still working on."""
    names = {c.name: c.service for c in containers}
    refused = {c.service: c.error for c in containers if c.error}
    last: dict[str, str] = {}          # container -> Compose's last state for it
    found = []
    for when, line in lines:
        progress = PROGRESS.match(line)
        if progress:
            last[progress.group(1)] = progress.group(2)
            continue
        for pattern, kind in COMPOSE_ERRORS:
            match = pattern.search(line)
            service = match and (names.get(match.group(1)) or service_of(match.group(1), services))
            if not service:
                continue
            how = {"unhealthy": "its health check failed",
                   "exited": f"exited with code {match.group(2) if kind == 'exited' else ''}"}.get(kind)
            found.append((when, service, how or f"the engine refused it: {match.group(2).strip()}"))
            break
        else:
            daemon = DAEMON_ERROR.match(line)
            if not daemon:
                continue
            message = daemon.group(1).strip()
            owner = next((s for s, error in refused.items() if error and (error in message or message in error)), None)
            if owner is None:
                pending = [name for name, state in last.items() if state in PENDING]
                owner = pending and (names.get(pending[0]) or service_of(pending[0], services))
            if owner:
                found.append((when, owner, f"the engine could not start it: {message}"))
    return found


# --------------------------------------------------------------------------- the engine

def unix_time(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds (2026-12-01T09:37:41.123456789Z) as Unix
    time; 0 for its zero time (never happened) or anything unreadable."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp or "")
    if not match or stamp.startswith("0001-"):
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    fraction = (match.group(2) or ".0")[:7]
    return datetime.fromisoformat(match.group(1) + fraction + zone).timestamp()


class Engine:
    """The stack's containers, through Compose and docker inspect."""

    def __init__(self, run: Callable[[list[str]], subprocess.CompletedProcess] | None = None):
        self.run = run or (lambda args: subprocess.run(args, capture_output=True, text=True, timeout=60))

    def model(self) -> dict:
        result = self.run([*COMPOSE, "config", "--format", "json"])
        return json.loads(result.stdout) if result.returncode == 0 and result.stdout.strip() else {}

    def containers(self, model: dict) -> list[Container]:
        result = self.run([*COMPOSE, "ps", "--all", "--format", "json"])
        if result.returncode != 0:
            return []
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip().startswith("{")]
        if not rows:
            return []
        inspected = self.run(["docker", "inspect", *[row["ID"] for row in rows]])
        details = {d["Id"][:12]: d for d in json.loads(inspected.stdout or "[]")} if inspected.returncode == 0 else {}
        services = model.get("services", {})
        out = []
        for row in rows:
            detail = details.get(row["ID"][:12], {})
            state = detail.get("State", {})
            health = state.get("Health") or {}
            log = (health.get("Log") or [{}])[-1]
            restart = services.get(row["Service"], {}).get("restart", "")
            out.append(Container(
                service=row["Service"], name=row["Name"],
                state=state.get("Status", row.get("State", "")),
                health=health.get("Status", row.get("Health", "")),
                exit_code=int(state.get("ExitCode", row.get("ExitCode", 0)) or 0),
                restarts=int(detail.get("RestartCount", 0) or 0),
                one_shot=restart in ("no", ""),
                health_log=" ".join(str(log.get("Output", "")).split())[:300],
                error=" ".join(str(state.get("Error", "")).split()),
                touched=max(unix_time(state.get("StartedAt", "")), unix_time(state.get("FinishedAt", "")),
                            unix_time(detail.get("Created", "")))))
        return out

    def logs(self, service: str, lines: int = LOG_LINES) -> str:
        result = self.run([*COMPOSE, "logs", "--no-color", "--no-log-prefix", "--tail", str(lines), service])
        return (result.stdout + result.stderr).rstrip()


# --------------------------------------------------------------------------- running

def watch(command: list[str], timeout: float, engine: Engine, out=sys.stderr,
          clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
          poll: float = POLL_SECONDS) -> int:
    model = engine.model()
    order = dependency_order(model)
    services = list(model.get("services", {}))
    start, since = clock(), wall() - 1  # one second of slack for the engine's clock
    seen = Watch()
    lines: list[tuple[float, str]] = []
    stopping = threading.Event()   # what Compose says once it is told to stop is noise
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not stopping.is_set():
                out.write(line)
                out.flush()
                lines.append((clock(), line.rstrip("\n")))

    def look(now: float) -> list[Container]:
        found = engine.containers(model)
        for c in found:
            how = failure_of(c, since)
            if how:
                seen.note(c.service, how, now)
        return found

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    while True:
        try:
            code = proc.wait(timeout=poll)
            break
        except subprocess.TimeoutExpired:
            pass
        look(clock())
        timed_out = clock() - start > timeout + 10  # Compose's own --wait-timeout should have ended it
        if seen.failures or timed_out:
            stopping.set()
            stop(proc)
            code = 1
            break
    reader.join(timeout=5)
    if code == 0:
        return 0

    now = clock()
    containers = look(now)
    for when, service, how in compose_failures(lines, containers, services):
        seen.note(service, how, when)
    if seen.failures:
        return report_failure(seen, containers, order, engine, out)
    if timed_out or now - start >= timeout:
        return report_timeout(containers, order, timeout, engine, out)
    print(f"make up: failed: `{' '.join(command)}` exited with status {code} (its output is above)", file=out)
    return 1


def stop(proc: subprocess.Popen) -> None:
    """End the `compose up` that is still waiting: the containers stay as they are."""
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def report_failure(seen: Watch, containers: list[Container], order: list[str], engine: Engine, out) -> int:
    cause = first(seen.failures.values(), order)
    print(f"make up: failed: {cause.service}: {cause.how}", file=out)
    print(f"----- last {LOG_LINES} log lines of {cause.service} -----", file=out)
    print(engine.logs(cause.service) or "(no output)", file=out)
    print("-----", file=out)
    rank = {service: i for i, service in enumerate(order)}
    for failure in sorted(seen.failures.values(), key=lambda f: (f.seen, rank.get(f.service, len(rank)))):
        if failure.service != cause.service:
            print(f"make up: also failed: {failure.service}: {failure.how}", file=out)
    pending = [f"{c.service} ({why})" for c in containers
               if c.service not in seen.failures and (why := waiting(c))]
    if pending:
        print(f"make up: not up either: {', '.join(pending)}", file=out)
    print(f"make up: more of its logs: scripts/compose.sh logs {cause.service}", file=out)
    return 1


def report_timeout(containers: list[Container], order: list[str], timeout: float, engine: Engine, out) -> int:
    pending = [c for c in containers if waiting(c)]
    rank = {service: i for i, service in enumerate(order)}
    pending.sort(key=lambda c: rank.get(c.service, len(rank)))
    if not pending:
        print(f"make up: timed out after {timeout:.0f}s, though every container is up now", file=out)
        return 1
    slowest = pending[0]
    others = ", ".join(f"{c.service} ({waiting(c)})" for c in pending[1:])
    print(f"make up: timed out after {timeout:.0f}s: {slowest.service} is not up ({waiting(slowest)})"
          + (f"; also waiting: {others}" if others else ""), file=out)
    if slowest.health_log:
        print(f"make up: {slowest.service}'s last health check said: {slowest.health_log}", file=out)
    print(f"----- last {LOG_LINES} log lines of {slowest.service} -----", file=out)
    print(engine.logs(slowest.service) or "(no output)", file=out)
    print("-----", file=out)
    print("make up: give it longer with UP_TIMEOUT=<seconds> make up, or see scripts/compose.sh logs", file=out)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run `compose up --wait` and report the first failure truthfully.")
    parser.add_argument("--timeout", type=float, required=True, help="the --wait-timeout given to Compose (seconds)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the compose up command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return watch(command, args.timeout, Engine())


if __name__ == "__main__":
    sys.exit(main())
