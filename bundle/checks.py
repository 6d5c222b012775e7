"""Checks the schema cannot express: cross-references between values, and what each
service accepts beyond the shape of a value (service_problems)."""

from __future__ import annotations

import difflib
import re
import sys
from typing import Iterator

from . import ROOT, alerts, compose, hosts, layers, schema
from .errors import InputError
from .secrets import secret_references
from .values import KeyPath, Source, dotted, printable


def route_receivers(route: dict, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    if "receiver" in route:
        yield path + ("receiver",), route["receiver"]
    for i, child in enumerate(route.get("routes", [])):
        yield from route_receivers(child, path + ("routes", i))


def mebibytes(size: str) -> int:
    """512m -> 512, 2g -> 2048 (the schema allows only these forms for heaps and limits)."""
    return int(size[:-1]) * (1024 if size[-1] == "g" else 1)


def semantic_problems(values: dict, source: Source) -> list[str]:
    problems = []
    am = values["alertmanager"]
    names = list(am["receivers"])
    for where, name in route_receivers(am["route"], ("alertmanager", "route")):
        if name not in names:
            hint = difflib.get_close_matches(name, names, n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(
                f"{source.where(where)}: {dotted(where)}: route names receiver '{name}', which is not "
                f"defined under alertmanager.receivers (defined: {', '.join(names)}){guess}"
            )

    for service in ("elasticsearch", "logstash"):
        heap, limit = values[service]["heap"], values["memory"][service]
        if mebibytes(heap) >= mebibytes(limit):
            where = (service, "heap")
            problems.append(f"{source.where(where)}: {dotted(where)}: a heap of {heap} does not fit in the "
                            f"container's memory.{service} of {limit}; expected less (about half)")

    for layer in layers.all_layers():
        for needed in layer.requires:
            if layers.is_on(values, layer.name) and not layers.is_on(values, needed):
                where = ("layers", layer.name)
                problems.append(f"{source.where(where)}: {dotted(where)}: the {layer.name} layer needs the "
                                f"{needed} layer; switch layers.{needed} on too")

    problems += smoke_problems(values, source)
    problems += hosts.problems(values, source)

    declared = sorted(values["secrets"])
    for where, name in secret_references(values):
        if name not in declared:
            hint = difflib.get_close_matches(name, declared, n=1)
            guess = f"; did you mean '{hint[0]}'?" if hint else ""
            problems.append(
                f"{source.where(where)}: {dotted(where)}: secret '{name}' is not declared under secrets{guess}"
            )
    problems += disk_stages(values, source)
    return problems


def disk_stages(values: dict, source: Source) -> list[str]:
    """DiskSpaceLow is the early warning before DatabaseDiskFull (docs/alerting.md): both
    read percent free, so the warning's threshold must be the higher one."""
    every = alerts.settings(values)
    warning, critical = every["DiskSpaceLow"], every["DatabaseDiskFull"]
    if not (warning["enabled"] and critical["enabled"]) or warning["threshold"] > critical["threshold"]:
        return []
    where = ("alerts", "DiskSpaceLow", "threshold")
    if where not in source.origin and ("alerts", "DatabaseDiskFull", "threshold") in source.origin:
        where = ("alerts", "DatabaseDiskFull", "threshold")
    # A default neither values file sets comes from the catalogue.
    file = source.where(where) if where in source.origin else "bundle/alerts.yaml"
    return [f"{file}: {dotted(where)}: the early warning fires below {warning['threshold']}% free, "
            f"not above DatabaseDiskFull's {critical['threshold']}%; expected a higher percentage (the guide: 15 and 10)"]


# The files each TLS setting needs (values logstash.tls, apm.tls: a directory; the
# exporters' ca_file: a file).
TLS_FILES = {("logstash", "tls"): ("server.crt", "server.key", "ca.crt"),
             ("apm", "tls"): ("server.crt", "server.key")}


def tls_problems(values: dict, source: Source) -> list[str]:
    """TLS settings that name missing files."""
    problems = []
    layer_of = {"logstash": "logs", "apm": "apm"}
    for (section, key), names in TLS_FILES.items():
        tls = values[section][key]
        if not (tls["enabled"] and layers.is_on(values, layer_of[section])):
            continue
        where = (section, key, "directory")
        directory = ROOT / tls["directory"]
        missing = [name for name in names if not (directory / name).is_file()]
        if missing:
            problems.append(f"{source.where(where)}: {dotted(where)}: {', '.join(missing)} missing in "
                            f"{tls['directory']} (expected {', '.join(names)})")
    for exporter in ("postgres", "redis"):
        ca = values["exporters"][exporter]["ca_file"]
        where = ("exporters", exporter, "ca_file")
        if ca and not (ROOT / ca).is_file():
            problems.append(f"{source.where(where)}: {dotted(where)}: no such file: {ca}")
    # APM's secret token never crosses the network in clear: its port, like every port but
    # the edge's, is published on loopback only whatever bind_address (hosts.direct_address).
    return problems


def smoke_problems(values: dict, source: Source) -> list[str]:
    """`smoke`: the jobs allowed down exist, and the smoke-notify receiver exists and is
    reached by no route of the values (its synthetic alert must page nobody)."""
    problems = []
    jobs = list(layers.scrape_jobs(values))
    for job in values["smoke"]["targets_may_be_down"]:
        if job not in jobs:
            where = ("smoke", "targets_may_be_down", job)
            problems.append(f"{source.where(where)}: {dotted(where)}: '{job}' is not a scrape job of the values "
                            f"(jobs: {', '.join(jobs)})")
    name = values["smoke"]["notify_receiver"]
    where = ("smoke", "notify_receiver")
    am = values["alertmanager"]
    if name and name not in am["receivers"]:
        problems.append(f"{source.where(where)}: {dotted(where)}: receiver '{name}' is not defined under "
                        f"alertmanager.receivers (defined: {', '.join(am['receivers'])})")
    elif name:
        for path, used in route_receivers(am["route"], ("alertmanager", "route")):
            if used == name:
                problems.append(f"{source.where(where)}: {dotted(where)}: receiver '{name}' also gets real alerts "
                                f"({dotted(path)}); name a receiver used only for test notifications")
    return problems


def check_values(values: dict, source: Source) -> None:
    problems = schema.problems(values, source)
    if not problems:
        problems = sorted(semantic_problems(values, source) + service_problems(values, source)
                          + tls_problems(values, source), key=schema.by_position)
    if problems:
        raise InputError(problems)


# --------------------------------------------------------------------------- what services accept

# Logstash replaces ${NAME} and ${NAME:default} in its pipeline (from its keystore or the
# environment) and has no escape for them; the regex is Logstash's own.
# https://www.elastic.co/docs/reference/logstash/environment-variables
LOGSTASH_PLACEHOLDER = re.compile(r"\$\{[a-zA-Z_.][a-zA-Z0-9_.]*(:[^}]*)?\}")
# The values that reach config/logstash/pipeline/logstash.conf as strings.
LOGSTASH_VALUES = [("cluster",), ("environment",), ("logstash", "elasticsearch", "username")]
# APM Server (libbeat) expands ${...} in apm-server.yml; these values reach it.
# https://www.elastic.co/docs/solutions/observability/apm/apm-server/configure
APM_VALUES = [("apm", "elasticsearch", "username")]
# Logstash's own HTTP API inside its container (templates/logstash/config/logstash.yml.j2).
LOGSTASH_API_PORT = 9600
# Durations that Prometheus reads as "not set" when 0, using its default instead.
NONZERO_DURATIONS = [("prometheus", "scrape_interval"), ("prometheus", "scrape_timeout"),
                     ("prometheus", "evaluation_interval")]
HOST_PORT = re.compile(r"^\$\{(?:BIND|WEB)_ADDRESS:\?\}:\$\{([A-Z0-9_]+)_PORT:\?\}:")

# An address as Go's net/mail.ParseAddress takes it, in the common forms: local@domain or
# Name <local@domain> (dot-atom local part and domain). Alertmanager parses `from` and `to`
# only when it sends, so a bad one fails at the first notification.
# https://pkg.go.dev/net/mail#ParseAddress
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
ADDR_SPEC = rf"{ATEXT}(\.{ATEXT})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
ADDRESS = re.compile(rf'^\s*({ADDR_SPEC}|([A-Za-z0-9 ._-]+|"[^"\\]*")\s*<{ADDR_SPEC}>)\s*$')


def seconds(duration: str) -> float:
    """A duration of the schema (Prometheus' or Go's units) in seconds."""
    units = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001,
             "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    return sum(float(n) * units[u] for n, u in re.findall(r"([0-9.]+)(ms|us|µs|ns|[ywdhms])", duration))


def address_problem(value: str, many: bool) -> str | None:
    if "{{" in value:
        return None  # a template: Alertmanager fills it in when it sends
    parts = value.split(",") if many else [value]
    if all(ADDRESS.match(part) for part in parts):
        return None
    return ("expected email addresses like ops@example.com or Ops <ops@example.com>, separated by commas"
            if many else "expected one email address like alertmanager@example.com or "
                         "Alertmanager <alertmanager@example.com>")


def service_problems(values: dict, source: Source) -> list[str]:
    """What the schema lets through but a service would refuse, or read differently."""
    problems = []

    def refuse(path: KeyPath, text: str) -> None:
        problems.append(f"{source.where(path)}: {dotted(path)}: {text}")

    prom = values["prometheus"]
    for path in NONZERO_DURATIONS:
        if seconds(prom[path[1]]) == 0:
            refuse(path, "must be more than 0 (Prometheus reads 0 as not set and uses its default instead)")
    for name, job in prom["scrape_configs"].items():
        for key in ("scrape_interval", "scrape_timeout"):
            if key in job and seconds(job[key]) == 0:
                refuse(("prometheus", "scrape_configs", name, key),
                       "must be more than 0 (Prometheus reads 0 as not set and uses the global one)")
    retention = prom["retention"]
    no_size = re.fullmatch(r"0+[A-Z]*B", retention["size"]) is not None
    if seconds(retention["time"]) == 0 and no_size:
        refuse(("prometheus", "retention"), "time and size are both 0, which Prometheus reads as not set: "
                                            "it would keep 15d; set at least one limit")
    elif seconds(retention["time"]) == 0 or no_size:
        which = "time" if seconds(retention["time"]) == 0 else "size"
        path = ("prometheus", "retention", which)
        print(f"render.py: warning: {source.where(path)}: {dotted(path)}: 0 means no {which} limit to "
              f"Prometheus: only retention.{'size' if which == 'time' else 'time'} bounds the data", file=sys.stderr)
    for key in ("cluster", "environment"):
        if key in prom["external_labels"]:
            refuse(("prometheus", "external_labels", key),
                   f"set from the top-level `{key}` key; change that one instead")
    if seconds(values["jaeger"]["retention"]) == 0:
        refuse(("jaeger", "retention"), "must be more than 0")

    am = values["alertmanager"]
    why = address_problem(am["smtp"]["from"], many=False)
    if why:
        refuse(("alertmanager", "smtp", "from"), why)
    for name, receiver in am["receivers"].items():
        for i, email in enumerate(receiver.get("email_configs", [])):
            why = address_problem(email["to"], many=True)
            if why:
                refuse(("alertmanager", "receivers", name, "email_configs", i, "to"), why)

    if layers.is_on(values, "logs"):
        for path in LOGSTASH_VALUES:
            value = lookup(values, path)
            found = LOGSTASH_PLACEHOLDER.search(value)
            if found:
                refuse(path, f"holds {printable(found.group(0))}, which Logstash would replace with that variable "
                             f"(a password, say) in every log event, and Logstash has no escape for it; "
                             f"write it without ${{...}}")
    if layers.is_on(values, "apm"):
        for path in APM_VALUES:
            value = lookup(values, path)
            if "${" in value:
                refuse(path, "holds ${, which APM Server would expand as a variable in apm-server.yml; "
                             "write it without ${")
    if layers.is_on(values, "logs"):
        listeners = {key: values["logstash"][key]["port"] for key in ("tcp_json", "beats")}
        if listeners["tcp_json"] == listeners["beats"]:
            refuse(("logstash", "beats", "port"), f"{listeners['beats']} is also logstash.tcp_json.port; "
                                                  f"Logstash's two inputs need two ports")
        for key, port in listeners.items():
            if port == LOGSTASH_API_PORT:
                refuse(("logstash", key, "port"), f"{port} is Logstash's own API port in its container; "
                                                  f"choose another")

    published: dict[int, KeyPath] = {}
    for path in published_ports(values):
        port = lookup(values, path)
        if port in published and {path[0], published[port][0]} == {"logstash"}:
            continue  # two inputs on one port: reported above
        if port in published:
            refuse(path, f"{port} is also the host port of {dotted(published[port])} "
                         f"({source.where(published[port])}); each published port needs its own")
        else:
            published[port] = path

    if layers.is_on(values, "dashboards"):
        seen: dict[str, dict] = {"uid": {}, "name": {}}
        datasources = [(ds, spec) for ds, spec in values["grafana"]["datasources"].items() if ds != "longterm"]
        # The long-term stores' datasources are named by their keys.
        datasources += [(f"longterm.{name}", {"uid": spec["uid"], "name": name})
                        for name, spec in values["grafana"]["datasources"]["longterm"].items()]
        for ds, spec in datasources:
            if ds in ("elasticsearch", "jaeger") and not layers.is_on(values, "logs" if ds == "elasticsearch"
                                                                      else "tracing"):
                continue
            for key in ("uid", "name"):
                seen_key = spec[key] if key == "uid" else spec[key].casefold()
                if seen_key in seen[key]:
                    other = seen[key][seen_key]
                    # A long-term store's name is its key.
                    named_by_key = ds.startswith("longterm.") and key == "name"
                    path = ("grafana", "datasources", *ds.split(".", 1)) + (() if named_by_key else (key,))
                    refuse(path, f"{spec[key]!r} is also the {key} of grafana.datasources.{other}; "
                                 f"Grafana needs each datasource's {key} to be its own")
                else:
                    seen[key][seen_key] = ds
    return problems


def lookup(values: dict, path: KeyPath):
    for part in path:
        values = values[part]
    return values


def published_ports(values: dict) -> list[KeyPath]:
    """The values paths of every host port the enabled layers publish, read from their
    Compose files (`${BIND_ADDRESS}:${<NAME>_PORT}:...`; NAME is ports.<name>, or
    logstash.<input>.port for LOGSTASH_<INPUT>_PORT)."""
    out = []
    for layer in layers.enabled(values):
        for service in compose.definitions(layer.compose).values():
            for entry in service.get("ports", []):
                match = HOST_PORT.match(str(entry))
                if not match:
                    continue
                key = match.group(1).lower()
                if key in values["ports"]:
                    out.append(("ports", key))
                elif key.startswith("logstash_") and key[len("logstash_"):] in values["logstash"]:
                    out.append(("logstash", key[len("logstash_"):], "port"))
    return out
