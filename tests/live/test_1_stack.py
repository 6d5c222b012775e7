"""The running stack: containers healthy, every target up, every rule healthy, every
metric an alert reads actually emitted, nothing published beyond the bind address."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import requests
import testinfra
import yaml

from bundle.layers import scrape_jobs
from stack import containers, logs, platform, wait_for

pytestmark = pytest.mark.live

# Services the Compose files define; the stack must run each of them.
SERVICES = ["prometheus", "alertmanager", "node-exporter", "postgres-exporter", "redis-exporter", "nginx-exporter"]


@pytest.fixture(scope="module")
def local():
    return testinfra.get_host("local://")


@pytest.mark.parametrize("service", SERVICES)
def test_container_is_running_and_healthy(service, running, local):
    found = [c for c in containers() if c["Service"] == service]
    assert found, f"{service} is not part of the running stack"
    container = found[0]
    assert local.docker(container["Name"]).is_running, logs(service)
    inspect = local.check_output("docker inspect --format '{{json .State.Health}}' %s", container["Name"])
    if inspect != "null":  # images without a shell have no healthcheck (nginx-exporter)
        wait_for(f"{service} healthy", lambda: [c for c in containers() if c["Service"] == service][0]["Health"] == "healthy",
                 timeout=60, services=(service,))


def test_every_job_of_the_values_is_scraped(prometheus, stack_values):
    targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
    assert sorted({t["labels"]["job"] for t in targets}) == sorted(scrape_jobs(stack_values))


def test_every_target_is_up(prometheus, stack_values):
    def all_up():
        targets = prometheus.get("/api/v1/targets")["data"]["activeTargets"]
        down = [f"{t['labels']['job']} {t['scrapeUrl']}: {t['lastError']}" for t in targets if t["health"] != "up"]
        assert not down, down
        return True

    wait_for("every target up", all_up, timeout=60)


def rules(prometheus):
    return [(group, rule) for group in prometheus.get("/api/v1/rules")["data"]["groups"] for rule in group["rules"]]


def test_every_rule_group_is_evaluated_and_every_rule_healthy(prometheus):
    def healthy():
        found = rules(prometheus)
        assert found
        unevaluated = [g["name"] for g, _ in found if g["lastEvaluation"].startswith("0001")]
        broken = [f"{r['name']}: {r.get('lastError')}" for _, r in found if r["health"] != "ok"]
        assert not unevaluated and not broken, (unevaluated, broken)
        return True

    wait_for("every rule evaluated and healthy", healthy, timeout=60)


def test_the_rendered_rules_are_the_ones_loaded(prometheus, root):
    loaded = sorted(r["name"] for _, r in rules(prometheus))
    rendered = sorted(rule["alert"] for path in (root / "config/prometheus/rules").glob("*.yml")
                      for group in (yaml.safe_load(path.read_text())["groups"] or []) for rule in group["rules"])
    assert loaded == rendered


KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "offset", "inf", "nan", "start", "end"}


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression reads: identifiers that are not functions,
    keywords, label names (inside {} or the lists after by/on/...) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+\S+|\b\d[\w.]*", "", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        name, rest = match.group(0), text[match.end():].lstrip()
        if rest.startswith("(") or name in KEYWORDS:
            continue
        names.add(name)
    return names


def test_metric_name_extraction():
    expr = 'sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / on (job) max(up) > 5 and x_bucket offset 5m'
    assert metric_names(expr) == {"http_requests_total", "up", "x_bucket"}


def alert_expressions(prometheus):
    return {r["name"] + "/" + r["labels"].get("severity", ""): r["query"] for _, r in rules(prometheus) if r["type"] == "alerting"}


def test_every_alert_expression_runs(prometheus):
    for name, expr in alert_expressions(prometheus).items():
        prometheus.query(expr)  # raises on a query error


def test_every_metric_an_alert_reads_is_emitted(prometheus, traffic):
    wanted = sorted({m for expr in alert_expressions(prometheus).values() for m in metric_names(expr)})
    assert "http_requests_total" in wanted and "node_filesystem_avail_bytes" in wanted

    def all_present():
        missing = [m for m in wanted if not prometheus.query(f'count({{__name__="{m}"}})')]
        assert not missing, f"no series for {missing}"
        return True

    wait_for("every metric the alerts read", all_present, timeout=90, interval=3)


def test_host_filesystems_are_the_hosts(prometheus):
    """node_exporter sees the host's root filesystem (through --path.rootfs), not overlay."""
    result = prometheus.query('node_filesystem_size_bytes{mountpoint="/"}')
    assert result, "no root filesystem of the host"
    assert all(r["metric"]["fstype"] != "overlay" for r in result)


def host_interfaces() -> dict[str, list[str]]:
    """This host's interfaces (the tests run in its network namespace) and their addresses."""
    found = json.loads(subprocess.run(["ip", "-j", "address", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", [])] for link in found}


def test_host_network_metrics_are_the_hosts(prometheus):
    """node_exporter runs in the host's network namespace: node_network_* lists the host's
    interfaces (this test runs in that namespace), not a container's eth0 and lo."""
    # Interfaces that come and go with containers and networks (veth*, br-*) may differ
    # between the scrape and now.
    wanted = {name for name in host_interfaces() if not name.startswith(("veth", "br-"))}
    assert "lo" in wanted and len(wanted) > 1

    def listed():
        devices = {r["metric"]["device"] for r in prometheus.query('node_network_receive_bytes_total{job="node"}')}
        missing = wanted - devices
        assert not missing, f"the host's {sorted(missing)} are not in node_network_receive_bytes_total: {sorted(devices)}"
        return devices

    devices = wait_for("the host's interfaces in node_network_receive_bytes_total", listed, timeout=30)
    assert "docker0" in devices or any(d.startswith("br-") for d in devices), devices


def test_node_exporter_listens_only_on_a_bridge_address():
    """Nothing listens on 9100 on a non-loopback, non-bridge address of the host: the
    exporter is out of other machines' reach."""
    addresses = {address: name for name, found in host_interfaces().items() for address in found}
    listening = subprocess.run(["ss", "-Hltn", "sport = :9100"], capture_output=True, text=True, check=True).stdout
    local = [line.split()[3].rsplit(":", 1)[0].strip("[]") for line in listening.splitlines() if line.strip()]
    assert local, "nothing listens on 9100 in the host's network namespace"
    for address in local:
        assert address not in ("0.0.0.0", "*", "::"), f"node_exporter listens on every address ({address})"
        interface = addresses.get(address)
        assert interface, f"{address}:9100 is no address of this host's interfaces"
        bridge = (Path("/sys/class/net") / interface / "bridge").is_dir()
        assert interface == "lo" or bridge, f"9100 listens on {address}, an address of {interface}, not a bridge"


def test_published_ports_are_bound_to_the_bind_address_only(stack_values, running, local):
    bind = stack_values["bind_address"]
    published = [(c["Service"], p) for c in containers() for p in c["Publishers"] if p["PublishedPort"]]
    assert published
    for service, port in published:
        assert port["URL"] == bind, (service, port)
        assert local.socket(f"tcp://{bind}:{port['PublishedPort']}").is_listening, (service, port)
        if bind != "0.0.0.0":
            assert not local.socket(f"tcp://0.0.0.0:{port['PublishedPort']}").is_listening, (service, port)
            assert not local.socket(f"tcp://:::{port['PublishedPort']}").is_listening, (service, port)


def size_in_bytes(size: str) -> int:
    """Prometheus sizes are powers of 1024 whether written 10GB or 10GiB."""
    number, unit = re.fullmatch(r"(\d+)([KMGTPE]?)i?B", size).groups()
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def test_prometheus_keeps_data_as_the_values_say(prometheus, stack_values):
    flags = prometheus.get("/api/v1/status/flags")["data"]
    retention = stack_values["prometheus"]["retention"]
    assert flags["storage.tsdb.retention.time"] == retention["time"]
    assert size_in_bytes(flags["storage.tsdb.retention.size"]) == size_in_bytes(retention["size"])
    assert flags["storage.tsdb.path"] == "/prometheus"


def test_admin_and_lifecycle_endpoints_are_off(urls):
    """No HTTP call can reload, shut down or delete data: reload is a signal (make reload)."""
    for path in ("/-/reload", "/-/quit"):
        assert requests.post(urls["prometheus"] + path, timeout=10).status_code == 403, path
    snapshot = requests.post(urls["prometheus"] + "/api/v1/admin/tsdb/snapshot", timeout=10)
    assert "admin APIs disabled" in snapshot.text, snapshot.text


def test_alertmanager_is_not_reachable_from_the_app_network(demo_platform):
    """Silences and config are out of the monitored platform's reach."""
    probe = ("import socket\n"
             "try:\n    socket.create_connection(('alertmanager', 9093), timeout=3)\n    print('reachable')\n"
             "except OSError as e:\n    print('unreachable', e)\n")
    out = platform("exec", "-T", "api-gateway", "python3", "-c", probe).stdout
    assert out.startswith("unreachable"), out


def test_make_doctor_on_this_host(root, overlays):
    """make doctor runs every check here: one line per finding in its shape, and exit 1
    exactly when a blocker is left (CI accepts the old engine's by name)."""
    from bundle.doctor import CHECKS

    values = " ".join(str(path) for path in overlays)
    proc = subprocess.run(["make", "--no-print-directory", "doctor", f"VALUES={values}"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    findings = [line for line in proc.stdout.splitlines() if line.startswith("doctor: ")]
    shape = re.compile(r"doctor: (ok|warning|blocker|accepted): ([a-z0-9-]+): \S")
    assert findings and all(shape.match(line) for line in findings), proc.stdout + proc.stderr
    names = {shape.match(line).group(2) for line in findings}
    assert {"engine-access", "engine-version", "host-metrics", "config-readable", "ports"} <= names, names
    assert names <= set(CHECKS), names
    assert (proc.returncode == 1) == any(line.startswith("doctor: blocker:") for line in findings), proc.stdout

