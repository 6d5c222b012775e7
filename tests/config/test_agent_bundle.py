"""make agent: the bundles of remote hosts, checked with the real promtool (the agent's
configuration with --agent, the pull-mode exporter's web configuration). Expectations
come from README "Several hosts"."""

from __future__ import annotations

import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import bcrypt
import pytest
import yaml
from cryptography import x509

from bundle.secrets import read_env

pytestmark = pytest.mark.config

ROOT = Path(__file__).resolve().parents[2]
EDGE = {"layers": {"edge": True}, "edge": {"hostname": "mon.example.test"}}
AGENT_HOST = {"hosts": {"web-1": {"mode": "agent", "labels": {"role": "web", "team": "a$HOME"},
                                  "exporters": ["node", "cadvisor"]}}}
PULL_HOST = {"hosts": {"db-1": {"mode": "pull", "address": "db-1.example.test", "exporters": ["node"]}}}


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def make_agent(result, host: str, *overlays: dict) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "bundle.agent", "--env-file", str(result.env_file)]
    for i, overlay in enumerate(overlays):
        path = result.env_file.parent / f"agent-overlay-{i}.yaml"
        path.write_text(yaml.safe_dump(overlay))
        args += ["--values", str(path)]
    return subprocess.run([*args, host], cwd=ROOT, capture_output=True, text=True)


def test_an_agent_bundle_sends_through_the_edge_with_its_login(run_render):
    result = run_render(EDGE, AGENT_HOST)
    assert result.code == 0, result.stderr
    made = make_agent(result, "web-1", EDGE, AGENT_HOST)
    assert made.returncode == 0, made.stderr
    bundle = result.env_file.parent / "private" / "agents" / "web-1"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert stat.S_IMODE((bundle / ".env").stat().st_mode) == 0o600
    password = read_env(result.env_file)["EDGE_AGENT_PASSWORD"]
    assert read_env(bundle / ".env") == {"EDGE_AGENT_PASSWORD": password}
    config = yaml.safe_load((bundle / "prometheus" / "prometheus.yml").read_text())
    assert config["remote_write"][0]["url"] == "https://mon.example.test/prometheus/api/v1/write"
    assert config["remote_write"][0]["basic_auth"] == {"username": "agent",
                                                       "password_file": "/run/secrets/edge_agent_password"}
    # $ is doubled: Prometheus expands environment variables in external labels.
    assert config["global"]["external_labels"] == {"cluster": "platform", "environment": "production",
                                                   "role": "web", "team": "a$$HOME", "host": "web-1"}
    jobs = {j["job_name"]: j["static_configs"][0] for j in config["scrape_configs"]}
    assert set(jobs) == {"node", "cadvisor", "prometheus-agent"}
    assert all(job["labels"]["instance"] == "web-1" for job in jobs.values())
    assert (bundle / "prometheus" / "ca.crt").read_bytes() == (
        result.env_file.parent / "private" / "trust" / "ca.crt").read_bytes()
    compose = yaml.safe_load((bundle / "compose.yml").read_text())
    assert set(compose["services"]) == {"prometheus-agent", "node-exporter", "cadvisor"}
    # cAdvisor (root, reading the engine's state) keeps Docker's default set but raw sockets.
    assert {name: s["cap_drop"] for name, s in compose["services"].items()} == {
        "prometheus-agent": ["ALL"], "node-exporter": ["ALL"], "cadvisor": ["NET_RAW"]}
    assert all("ports" not in service for service in compose["services"].values()), "nothing listens outside"
    assert "--agent" in compose["services"]["prometheus-agent"]["command"]
    assert password not in (bundle / "compose.yml").read_text()
    with tarfile.open(bundle.parent / "web-1.tar.gz") as tar:
        assert "web-1/.env" in tar.getnames() and "web-1/prometheus/prometheus.yml" in tar.getnames()


def test_a_pull_bundle_serves_tls_with_the_hash_of_the_pull_login(run_render, tool):
    result = run_render(EDGE, PULL_HOST)
    made = make_agent(result, "db-1", EDGE, PULL_HOST)
    assert made.returncode == 0, made.stderr
    bundle = result.env_file.parent / "private" / "agents" / "db-1"
    web = yaml.safe_load((bundle / "node-exporter" / "web.yml").read_text())
    hashed = web["basic_auth_users"]["prometheus"]
    assert bcrypt.checkpw(read_env(result.env_file)["PULL_PASSWORD"].encode(), hashed.encode())
    cert = certificate(bundle / "node-exporter" / "tls" / "server.crt")
    cert.verify_directly_issued_by(certificate(result.env_file.parent / "private" / "ca" / "ca.crt"))
    assert "db-1.example.test" in [str(n.value) for n in
                                   cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value]
    checked = bundle / "web-check.yml"
    checked.write_text((bundle / "node-exporter" / "web.yml").read_text().replace(
        "/etc/node_exporter/", str(bundle / "node-exporter") + "/"))
    check = subprocess.run([tool("promtool"), "check", "web-config", str(checked)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    compose = yaml.safe_load((bundle / "compose.yml").read_text())
    assert set(compose["services"]) == {"node-exporter"}
    assert "--web.config.file=/etc/node_exporter/web.yml" in compose["services"]["node-exporter"]["command"]
    again = make_agent(result, "db-1", EDGE, PULL_HOST)
    assert again.returncode == 0
    assert yaml.safe_load((bundle / "node-exporter" / "web.yml").read_text())["basic_auth_users"]["prometheus"] == hashed


def test_make_agent_names_an_unknown_host(run_render):
    result = run_render(EDGE, AGENT_HOST)
    made = make_agent(result, "nowhere", EDGE, AGENT_HOST)
    assert made.returncode == 1
    assert made.stderr.strip() == "hosts.nowhere: no such host in the values (defined: web-1)"


def test_an_agent_may_run_the_platforms_exporters_too(run_render):
    """exporters: postgres, redis, nginx on an agent host, set up as under `exporters`,
    on the host's app network; `docker compose config` accepts the bundle."""
    host = {"hosts": {"web-2": {"mode": "agent", "exporters": ["node", "postgres", "redis", "nginx"]}}}
    result = run_render(EDGE, host)
    assert result.code == 0, result.stderr
    made = make_agent(result, "web-2", EDGE, host)
    assert made.returncode == 0, made.stderr
    bundle = result.env_file.parent / "private" / "agents" / "web-2"
    checked = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=bundle,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    model = yaml.safe_load(checked.stdout)
    assert set(model["services"]) == {"prometheus-agent", "node-exporter", "postgres-exporter", "redis-exporter",
                                      "nginx-exporter"}
    # README "Security defaults": no capability anywhere (NET_RAW at least).
    assert {name: s["cap_drop"] for name, s in model["services"].items()} == dict.fromkeys(model["services"], ["ALL"])
    assert model["networks"]["app"]["name"] == "platform"
    assert [s["source"] for s in model["services"]["postgres-exporter"]["secrets"]] == ["postgres_exporter_password"]
    jobs = {j["job_name"]: j["static_configs"][0]["labels"]
            for j in yaml.safe_load((bundle / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs["postgres"] == {"service": "postgres", "instance": "web-2"}
    assert jobs["nginx"]["service"] == "nginx" and jobs["redis"]["service"] == "redis"


@pytest.mark.parametrize("mode, host", [("agent", AGENT_HOST), ("pull", PULL_HOST)])
def test_node_exporter_runs_in_the_hosts_network_namespace_as_nobody(run_render, mode, host):
    """README "Several hosts" (as upstream runs it, and as the central stack does): the
    host's network namespace, so its network collectors describe the host; in mode agent
    listening on the Docker bridge's gateway only, in mode pull on ports.node with TLS;
    nobody, no capability, read-only, the host's / read-only with rslave propagation."""
    name = next(iter(host["hosts"]))
    result = run_render(EDGE, host)
    made = make_agent(result, name, EDGE, host)
    assert made.returncode == 0, made.stderr
    bundle = result.env_file.parent / "private" / "agents" / name
    checked = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=bundle,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    services = yaml.safe_load(checked.stdout)["services"]
    node = services["node-exporter"]
    assert node["network_mode"] == "host" and "ports" not in node
    assert (node["user"], node["cap_drop"], node["read_only"], node["pid"]) == ("65534:65534", ["ALL"], True, "host")
    root = next(v for v in node["volumes"] if v["target"] == "/host")
    assert (root["source"], root["read_only"], root["bind"]["propagation"]) == ("/", True, "rslave")
    listen = [arg for arg in node["command"] if arg.startswith("--web.listen-address=")]
    if mode == "agent":
        assert listen == ["--web.listen-address=host.docker.internal:9100"]
        assert node["extra_hosts"] == ["host.docker.internal=host-gateway"]
        assert services["prometheus-agent"]["extra_hosts"] == ["node-exporter=host-gateway"]
    else:
        assert listen == ["--web.listen-address=:9100"]


def test_without_the_hosts_network_node_exporter_keeps_a_namespace_of_its_own(run_render):
    """agent.host_network off (several simulated hosts on one engine): a pull host
    publishes ports.node instead."""
    off = {"agent": {"host_network": False}}
    result = run_render(EDGE, PULL_HOST, off)
    made = make_agent(result, "db-1", EDGE, PULL_HOST, off)
    assert made.returncode == 0, made.stderr
    node = yaml.safe_load((result.env_file.parent / "private" / "agents" / "db-1" / "compose.yml").read_text())[
        "services"]["node-exporter"]
    assert "network_mode" not in node and node["ports"] == ["9100:9100"]
    assert not [arg for arg in node["command"] if arg.startswith("--web.listen-address=")]
