"""Beyond one host, rendered: what render.py refuses, the edge's addresses and
certificate, the host inventory as targets files, and the agent bundles of make agent.
Expectations come from README "Several hosts" and "Remote access"."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from bundle.secrets import read_env

pytestmark = pytest.mark.unit

EDGE = {"layers": {"edge": True}, "edge": {"hostname": "mon.example.test", "alt_names": ["10.1.2.3"]}}
AGENT_HOST = {"hosts": {"web-1": {"mode": "agent", "labels": {"role": "web"},
                                  "exporters": ["node", "cadvisor"]}}}
PULL_HOST = {"hosts": {"db-1": {"mode": "pull", "address": "db-1.example.test", "exporters": ["node"]}}}


def problems(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "warning" not in line]


@pytest.mark.parametrize("overlay, where, expected", [
    ({"bind_address": "0.0.0.0"}, "bind_address", "switch layers.edge on"),
    (AGENT_HOST, "hosts.web-1.mode", "through the edge"),
    ({"hosts": {"db-1": {"mode": "pull", "exporters": ["node"]}}}, "hosts.db-1", "needs `address`"),
    ({**EDGE, "hosts": {"db-1": {"mode": "pull", "address": "db-1", "exporters": ["cadvisor"]}}},
     "hosts.db-1.exporters", "only in mode agent"),
    ({**EDGE, "hosts": {"central": {"mode": "agent", "exporters": ["node"]}}}, "hosts.central", "this host's own"),
    ({**EDGE, "edge": {"tls": {"cert_file": "/etc/ssl/a.pem"}}}, "edge.tls", "go together"),
    ({"edge": {"tls": {"cert_file": "relative.pem", "key_file": "/k"}}}, "edge.tls.cert_file", "absolute path"),
])
def test_what_a_multi_host_setup_may_not_do_is_refused(run_render, overlay, where, expected):
    result = run_render(overlay)
    assert result.code == 1
    lines = problems(result)
    assert any(f": {where}: " in line and expected in line for line in lines), lines
    assert not result.output.exists()


def test_beyond_loopback_only_the_edge_listens_there(run_render):
    result = run_render(EDGE, {"bind_address": "0.0.0.0", "ports": {"edge": 8443}})
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["EDGE_ADDRESS"] == "0.0.0.0" and env["BIND_ADDRESS"] == "127.0.0.1"
    assert env["PROMETHEUS_EXTERNAL_URL"] == "https://mon.example.test:8443/prometheus/"
    assert env["ALERTMANAGER_EXTERNAL_URL"] == "https://mon.example.test:8443/alertmanager/"
    assert env["GRAFANA_ROOT_URL"] == "https://mon.example.test:8443/grafana/"
    kibana = result.yaml("kibana/kibana.yml")
    assert kibana["server.publicBaseUrl"] == "https://mon.example.test:8443/kibana"
    assert kibana["server.basePath"] == "/kibana" and kibana["server.rewriteBasePath"] is False
    assert result.yaml("jaeger/config.yml")["extensions"]["jaeger_query"]["base_path"] == "/jaeger"
    caddyfile = result.text("edge/Caddyfile")
    for path in ("/prometheus/*", "/alertmanager/*", "/grafana/*", "/kibana/*", "/jaeger/*"):
        assert path in caddyfile, path


def test_without_the_edge_links_name_the_direct_ports(run_render):
    result = run_render()
    env = read_env(result.output / "compose.env")
    assert env["PROMETHEUS_EXTERNAL_URL"] == "http://127.0.0.1:9090/"
    assert env["PROMETHEUS_REMOTE_WRITE_RECEIVER"] == "--no-web.enable-remote-write-receiver"
    assert "edge" not in env["COMPOSE_FILE"]
    assert not (result.env_file.parent / "private" / "edge").exists()


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_edge_certificate_is_made_outside_config_and_kept(run_render):
    result = run_render(EDGE)
    assert result.code == 0, result.stderr
    private = result.env_file.parent / "private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "edge" / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((private / "ca" / "ca.key").stat().st_mode) == 0o600
    cert, ca = certificate(private / "edge" / "server.crt"), certificate(private / "ca" / "ca.crt")
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in names] == ["mon.example.test", "10.1.2.3"]
    assert (private / "trust" / "ca.crt").read_bytes() == (private / "ca" / "ca.crt").read_bytes()
    assert not any("PRIVATE KEY" in p.read_text() for p in result.output.rglob("*") if p.is_file())
    before = (private / "edge" / "server.crt").read_bytes()
    assert run_render(EDGE).code == 0
    assert (private / "edge" / "server.crt").read_bytes() == before, "a fitting certificate is kept"
    assert run_render(EDGE, {"edge": {"alt_names": ["10.9.9.9"]}}).code == 0
    renewed = certificate(private / "edge" / "server.crt")
    assert renewed.serial_number != cert.serial_number
    renewed.verify_directly_issued_by(ca)


def test_your_own_certificate_is_mounted_and_nothing_is_generated(run_render):
    result = run_render(EDGE, {"edge": {"tls": {"cert_file": "/etc/ssl/m.pem", "key_file": "/etc/ssl/m.key"}}})
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert (env["EDGE_TLS_CERT_FILE"], env["EDGE_TLS_KEY_FILE"]) == ("/etc/ssl/m.pem", "/etc/ssl/m.key")
    assert not (result.env_file.parent / "private" / "edge").exists()


def test_pull_hosts_are_targets_files_and_a_new_one_changes_nothing_else(run_render, tmp_path):
    first = run_render(EDGE, PULL_HOST, output=tmp_path / "one")
    assert first.code == 0, first.stderr
    assert first.yaml("prometheus/targets/node-pull.yml") == [
        {"targets": ["db-1.example.test:9100"], "labels": {"host": "db-1"}}]
    job = next(j for j in first.yaml("prometheus/prometheus.yml")["scrape_configs"] if j["job_name"] == "node-pull")
    assert job["scheme"] == "https" and job["file_sd_configs"] == [{"files": ["targets/node-pull.yml"]}]
    assert job["basic_auth"]["password_file"] == "/run/secrets/pull_password"
    assert job["tls_config"]["ca_file"].startswith("/etc/stack-trust/")
    second = run_render(EDGE, PULL_HOST, {"hosts": {"db-2": {"mode": "pull", "address": "10.0.0.7",
                                                           "exporters": ["node"], "labels": {"role": "db"}}}},
                        output=tmp_path / "two")
    assert second.code == 0, second.stderr
    changed = sorted(str(p.relative_to(second.output)) for p in second.output.rglob("*")
                     if p.is_file() and p.read_bytes() != (first.output / p.relative_to(second.output)).read_bytes())
    # (and render.py's manifest of what it wrote)
    assert changed == [".render-manifest", "prometheus/targets/node-pull.yml"]
    assert second.yaml("prometheus/targets/node-pull.yml")[1] == {
        "targets": ["10.0.0.7:9100"], "labels": {"role": "db", "host": "db-2"}}


def test_two_alertmanagers_both_get_every_alert(run_render):
    result = run_render({"layers": {"alertmanager_ha": True}})
    assert result.code == 0, result.stderr
    alerting = result.yaml("prometheus/prometheus.yml")["alerting"]["alertmanagers"]
    assert alerting == [{"static_configs": [{"targets": ["alertmanager:9093", "alertmanager-2:9093"]}]}]
    env = read_env(result.output / "compose.env")
    assert env["ALERTMANAGER_CLUSTER_ADDRESS"] == "0.0.0.0:9094"
    assert {env["ALERTMANAGER_PEER_1"], env["ALERTMANAGER_PEER_2"]} == {"alertmanager:9094", "alertmanager-2:9094"}


def test_remote_write_keeps_only_what_keep_names(run_render):
    result = run_render({"prometheus": {"remote_write": [{
        "url": "https://lt.example.test/api/v1/write", "keep": "up|job:.+", "headers": {"X-Scope-OrgID": "t1"},
        "queue_config": {"max_shards": 4}}]}})
    assert result.code == 0, result.stderr
    entry = result.yaml("prometheus/prometheus.yml")["remote_write"][0]
    assert entry["write_relabel_configs"] == [{"source_labels": ["__name__"], "regex": "up|job:.+", "action": "keep"}]
    assert entry["headers"] == {"X-Scope-OrgID": "t1"} and entry["queue_config"] == {"max_shards": 4}
    assert "keep" not in entry


def test_a_long_term_datasource_is_provisioned_and_may_not_take_another_ones_name(run_render):
    store = {"uid": "longterm", "url": "https://lt.example.test",
             "basic_auth": {"username": "grafana", "password_secret": "grafana_admin_password"},
             "headers": {"X-Scope-OrgID": "a$b"}}
    result = run_render({"grafana": {"datasources": {"longterm": {"Long-term": store}}}})
    assert result.code == 0, result.stderr
    ds = next(d for d in result.yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]
              if d["name"] == "Long-term")
    assert (ds["type"], ds["url"], ds["basicAuthUser"]) == ("prometheus", "https://lt.example.test", "grafana")
    assert ds["jsonData"]["httpHeaderName1"] == "X-Scope-OrgID"
    # $$: Grafana expands $ in provisioning files.
    assert ds["secureJsonData"] == {"basicAuthPassword": "$__file{/run/secrets/grafana_admin_password}",
                                    "httpHeaderValue1": "a$$b"}
    clash = run_render({"grafana": {"datasources": {"longterm": {"Prometheus": {**store, "uid": "other"}}}}})
    assert clash.code == 1
    assert any(": grafana.datasources.longterm.Prometheus: 'Prometheus' is also the name of grafana.datasources."
               "prometheus" in line for line in clash.stderr.splitlines()), clash.stderr
