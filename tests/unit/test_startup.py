"""make up's failure report (bundle/startup.py): which service failed first, "failed" or
"timed out", and that service's logs; the engine and Compose are faked, the command that
`up` runs is a real process that prints what Compose prints and exits as Compose does."""

from __future__ import annotations

import io
import sys

import pytest

from bundle import startup
from bundle.startup import Container

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
MODEL = {"services": {
    "alertmanager": {"restart": "unless-stopped"},
    "prometheus": {"restart": "unless-stopped", "depends_on": {"alertmanager": {"condition": "service_healthy"}}},
    "node-exporter": {"restart": "unless-stopped"},
    "elasticsearch-setup": {"restart": "no"},
}}


class FakeEngine(startup.Engine):
    """Containers as a sequence of snapshots, one per poll (the last one repeats)."""

    def __init__(self, snapshots: list[list[Container]], logs: dict[str, str] | None = None):
        self.snapshots = snapshots
        self.polls = 0
        self.log_text = logs or {}
        self.asked_logs: list[str] = []

    def model(self) -> dict:
        return MODEL

    def containers(self, model: dict) -> list[Container]:
        snapshot = self.snapshots[min(self.polls, len(self.snapshots) - 1)]
        self.polls += 1
        return snapshot

    def logs(self, service: str, lines: int = startup.LOG_LINES) -> str:
        self.asked_logs.append(service)
        return self.log_text.get(service, "")


def up(exit_code: int = 0, output: str = "", seconds: float = 0.0) -> list[str]:
    """A stand-in for `compose up --wait`: prints `output`, waits, exits."""
    code = f"import sys, time; sys.stdout.write({output!r}); sys.stdout.flush(); time.sleep({seconds}); sys.exit({exit_code})"
    return [sys.executable, "-c", code]


def c(service: str, state: str = "running", health: str = "healthy", **kw) -> Container:
    kw.setdefault("touched", NOW + 5)
    return Container(service=service, name=f"observability-{service}-1", state=state, health=health, **kw)


def run(command, engine, timeout=300.0):
    out = io.StringIO()
    code = startup.watch(command, timeout, engine, out=out, wall=lambda: NOW, poll=0.05)
    return code, out.getvalue()


def healthy() -> list[Container]:
    return [c("alertmanager"), c("prometheus"), c("node-exporter", health="")]


def test_a_stack_that_comes_up_passes_through_composes_status():
    code, out = run(up(0, "Container observability-prometheus-1  Healthy\n"), FakeEngine([healthy()]))
    assert code == 0
    assert "Healthy" in out and "make up:" not in out


def test_a_restart_loop_fails_at_once_naming_the_service_and_showing_its_logs():
    """The issue's case: Alertmanager cannot read its config and restarts forever, while
    Compose would wait out its whole timeout."""
    looping = [c("alertmanager", health="starting", restarts=3, exit_code=1), c("prometheus", "created", "")]
    engine = FakeEngine([looping], logs={"alertmanager": 'msg="error loading configuration file" err="open /etc/alertmanager/alertmanager.yml: permission denied"'})
    code, out = run(up(0, seconds=30), engine)          # Compose would still be waiting
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "make up: failed: alertmanager: in a restart loop (restarted 3 times, last exit code 1)"
    assert "permission denied" in out
    assert engine.asked_logs == ["alertmanager"]
    assert "not up either: prometheus (created)" in out
    assert "timed out" not in out


def test_one_restart_is_not_yet_a_loop():
    once = [c("alertmanager", health="starting", restarts=1, exit_code=1)]
    code, out = run(up(0, seconds=0.3), FakeEngine([once, healthy()]))
    assert code == 0, out


def test_an_unhealthy_service_fails_with_its_last_health_check():
    sick = [c("alertmanager", health="unhealthy", health_log="wget: can't connect to remote host: Connection refused")]
    code, out = run(up(0, seconds=30), FakeEngine([sick]))
    assert code == 1
    assert out.splitlines()[0] == ("make up: failed: alertmanager: its health check failed: "
                                   "wget: can't connect to remote host: Connection refused")


def test_containers_from_before_this_up_are_not_judged_while_compose_replaces_them():
    """An unhealthy or looping container that `up` is about to recreate is no failure of this run."""
    old = [c("alertmanager", health="unhealthy", restarts=5, touched=NOW - 3600)]
    code, out = run(up(0, seconds=0.3), FakeEngine([old, healthy()]))
    assert code == 0, out


def test_the_cause_is_named_before_what_it_broke():
    """Seen at the same poll, the service the other depends on is the one that failed first."""
    both = [c("prometheus", health="unhealthy"), c("alertmanager", health="starting", restarts=2, exit_code=1)]
    code, out = run(up(0, seconds=30), FakeEngine([both]))
    assert out.splitlines()[0].startswith("make up: failed: alertmanager: in a restart loop")
    assert "make up: also failed: prometheus: its health check failed" in out


def test_the_failure_seen_first_wins_over_a_later_one():
    first = [c("node-exporter", health="unhealthy"), c("alertmanager", health="starting")]
    later = [c("node-exporter", health="unhealthy"), c("alertmanager", health="starting", restarts=4, exit_code=2)]
    engine = FakeEngine([[c("alertmanager", health="starting")], first, later])
    startup_seen = startup.Watch()
    startup_seen.note("node-exporter", "failed: x", 1.0)
    startup_seen.note("alertmanager", "failed: y", 2.0)
    assert startup.first(startup_seen.failures.values(), startup.dependency_order(MODEL)).service == "node-exporter"
    code, out = run(up(0, seconds=30), engine)
    assert out.splitlines()[0].startswith("make up: failed: node-exporter")


def test_composes_dependency_failed_message_names_the_service():
    """When Compose gives up first, its "dependency failed to start" line is the clue."""
    output = ("Container observability-alertmanager-1  Error\n"
              "dependency failed to start: container observability-alertmanager-1 is unhealthy\n")
    engine = FakeEngine([[c("alertmanager", health="starting", touched=NOW - 60), c("prometheus", "created", "")]])
    code, out = run(up(1, output), engine)
    assert code == 1
    assert "make up: failed: alertmanager: its health check failed" in out
    assert engine.asked_logs == ["alertmanager"]


def test_a_one_shot_job_that_exits_non_zero_failed():
    output = 'service "elasticsearch-setup" didn\'t complete successfully: exit 22\n'
    engine = FakeEngine([[c("elasticsearch-setup", "exited", "", exit_code=22, one_shot=True)]])
    code, out = run(up(1, output), engine)
    assert "make up: failed: elasticsearch-setup: exited with code 22" in out
    assert "timed out" not in out


def test_a_job_that_completed_is_up():
    done = healthy() + [c("elasticsearch-setup", "exited", "", exit_code=0, one_shot=True)]
    assert run(up(0, seconds=0.2), FakeEngine([done]))[0] == 0


def test_an_engine_error_for_a_container_names_its_service():
    output = ("Container observability-prometheus-1  Error response from daemon: driver failed programming "
              "external connectivity on endpoint observability-prometheus-1: Bind for 127.0.0.1:9090 failed: "
              "port is already allocated\n")
    code, out = run(up(1, output), FakeEngine([[c("prometheus", "created", "", touched=0)]]))
    report = out.split("make up: failed: prometheus: ", 1)[1].splitlines()[0]
    assert report.startswith("the engine refused it: driver failed programming external connectivity")
    assert report.endswith("port is already allocated")


# What Compose 2.40 printed here when a rootless engine refused node-exporter's pid: host
# (the engine's error alone, after the container's "Starting"), while postgres-exporter,
# without its password, went into a restart loop seconds later.
ROOTLESS = """ Container observability-node-exporter-1  Starting
 Container observability-alertmanager-1  Starting
 Container observability-postgres-exporter-1  Starting
 Container observability-alertmanager-1  Started
 Container observability-postgres-exporter-1  Started
Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error mounting "proc" to rootfs at "/proc": mount proc:/proc (via /proc/self/fd/6), flags: 0xe: operation not permitted: unknown
"""
REFUSED = ('failed to create shim task: OCI runtime create failed: runc create failed: unable to start container '
           'process: error during container init: error mounting "proc" to rootfs at "/proc": mount proc:/proc '
           '(via /proc/self/fd/6), flags: 0xe: operation not permitted: unknown')


@pytest.mark.parametrize("state_error", [REFUSED, ""])
def test_the_engines_error_goes_to_the_container_it_refused(state_error):
    """By the container's State.Error, or else by the container Compose was still starting."""
    after = [c("node-exporter", "created", "", error=state_error),
             c("postgres-exporter", health="starting", restarts=3, exit_code=1), c("alertmanager", health="starting")]
    before = [c("node-exporter", "created", ""), c("postgres-exporter", health="starting"), c("alertmanager", health="starting")]
    engine = FakeEngine([before, after])
    code, out = run(up(1, ROOTLESS, seconds=0.3), engine)
    report = [line for line in out.splitlines() if line.startswith("make up: ")]
    assert report[0] == f"make up: failed: node-exporter: the engine could not start it: {REFUSED}"
    assert "make up: also failed: postgres-exporter: in a restart loop (restarted 3 times, last exit code 1)" in report
    assert engine.asked_logs == ["node-exporter"]


def test_a_container_the_engine_would_not_start_is_seen_while_compose_waits():
    refused = [c("node-exporter", "created", "", error=REFUSED), c("alertmanager", health="starting")]
    code, out = run(up(0, seconds=30), FakeEngine([refused]))
    assert out.splitlines()[0] == f"make up: failed: node-exporter: the engine could not start it: {REFUSED}"


def test_a_wait_that_runs_out_says_timed_out_and_on_what():
    slow = [c("alertmanager"), c("prometheus", health="starting", health_log="")]
    engine = FakeEngine([slow], logs={"prometheus": "msg=\"Replaying WAL\""})
    code, out = run(up(1, "application not healthy after 0.3s\n", seconds=0.3), engine, timeout=0.2)
    assert code == 1
    assert "make up: timed out after 0s: prometheus is not up (health starting)" in out
    assert "failed" not in out.replace("--wait-timeout", "")
    assert engine.asked_logs == ["prometheus"]


def test_a_compose_that_never_returns_is_stopped_after_its_own_timeout():
    code, out = run(up(0, seconds=60), FakeEngine([[c("prometheus", health="starting")]]), timeout=-9.8)
    assert code == 1
    assert "timed out" in out and "prometheus is not up" in out


def test_another_compose_error_is_reported_as_such():
    code, out = run(up(15, "no such service: x\n"), FakeEngine([healthy()]))
    assert code == 1
    assert "exited with status 15" in out and "timed out" not in out


@pytest.mark.parametrize("stamp, expected", [
    ("2026-12-01T09:37:41.123456789Z", 1796117861.123456),
    ("2026-12-01T10:37:41+01:00", 1796117861.0),
    ("0001-01-01T00:00:00Z", 0.0),
    ("", 0.0),
])
def test_docker_times(stamp, expected):
    assert startup.unix_time(stamp) == pytest.approx(expected)


def test_dependency_order_puts_dependencies_first():
    order = startup.dependency_order(MODEL)
    assert order.index("alertmanager") < order.index("prometheus")


@pytest.mark.parametrize("name, service", [
    ("observability-alertmanager-1", "alertmanager"),
    ("observability-node-exporter-1", "node-exporter"),
    ("my-stack-prometheus-2", "prometheus"),
    ("observability-unknown-1", None),
])
def test_service_of_a_container_name(name, service):
    assert startup.service_of(name, MODEL["services"]) == service
