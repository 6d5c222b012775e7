"""Prometheus' and Alertmanager's own TLS and login (values web_tls), rendered.
Expectations come from README "Remote access" and Prometheus' web configuration
reference (https://prometheus.io/docs/prometheus/latest/configuration/https/)."""

from __future__ import annotations

import stat

import bcrypt
import pytest
import yaml
from cryptography import x509

from bundle.secrets import read_env

pytestmark = pytest.mark.unit

ON = {"web_tls": {"enabled": True}}
EVERYTHING = {"layers": {"edge": True, "alertmanager_ha": True, "dashboards": True}}
LOGIN = {"username": "admin", "password_file": "/run/secrets/web_password"}
CA = "/etc/stack-trust/ca.crt"


def secret_files(result) -> dict[str, list[str]]:
    """service -> the secret files the overlay gives it."""
    services = result.yaml("compose.overlay.yml")["services"]
    return {name: spec.get("secrets", []) for name, spec in services.items()}


def test_off_by_default_plain_http_and_no_login_anywhere(run_render):
    result = run_render(EVERYTHING)
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["WEB_SCHEME"] == "http" and env["WEB_ADDRESS"] == "127.0.0.1"
    assert env["PROMETHEUS_WEB_CONFIG_FILE"] == "/etc/prometheus/web.yml"
    assert env["ALERTMANAGER_WEB_CONFIG_FILE"] == "/etc/alertmanager/web.yml"
    # An empty web configuration: no TLS, no login; and promtool/amtool connect plainly.
    assert result.yaml("prometheus/web.yml") == {} and result.yaml("alertmanager/web.yml") == {}
    assert not any("web_password" in names or "web_config" in names for names in secret_files(result).values())
    assert not (result.env_file.parent / "private" / "web").exists()
    assert "https://prometheus" not in result.text("edge/Caddyfile")


def test_on_every_client_in_the_stack_uses_tls_and_the_login(run_render):
    result = run_render(EVERYTHING, ON)
    assert result.code == 0, result.stderr
    prometheus = result.yaml("prometheus/prometheus.yml")
    alerting = prometheus["alerting"]["alertmanagers"][0]
    assert (alerting["scheme"], alerting["tls_config"], alerting["basic_auth"]) == ("https", {"ca_file": CA}, LOGIN)
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for name in ("prometheus", "alertmanager", "alertmanager-2"):
        assert (jobs[name]["scheme"], jobs[name]["tls_config"], jobs[name]["basic_auth"]) == (
            "https", {"ca_file": CA}, LOGIN), name
    assert "scheme" not in jobs["node"] and "basic_auth" not in jobs["node"]
    for service in ("prometheus", "alertmanager"):
        assert result.yaml(f"{service}/web.yml") == {"tls_config": {"ca_file": CA}, "basic_auth": LOGIN}
    env = read_env(result.output / "compose.env")
    assert env["WEB_SCHEME"] == "https"
    assert env["PROMETHEUS_WEB_CONFIG_FILE"] == env["ALERTMANAGER_WEB_CONFIG_FILE"] == "/run/secrets/web_config"
    assert (env["WEB_USER"], env["WEB_PASSWORD_FILE"]) == ("admin", "/run/secrets/web_password")
    datasources = {d["type"]: d for d in result.yaml("grafana/provisioning/datasources/datasources.yml")["datasources"]}
    for kind, url in (("prometheus", "https://prometheus:9090"), ("alertmanager", "https://alertmanager:9093")):
        source = datasources[kind]
        assert source["url"] == url and source["basicAuth"] is True and source["basicAuthUser"] == "admin"
        assert source["jsonData"]["tlsAuthWithCACert"] is True
        assert source["secureJsonData"] == {"basicAuthPassword": "$__file{/run/secrets/web_password}",
                                            "tlsCACert": "$__file{" + CA + "}"}
    caddyfile = result.text("edge/Caddyfile")
    assert caddyfile.count("reverse_proxy https://prometheus.stack:9090 {") == 2
    assert "reverse_proxy https://alertmanager:9093 https://alertmanager-2:9093 {" in caddyfile
    assert f"tls_trust_pool file {CA}" in caddyfile and 'header_up Authorization "Basic {$WEB_AUTH}"' in caddyfile


def test_on_the_login_reaches_exactly_its_users(run_render):
    """The password: Prometheus and both Alertmanagers (their health checks, Prometheus'
    own requests), Grafana (datasources) and the edge (upstream). The hashed web
    configuration: the two servers only."""
    result = run_render(EVERYTHING, ON)
    assert result.code == 0, result.stderr
    files = secret_files(result)
    assert {s for s, names in files.items() if "web_password" in names} == {
        "prometheus", "alertmanager", "alertmanager-2", "grafana", "edge"}
    assert {s for s, names in files.items() if "web_config" in names} == {"prometheus", "alertmanager", "alertmanager-2"}
    services = result.yaml("compose.overlay.yml")["services"]
    for name in ("prometheus", "alertmanager", "alertmanager-2"):
        assert "../private/web:/etc/web-tls:ro${BIND_LABEL-}" in services[name]["volumes"], name
    for name in ("prometheus", "alertmanager", "alertmanager-2", "grafana", "edge"):
        assert "../private/trust:/etc/stack-trust:ro${BIND_LABEL-}" in services[name]["volumes"], name
    assert "../private/web:/etc/web-tls:ro${BIND_LABEL-}" not in services["grafana"].get("volumes", [])


def test_the_web_configuration_is_a_secret_with_a_hash_that_is_kept(run_render):
    result = run_render(ON)
    assert result.code == 0, result.stderr
    secrets_dir = result.env_file.parent / ".secrets"
    password = read_env(result.env_file)["WEB_PASSWORD"]
    assert len(password) >= 32
    written = (secrets_dir / "web_config").read_text()
    config = yaml.safe_load(written)
    assert config["tls_server_config"] == {"cert_file": "/etc/web-tls/server.crt", "key_file": "/etc/web-tls/server.key"}
    digest = config["basic_auth_users"]["admin"]
    assert digest.startswith("$2") and bcrypt.checkpw(password.encode(), digest.encode())
    assert password not in written
    assert not any(password in p.read_text() or "$2b$" in p.read_text() for p in result.output.rglob("*") if p.is_file())
    assert run_render(ON).code == 0
    assert (secrets_dir / "web_config").read_text() == written, "an unchanged password keeps its hash"
    env = result.env_file.read_text().replace(password, "another-password-of-40-characters-000000")
    result.env_file.write_text(env)
    assert run_render(ON).code == 0
    digest = yaml.safe_load((secrets_dir / "web_config").read_text())["basic_auth_users"]["admin"]
    assert bcrypt.checkpw(b"another-password-of-40-characters-000000", digest.encode())


def test_the_certificate_names_every_address_clients_use(run_render):
    result = run_render(ON, {"layers": {"edge": True}, "edge": {"hostname": "mon.example.test"},
                             "web_tls": {"alt_names": ["prom.example.test"]}, "bind_address": "10.1.2.3"})
    assert result.code == 0, result.stderr
    private = result.env_file.parent / "private"
    cert = x509.load_pem_x509_certificate((private / "web" / "server.crt").read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((private / "trust" / "ca.crt").read_bytes()))
    names = {str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value}
    assert names == {"localhost", "127.0.0.1", "prometheus", "prometheus.stack", "alertmanager", "alertmanager-2",
                     "mon.example.test", "10.1.2.3", "prom.example.test"}
    # Readable by the containers' own users (nobody) through the bind mount, not by this
    # host's other users: private/ itself stays 0700.
    assert stat.S_IMODE((private / "web").stat().st_mode) == 0o755
    assert stat.S_IMODE((private / "web" / "server.key").stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_beyond_loopback_prometheus_and_alertmanager_listen_there_next_to_the_edge(run_render):
    """bind_address beyond loopback still needs the edge; with web_tls, Prometheus and the
    Alertmanagers (their own TLS and login) publish there too, everything else stays on
    127.0.0.1."""
    refused = run_render(ON, {"bind_address": "0.0.0.0"})
    assert refused.code == 1 and "switch layers.edge on" in refused.stderr
    result = run_render(ON, EVERYTHING, {"bind_address": "0.0.0.0"})
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["WEB_ADDRESS"] == env["EDGE_ADDRESS"] == "0.0.0.0" and env["BIND_ADDRESS"] == "127.0.0.1"
    without = read_env(run_render(EVERYTHING, {"bind_address": "0.0.0.0"}).output / "compose.env")
    assert without["WEB_ADDRESS"] == without["BIND_ADDRESS"] == "127.0.0.1"


def test_without_the_edge_links_name_the_https_ports(run_render):
    """The links in alerts: https on the published port."""
    result = run_render(ON)
    assert result.code == 0, result.stderr
    env = read_env(result.output / "compose.env")
    assert env["PROMETHEUS_EXTERNAL_URL"] == "https://127.0.0.1:9090/"
    assert env["ALERTMANAGER_EXTERNAL_URL"] == "https://127.0.0.1:9093/"
