"""What a healthy stack looks like, from the values in use: the rendered configuration,
the jobs, rule groups, self-monitoring alerts, datasources and data stream it must have."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import yaml

from .. import alerts, build, hosts, layers
from .compare import seconds

# Grafana datasources provisioned only with their layer on
# (templates/grafana/provisioning/datasources/datasources.yml.j2); the others always are.
DATASOURCE_LAYER = {"elasticsearch": "logs", "jaeger": "tracing"}
# Jobs of the layer table (bundle/layers.yaml) the checks read metrics from.
NODE_JOB, LOGSTASH_JOB, JAEGER_JOB = "node", "logstash", "jaeger"


@dataclass
class Rule:
    name: str
    kind: str              # alerting or recording
    query: str
    duration: float
    labels: dict
    annotations: dict


@dataclass
class Group:
    file: str              # the rule file's name, e.g. bundle.yml
    name: str
    interval: float
    rules: list[Rule]


class Expected:
    def __init__(self, values: dict):
        self.values = values

    @cached_property
    def files(self) -> dict[str, str]:
        """Everything render.py writes for these values, by path under config/."""
        return build.files(self.values)

    def config(self, path: str) -> dict:
        return yaml.safe_load(self.files[path])

    @property
    def jobs(self) -> dict[str, dict]:
        """Every job Prometheus scrapes: those of the values and layers, then those that
        read their targets from files (pull-mode hosts, the blackbox probes)."""
        out = dict(layers.scrape_jobs(self.values))
        out.update({job: {} for job in hosts.pull_jobs(self.values)})
        if self.layer("blackbox") and self.values["blackbox"]["probes"]:
            out["blackbox"] = {}
        return out

    @property
    def alertmanagers(self) -> int:
        """How many Alertmanagers run (a cluster when more than one)."""
        return len(layers.alertmanagers(self.values))

    @property
    def allowed_down(self) -> dict[str, str]:
        return self.values["smoke"]["targets_may_be_down"]

    def layer(self, name: str) -> bool:
        return layers.is_on(self.values, name)

    @property
    def scrape_interval(self) -> float:
        """The longest scrape interval of any job: how stale the newest sample may be."""
        prom = self.values["prometheus"]
        return max([seconds(prom["scrape_interval"])] +
                   [seconds(job["scrape_interval"]) for job in self.jobs.values() if "scrape_interval" in job])

    @property
    def groups(self) -> list[Group]:
        default = seconds(self.values["prometheus"]["evaluation_interval"])
        out = []
        for path, text in self.files.items():
            if not re.fullmatch(r"prometheus/rules/[^/]+\.yml", path):
                continue
            for group in (yaml.safe_load(text) or {}).get("groups") or []:
                rules = [Rule(name=r.get("alert") or r.get("record"), kind="alerting" if "alert" in r else "recording",
                              query=r["expr"], duration=seconds(str(r.get("for", "0s"))), labels=r.get("labels", {}),
                              annotations=r.get("annotations", {})) for r in group["rules"]]
                interval = seconds(group["interval"]) if "interval" in group else default
                out.append(Group(file=path.rsplit("/", 1)[1], name=group["name"], interval=interval, rules=rules))
        return out

    @property
    def self_monitoring(self) -> set[str]:
        """The rendered alerts that watch the bundle itself."""
        groups = set(alerts.catalogue()["self_monitoring"])
        return {rule["alert"] for entry, rule in alerts.rendered(self.values, self.values["runbook_base_url"])
                if entry["group"] in groups}

    @property
    def storage_filling_threshold(self) -> float:
        """Percent of prometheus.retention.size at which PrometheusStorageFilling fires."""
        return float(alerts.settings(self.values)["PrometheusStorageFilling"]["threshold"])

    @property
    def datasources(self) -> dict[str, str]:
        """Grafana datasource key (its type) -> uid, for the enabled layers."""
        found = self.values["grafana"]["datasources"]
        out = {key: spec["uid"] for key, spec in found.items()
               if key != "longterm" and (key not in DATASOURCE_LAYER or self.layer(DATASOURCE_LAYER[key]))}
        # The long-term stores' datasources (by their name in Grafana), always provisioned.
        out.update({f"longterm {name}": spec["uid"] for name, spec in found["longterm"].items()})
        return out

    @property
    def logs_stream(self) -> str:
        spec = self.values["logstash"]["data_stream"]
        return f"logs-{spec['dataset']}-{spec['namespace']}"

    @property
    def logs_max_age(self) -> float:
        return seconds(self.values["smoke"]["logs_max_age"])

    def targets_of(self, job: str) -> list[str]:
        return list(self.jobs.get(job, {}).get("targets", []))

    @property
    def tsdb_volume(self) -> str:
        """The Compose volume of Prometheus' TSDB (compose/core.yml)."""
        return f"{self.values['project_name']}_prometheus-data"
