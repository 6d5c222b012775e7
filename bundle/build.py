"""Everything render.py writes under the output directory, as {relative path: text}."""

from __future__ import annotations

import jinja2

from . import alerts, compose, dashboards, elasticsearch, hosts, layers, notifications, templates
from .errors import InputError
from .formats import Unwritable
from .values import Source, dotted, key_paths


def image_ref(values: dict, service: str) -> str:
    images = values["images"]
    spec = images[service]
    return f"{images['registry']}{spec['repository']}:{spec['tag']}"


def holding(values: dict, value) -> list[tuple]:
    """The key paths of the values whose value is `value`."""
    out = []
    for path in key_paths(values):
        node = values
        for part in path:
            node = node[part]
        if not isinstance(node, (dict, list)) and type(node) is type(value) and node == value:
            out.append(path)
    return out


def remote_write(values: dict) -> list[dict]:
    """prometheus.remote_write as Prometheus reads it: `keep` becomes a write relabel
    rule that sends only the matching metric names, secrets become *_file paths."""
    out = []
    for entry in values["prometheus"]["remote_write"]:
        item = {key: value for key, value in entry.items() if key != "keep"}
        if "keep" in entry:
            item["write_relabel_configs"] = [{"source_labels": ["__name__"], "regex": entry["keep"],
                                              "action": "keep"}]
        out.append(item)
    return out


def files(values: dict, source: Source | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    env = templates.environment()
    on = layers.enabled(values)
    context = dict(
        values,
        image=lambda service: image_ref(values, service),
        compose_files=[layer.compose for layer in on] + (["compose/rootless.yml"] if values["rootless"] else [])
        + ["config/compose.overlay.yml"],
        scrape_jobs=layers.scrape_jobs(values),
        alertmanagers=layers.alertmanagers(values),
        remote_write=remote_write(values),
        pull_jobs=hosts.pull_jobs(values),
        targets_dir=hosts.TARGETS_DIR,
        trust_mount=hosts.TRUST_MOUNT,
        web_tls_jobs=hosts.WEB_TLS_JOBS,
        web_address=hosts.web_address(values),
        external_url=lambda service: hosts.external_url(values, service),
        direct_address=hosts.direct_address(values),
        agent_hosts=hosts.by_mode(values, "agent"),
        edge_paths=hosts.EDGE_PATHS,
        with_host=lambda job: {"host": values["host"], **job.get("labels", {})},
        alertmanager_receivers=notifications.receivers(values),
        es_roles=elasticsearch.roles(values),
        es_users=elasticsearch.users(values),
        alertmanager_route=notifications.route(values),
    )
    for name in templates.names(values):
        header = templates.HEADER.format(template=name)
        try:
            text = env.get_template(name).render(context, header=header)
        except Unwritable as exc:
            output = "config/" + name.removesuffix(".j2")
            paths = holding(values, exc.value)
            if source is None or not paths:
                raise InputError([f"templates/{name}: cannot render: {exc.reason} (got {exc.value!r})"]) from None
            raise InputError([f"{source.where(path)}: {dotted(path)}: cannot be written to {output}: {exc.reason}"
                              for path in paths]) from None
        except (jinja2.TemplateError, ValueError) as exc:
            raise InputError([f"templates/{name}: cannot render: {exc}"]) from None
        out[name.removesuffix(".j2")] = text
    for name, text in alerts.rule_files(values).items():
        out[f"prometheus/rules/{name}"] = text
    out["prometheus/rules/custom.yml"] = alerts.custom_rule_file(values)
    for name, text in hosts.targets_files(values).items():
        out[f"prometheus/{name}"] = text
    if layers.is_on(values, "dashboards"):
        out.update(dashboards.files(values))
    out["compose.overlay.yml"] = compose.overlay(values)
    return dict(sorted(out.items()))
