"""What reaches the stack from outside it: Logstash's inputs (fields the pipeline vouches
for, optional mutual TLS), APM Server's intake (TLS whenever it is published beyond this
host) and the exporters' connections to PostgreSQL and Redis (optional CA-checked TLS).
Logstash and APM Server cannot run here: their rendered configuration is checked against
the plugins' documented options."""

from __future__ import annotations

import re

import pytest
import yaml

from bundle.secrets import read_env

pytestmark = pytest.mark.unit

PIPELINE = "logstash/pipeline/logstash.conf"


def filter_block(conf: str) -> str:
    """The filter section without its comments."""
    block = conf[conf.index("\nfilter {"):conf.index("\noutput {")]
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


def test_deployment_labels_are_replaced_never_appended(run_render):
    """add_field appends to a field the sender already set (a forged labels.cluster would
    become an array holding it); replace overwrites. mutate docs: replace "Replace the value
    of a field with a new value, or add the field if it doesn't already exist"."""
    result = run_render({"cluster": "prod-eu", "environment": "production"})
    assert result.code == 0, result.stderr
    filters = filter_block(result.text(PIPELINE))
    assert "add_field" not in filters
    replace = re.search(r'replace => \{\s*"\[labels\]\[cluster\]" => "prod-eu"\s*"\[labels\]\[environment\]" => "production"\s*\}',
                        filters)
    assert replace, filters


def test_the_source_address_comes_from_the_connection(run_render):
    """ECS metadata of the inputs: tcp sets [@metadata][input][tcp][source][ip], beats
    [@metadata][input][beats][host][ip] (the plugins' "ECS metadata" tables); a
    [log][source][address] the sender wrote is replaced, or removed when neither is there."""
    filters = filter_block(run_render().text(PIPELINE))
    assert ('replace => { "[log][source][address]" => "%{[@metadata][input][tcp][source][ip]}" }' in filters)
    assert ('replace => { "[log][source][address]" => "%{[@metadata][input][beats][host][ip]}" }' in filters)
    assert 'remove_field => ["[log][source][address]"]' in filters
    assert 'remove_field => ["[tls][client][subject]"]' in filters


def test_events_cannot_pick_another_data_stream(run_render):
    output = run_render().text(PIPELINE).split("\noutput {")[1]
    assert 'data_stream_auto_routing => "false"' in output


def tls_dir(tmp_path, *names):
    directory = tmp_path / "tls"
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).write_text("-----BEGIN CERTIFICATE-----\n")
    return directory


def test_logstash_inputs_with_mutual_tls(run_render, tmp_path):
    directory = tls_dir(tmp_path, "server.crt", "server.key", "ca.crt")
    result = run_render({"logstash": {"tls": {"enabled": True, "directory": str(directory)}}})
    assert result.code == 0, result.stderr
    conf = result.text(PIPELINE)
    inputs = re.findall(r"\n  (tcp|beats) \{\n(.*?)\n  \}", conf.split("\nfilter {")[0], re.S)
    assert [kind for kind, _ in inputs] == ["tcp", "beats"]
    for kind, body in inputs:
        # Options of logstash-input-tcp 7 / logstash-input-beats 7 (server mode).
        assert 'ssl_enabled => true' in body, kind
        assert 'ssl_client_authentication => "required"' in body, kind
        assert 'ssl_certificate_authorities => ["/usr/share/logstash/config/tls/ca.crt"]' in body, kind
        assert 'ssl_certificate => "/usr/share/logstash/config/tls/server.crt"' in body, kind
        assert 'ssl_key => "/usr/share/logstash/config/tls/server.key"' in body, kind
    # The client's certificate subject, as the inputs report it, on every event.
    filters = filter_block(conf)
    assert '"%{[@metadata][input][tcp][ssl][subject]}"' in filters
    assert '"%{[@metadata][input][beats][tls][client][subject]}"' in filters
    overlay = result.yaml("compose.overlay.yml")["services"]["logstash"]
    assert overlay["volumes"] == [f"{directory}:/usr/share/logstash/config/tls:ro"]


def test_without_tls_nothing_is_mounted_and_no_ssl_option_is_set(run_render):
    result = run_render()
    assert "ssl_" not in result.text(PIPELINE)
    services = result.yaml("compose.overlay.yml")["services"]
    assert "volumes" not in services["logstash"] and "volumes" not in services["apm-server"]


def test_tls_files_that_are_missing_are_refused(run_render, tmp_path):
    directory = tls_dir(tmp_path, "server.crt")
    result = run_render({"logstash": {"tls": {"enabled": True, "directory": str(directory)}}})
    assert result.code == 1
    assert re.search(r":\d+: logstash\.tls\.directory: server\.key, ca\.crt missing in .*tls "
                     r"\(expected server\.crt, server\.key, ca\.crt\)", result.stderr), result.stderr


def test_apm_is_published_on_loopback_only_and_takes_tls(run_render, tmp_path):
    # Beyond loopback only the edge listens (README "Remote access"): APM Server's port
    # stays on 127.0.0.1, so agents never send its secret token in clear beyond this host.
    refused = run_render({"bind_address": "0.0.0.0"})
    assert refused.code == 1
    assert "bind_address: 0.0.0.0 is not loopback" in refused.stderr
    beyond = run_render({"bind_address": "0.0.0.0", "layers": {"edge": True}})
    assert beyond.code == 0, beyond.stderr
    assert read_env(beyond.output / "compose.env")["BIND_ADDRESS"] == "127.0.0.1"
    directory = tls_dir(tmp_path, "server.crt", "server.key")
    accepted = run_render({"apm": {"tls": {"enabled": True, "directory": str(directory)}}})
    assert accepted.code == 0, accepted.stderr
    # https://www.elastic.co/docs/solutions/observability/apm/apm-agent-tls-communication
    ssl = accepted.yaml("apm-server/apm-server.yml")["apm-server"]["ssl"]
    assert ssl == {"enabled": True, "certificate": "/usr/share/apm-server/tls/server.crt",
                   "key": "/usr/share/apm-server/tls/server.key"}
    assert read_env(accepted.output / "compose.env")["APM_SERVER_TLS"] == "true"
    overlay = accepted.yaml("compose.overlay.yml")["services"]["apm-server"]
    assert overlay["volumes"] == [f"{directory}:/usr/share/apm-server/tls:ro"]


def test_postgres_exporter_can_verify_the_server(run_render, tmp_path):
    """lib/pq: sslmode=verify-full checks the chain against sslrootcert and the host name."""
    ca = tmp_path / "pg-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    result = run_render({"exporters": {"postgres": {"sslmode": "verify-full", "ca_file": str(ca),
                                                    "address": "db.internal:5432"}}})
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["POSTGRES_EXPORTER_PARAMS"] == "sslmode=verify-full&sslrootcert=/etc/postgres-exporter/ca.crt"
    overlay = result.yaml("compose.overlay.yml")["services"]["postgres-exporter"]
    assert overlay["volumes"] == [f"{ca}:/etc/postgres-exporter/ca.crt:ro"]
    assert run_render({"exporters": {"postgres": {"ca_file": "no/such/ca.crt"}}}).code == 1


def test_redis_exporter_can_verify_a_tls_redis(run_render, tmp_path, root):
    ca = tmp_path / "redis-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    result = run_render({"exporters": {"redis": {"address": "rediss://cache.internal:6380", "ca_file": str(ca)}}})
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["REDIS_EXPORTER_ADDRESS"] == "rediss://cache.internal:6380"
    assert env["REDIS_EXPORTER_CA_FILE"] == "/etc/redis-exporter/ca.crt"
    core = yaml.safe_load((root / "compose/core.yml").read_text())["services"]["redis-exporter"]["command"]
    assert "--tls-ca-cert-file=${REDIS_EXPORTER_CA_FILE-}" in core
    assert result.yaml("compose.overlay.yml")["services"]["redis-exporter"]["volumes"] == [
        f"{ca}:/etc/redis-exporter/ca.crt:ro"]
