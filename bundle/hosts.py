"""Beyond one host: the addresses the stack is reached at (directly or through the
edge), the host inventory (values `hosts`) as the targets files Prometheus reads through
file_sd, and the checks that keep a multi-host setup protected."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from . import layers
from .formats import comment, to_document
from .values import Source, dotted

# Where Prometheus finds the targets files (relative to prometheus.yml), and where the
# local CA's certificate is mounted (config/compose.overlay.yml) in each service that
# trusts it: Prometheus for the pull-mode exporters, and with web_tls on every client of
# Prometheus and Alertmanager.
TARGETS_DIR = "targets"
TRUST_MOUNT = "/etc/stack-trust"
LOOPBACK = "127.0.0.1"
# The services that serve TLS with a login when values web_tls is on, and the scrape
# jobs (bundle/layers.yaml) that reach them.
WEB_TLS_SERVICES = ("prometheus", "alertmanager", "alertmanager-2")
WEB_TLS_JOBS = WEB_TLS_SERVICES
# Those that reach them inside the stack (the health checks aside).
WEB_TLS_CLIENTS = ("prometheus", "alertmanager", "alertmanager-2", "grafana", "edge")

# Paths of each service behind the edge. Prometheus, Alertmanager, Grafana and Kibana
# get the prefix stripped (they are told their external URL); Jaeger serves under it.
EDGE_PATHS = {"prometheus": "/prometheus/", "alertmanager": "/alertmanager/", "grafana": "/grafana/",
              "kibana": "/kibana/", "jaeger": "/jaeger/"}


# Exporters an agent host may run besides node_exporter; in pull mode they would have to
# serve TLS and a login of their own, which the pull bundle gives node_exporter only.
AGENT_ONLY = ("cadvisor", "postgres", "redis", "nginx")


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def direct_address(values: dict) -> str:
    """Where the services' own ports are published: the bind address when it is
    loopback, else (only allowed with the edge) 127.0.0.1, so that on other interfaces
    only the edge and the services with their own TLS and login (web_tls) listen."""
    return values["bind_address"] if is_loopback(values["bind_address"]) else LOOPBACK


def web_address(values: dict) -> str:
    """Where Prometheus' and Alertmanager's ports are published: the bind address
    whatever it is when they serve TLS with a login (web_tls), else as the others."""
    return values["bind_address"] if values["web_tls"]["enabled"] else direct_address(values)


def direct_url(values: dict, service: str) -> str:
    """The URL of a service's own published port, from this host."""
    port = values["ports"]["jaeger_ui" if service == "jaeger" else service.replace("-", "_")]
    if values["web_tls"]["enabled"] and service in WEB_TLS_SERVICES:
        host = web_address(values)
        host = LOOPBACK if ipaddress.ip_address(host).is_unspecified else host
        return f"https://{host}:{port}/"
    return f"http://{direct_address(values)}:{port}/"


def direct_login(values: dict, env: dict[str, str]) -> tuple[str, str] | None:
    """The login Prometheus and Alertmanager ask for on their own ports (web_tls), from
    .env's values; None while they ask for none."""
    web = values["web_tls"]
    if not web["enabled"]:
        return None
    return web["user"], env.get(values["secrets"][web["password_secret"]]["env"], "")


def direct_trust(values: dict, env_file: Path) -> str | bool:
    """What a client on this host verifies their certificate with: the local CA's
    (bundle/pki.py, next to .env) with web_tls, else the system's."""
    return str(env_file.resolve().parent / "private" / "trust" / "ca.crt") if values["web_tls"]["enabled"] else True


def edge_base(values: dict) -> str:
    port = values["ports"]["edge"]
    return f"https://{values['edge']['hostname']}" + ("" if port == 443 else f":{port}")


def external_url(values: dict, service: str) -> str:
    """The URL people (and the links in alerts and notifications) reach a service at."""
    if values["layers"]["edge"]:
        return edge_base(values) + EDGE_PATHS[service]
    return direct_url(values, service)


def remote_write_url(values: dict) -> str:
    return edge_base(values) + EDGE_PATHS["prometheus"] + "api/v1/write"


def by_mode(values: dict, mode: str) -> dict[str, dict]:
    return {name: host for name, host in values["hosts"].items() if host["mode"] == mode}


def pull_jobs(values: dict) -> dict[str, list[str]]:
    """Scrape job of pull-mode hosts -> the exporters it covers: one job per exporter
    kind, present while at least one pull host runs that exporter."""
    kinds = sorted({e for host in by_mode(values, "pull").values() for e in host["exporters"]})
    return {f"{kind}-pull": [kind] for kind in kinds}


def targets_files(values: dict) -> dict[str, str]:
    """config/prometheus/targets/<job>.yml for the jobs that read targets from files:
    the exporters of pull-mode hosts and the blackbox probes. Prometheus re-reads them
    when they change: adding a host or a probe needs no restart and no reload."""
    header = ("Generated by render.py from values.yaml `{source}`. Do not edit: change values.yaml\n"
              "and run `make render`. Prometheus reads it through file_sd and notices changes.\n"
              "https://prometheus.io/docs/prometheus/latest/configuration/configuration/#file_sd_config")
    out = {}
    for job, kinds in pull_jobs(values).items():
        groups = [{"targets": [f"{host['address']}:{values['agent']['ports'][kind]}"],
                   "labels": {**host.get("labels", {}), "host": name}}
                  for name, host in by_mode(values, "pull").items() for kind in kinds if kind in host["exporters"]]
        out[f"{TARGETS_DIR}/{job}.yml"] = comment(header.format(source="hosts")) + "\n" + to_document(groups)
    if layers.is_on(values, "blackbox"):
        groups = [{"targets": [probe["url"]], "labels": {"probe": name}}
                  for name, probe in values["blackbox"]["probes"].items()]
        out[f"{TARGETS_DIR}/blackbox.yml"] = comment(header.format(source="blackbox.probes")) + "\n" + to_document(groups)
    return out


def problems(values: dict, source: Source) -> list[str]:
    """What a multi-host setup must not be allowed to do."""
    out = []

    def problem(path: tuple, text: str) -> None:
        out.append(f"{source.where(path)}: {dotted(path)}: {text}")

    edge = values["layers"]["edge"]
    if not is_loopback(values["bind_address"]) and not edge:
        problem(("bind_address",), f"{values['bind_address']} is not loopback: switch layers.edge on, so that only "
                                   "the edge (TLS and a login) listens there (and, with web_tls, Prometheus and "
                                   "Alertmanager with their own), or keep 127.0.0.1")
    tls = values["edge"]["tls"]
    if bool(tls["cert_file"]) != bool(tls["key_file"]):
        problem(("edge", "tls"), "cert_file and key_file go together: set both (your certificate) or neither "
                                 "(a generated one)")
    if tls["ca_file"] and not tls["cert_file"]:
        problem(("edge", "tls", "ca_file"), "only with your own cert_file; a generated certificate comes with "
                                            "its own CA")
    for name, host in values["hosts"].items():
        path = ("hosts", name)
        if host["mode"] == "agent" and not edge:
            problem(path + ("mode",), "an agent sends its samples through the edge: switch layers.edge on "
                                      "(or use mode: pull)")
        if host["mode"] == "pull":
            if "address" not in host:
                problem(path, "a pull-mode host needs `address`, where this Prometheus reaches its exporters")
            local = sorted(set(host["exporters"]) & set(AGENT_ONLY))
            if local:
                problem(path + ("exporters",), f"{', '.join(local)}: only in mode agent (the pull-mode bundle "
                                               "serves node_exporter with TLS and a login; these stay on the "
                                               "host's own network)")
        if name == values["host"]:
            problem(path, f"'{name}' is this host's own name (`host`); pick another")
    return out
