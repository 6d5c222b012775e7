"""Least privilege on the running stack: no secret in any container's configuration, each
secret file readable by its service's user only, the app network reaching ingest ports
only, and redis_exporter giving the Redis password to the configured Redis alone."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from bundle.secrets import read_env
from stack import ROOT, containers, logs, platform, wait_for

pytestmark = pytest.mark.live

# The uid each service runs as, from its image's Dockerfile (README "Security defaults").
SERVICE_UIDS = {
    "prometheus": 65534, "alertmanager": 65534, "node-exporter": 65534, "postgres-exporter": 65534,
    "redis-exporter": 59000, "nginx-exporter": 1001,
    "grafana": 472, "jaeger": 10001, "elasticsearch": 1000, "logstash": 1000, "kibana": 1000,
    "apm-server": 1000, "elasticsearch-exporter": 65534, "logstash-exporter": 65534,
}
# From a container on the app network: (service, port, reachable?). Ingest ports are open
# to the apps; query, admin and metrics ports are not (README "Security defaults").
APP_NETWORK_VIEW = {
    "core": [("prometheus", 9090, False), ("alertmanager", 9093, False), ("node-exporter", 9100, False),
             ("postgres-exporter", 9187, False), ("redis-exporter", 9121, False), ("nginx-exporter", 9113, False)],
    "tracing": [("jaeger", 4317, True), ("jaeger", 4318, True), ("jaeger", 16686, False), ("jaeger", 16685, False),
                ("jaeger", 13133, False), ("jaeger", 8888, False)],
    # The older span protocols, while values jaeger.receivers takes them in (TCP ports).
    "jaeger_receiver": [("jaeger", 14268, True), ("jaeger", 14250, True)],
    "zipkin_receiver": [("jaeger", 9411, True)],
    "logs": [("logstash", 5000, True), ("logstash", 5044, True), ("logstash", 9600, False),
             ("elasticsearch", 9200, False), ("kibana", 5601, False)],
    "apm": [("apm-server", 8200, True)],
    "dashboards": [("grafana", 3000, False)],
}


def running_containers() -> dict[str, dict]:
    names = [c["Name"] for c in containers() if c["State"] == "running"]
    out = subprocess.run(["docker", "inspect", *names], capture_output=True, text=True, check=True).stdout
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in json.loads(out)}


@pytest.fixture(scope="module")
def inspected(running) -> dict[str, dict]:
    return running_containers()


@pytest.fixture(scope="module")
def secret_values() -> list[str]:
    return [v for v in read_env(ROOT / ".env").values() if len(v) >= 6]


def test_no_secret_in_any_containers_configuration(inspected, secret_values):
    """docker inspect shows no secret value in Env, Cmd, Entrypoint or labels."""
    assert secret_values
    for service, container in inspected.items():
        config = container["Config"]
        shown = json.dumps([config.get("Env"), config.get("Cmd"), config.get("Entrypoint"), config.get("Labels"),
                            container.get("Args"), container.get("Path")])
        leaked = [v[:3] + "..." for v in secret_values if v in shown]
        assert not leaked, (service, leaked)


def exec_in(container: str, *command: str, user: str | None = None) -> subprocess.CompletedProcess:
    args = ["docker", "exec"] + (["-u", user] if user else []) + [container, *command]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def test_services_run_as_their_images_users(inspected):
    for service, container in inspected.items():
        if service not in SERVICE_UIDS:
            continue
        status = open(f"/proc/{container['State']['Pid']}/status").read()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {SERVICE_UIDS[service]}, (service, uids)


CAP_NET_RAW = 13   # <linux/capability.h>


def test_no_container_can_open_raw_sockets(inspected):
    """NET_RAW (in Docker's default set) is dropped everywhere: no ICMP or forged packets
    on the shared networks."""
    for service, container in inspected.items():
        status = open(f"/proc/{container['State']['Pid']}/status").read()
        for line in status.splitlines():
            if line.startswith(("CapEff:", "CapBnd:")):
                assert not int(line.split()[1], 16) >> CAP_NET_RAW & 1, (service, line)


def test_each_secret_file_is_readable_by_its_services_user_only(inspected):
    checked = 0
    for service, container in inspected.items():
        for mount in container["Mounts"]:
            if not mount["Destination"].startswith("/run/secrets/"):
                continue
            path, name = mount["Destination"], container["Name"].lstrip("/")
            own = exec_in(name, "cat", path)
            assert own.returncode == 0, (service, path, own.stderr)
            # Another uid inside the same container (no capabilities): refused by the ACL.
            other = exec_in(name, "cat", path, user="4242:4242")
            assert other.returncode != 0 and "ermission denied" in other.stderr, (service, path, other.stdout)
            assert mount["RW"] is False, (service, path)
            checked += 1
    assert checked >= 5


def reach(service: str, port: int) -> str:
    """Try a TCP connection from the demo platform's api-gateway (app network only)."""
    probe = ("import socket,sys\n"
             f"try:\n    socket.create_connection(({service!r}, {port}), timeout=3)\n    print('reachable')\n"
             "except OSError as e:\n    print('unreachable', e)\n")
    return platform("exec", "-T", "api-gateway", "python3", "-c", probe).stdout.strip()


def test_the_app_network_reaches_ingest_ports_only(demo_platform, stack_values):
    on = {"core": True, **stack_values["layers"]}
    for receiver in ("jaeger", "zipkin"):
        on[f"{receiver}_receiver"] = on["tracing"] and stack_values["jaeger"]["receivers"][receiver]
    rows = [row for part, rows in APP_NETWORK_VIEW.items() if on[part] for row in rows]
    # The probe itself works: the platform's own database on the same network answers.
    control = reach("postgres", 5432)
    assert control.startswith("reachable"), f"the probe does not work from api-gateway: {control!r}"
    wrong = []
    for service, port, open_ in rows:
        got = reach(service, port)
        assert got.startswith(("reachable", "unreachable")), f"{service}:{port}: the probe answered {got!r}"
        if got.startswith("reachable") != open_:
            wrong.append(f"{service}:{port}: {got} (expected {'reachable' if open_ else 'unreachable'})")
    assert not wrong, wrong


def test_the_stack_network_still_reaches_them(demo_platform):
    """The other side: on the stack's own network (the sink joins it) each service answers
    on its <service>.stack alias, so the test above cannot pass on dead services."""
    probe = ("import urllib.request\n"
             "for url in ['http://prometheus.stack:9090/-/ready', 'http://redis-exporter.stack:9121/health',\n"
             "            'http://postgres-exporter.stack:9187/metrics', 'http://nginx-exporter.stack:9113/metrics']:\n"
             "    print(url, urllib.request.urlopen(url, timeout=5).status)\n")
    out = platform("exec", "-T", "sink", "python3", "-c", probe).stdout
    assert out.count(" 200") == 4, out


FAKE_REDIS = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 16379))
s.listen()
s.settimeout(8)
print("listening", flush=True)
try:
    while True:
        c, _ = s.accept()
        c.settimeout(3)
        try:
            print("received", repr(c.recv(65536)), flush=True)
        except OSError:
            print("received nothing", flush=True)
        c.close()
except socket.timeout:
    print("done", flush=True)
"""


def test_a_foreign_scrape_target_gets_no_password(demo_platform, prometheus):
    """redis_exporter's /scrape?target= would AUTH to any host with a global password; here
    the endpoint is off and the password map names the configured Redis only."""
    password = read_env(ROOT / ".env")["REDIS_PASSWORD"]
    assert password, "tests/platform/env.sh sets a Redis password"
    # The configured Redis gets it: the exporter is logged in.
    wait_for("redis_up 1 with the password", lambda: [r for r in prometheus.query("redis_up") if r["value"][1] == "1"],
             timeout=60, services=("redis-exporter",))

    listener = subprocess.Popen(
        ["docker", "compose", "--env-file", str(ROOT / ".env"), "-f", str(ROOT / "tests/platform/compose.yml"),
         "exec", "-T", "api-gateway", "python3", "-c", FAKE_REDIS],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in listener.stdout:
            lines.append(line)
            if line.startswith("listening"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(20), "".join(lines)
    ask = ("import urllib.request, urllib.error\n"
           "try:\n"
           "    r = urllib.request.urlopen('http://redis-exporter.stack:9121/scrape?target=redis://api-gateway:16379', timeout=10)\n"
           "    print(r.status)\n"
           "except urllib.error.HTTPError as e:\n"
           "    print(e.code)\n")
    status = platform("exec", "-T", "sink", "python3", "-c", ask).stdout.strip()
    listener.wait(timeout=30)
    reader.join(timeout=5)
    received = "".join(lines)
    assert password not in received, "the exporter sent the Redis password to a foreign host"
    assert "received" not in received, f"the exporter connected to a foreign target: {received}\n{logs('redis-exporter')}"
    assert status == "404", status
