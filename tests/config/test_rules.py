"""Every alerting rule, unit-tested with the real promtool (`promtool test rules`).

The promtool test files are generated at test time from the rules rendered with the
values in use, so a threshold or `for` changed in values.yaml changes the test with it.
For each alert:
  - fire:    a faulty series makes it fire at exactly (condition true) + `for`, with the
             expected labels and annotations (summary, description, runbook_url), and it
             is still only pending one evaluation before: `for` is honoured;
  - healthy: healthy series keep it quiet;
  - under:   series just on the quiet side of the threshold keep it quiet;
  - extra quiet cases where a selector must not match (an overlay filesystem, a
    read-only one, a Redis without maxmemory, an exporter for ServiceDown, ...).
The meta-test at the end fails for any rendered alert without a firing and a quiet case.
Rules from values `custom_rules` are the user's: their tests are promtool files kept
under tests/rules/ (see docs/alerting.md).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

import render
from alerting import KEPT_RULE_TESTS, alert_rules, render_to, rule_values

pytestmark = pytest.mark.config

STEP = 15  # seconds between input samples and between rule evaluations
TAIL = 600  # seconds of data after the firing point, for the quiet checks
# The bundle's own rule files; custom.yml (values custom_rules) has kept tests instead.
BUNDLE_RULE_FILES = ["platform.yml", "bundle.yml", "logs.yml"]


# --------------------------------------------------------------------------- helpers


def seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    return int(sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", str(duration))))


def humanize(v: float) -> str:
    """Prometheus' `humanize` template function (metric prefixes, 4 significant digits)."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return "%.4g" % v
    prefix = ""
    if abs(v) >= 1:
        for p in "kMGTPEZY":
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
    else:
        for p in "mun":
            if abs(v) >= 1:
                break
            prefix, v = p, v * 1000
    return "%.4g%s" % (v, prefix)


def humanize_duration(v: float) -> str:
    """Prometheus' `humanizeDuration` for values below a minute."""
    assert 0 < v < 60, v
    return "%.4gs" % v if v >= 1 else "%.4gms" % (v * 1000)


def value(v: float) -> str:
    """A sample value as Go prints `{{ $value }}`."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def num(v: float) -> str:
    """A threshold as Jinja writes it into the rules (Python's str of the YAML number)."""
    return str(v)


def over(t: float) -> float:
    """A percentage clearly above the threshold t."""
    return min(t * 2, (t + 100) / 2) if t > 0 else 50


def just_under(t: float) -> float:
    return t - min(1, t * 0.05)


def just_over(t: float) -> float:
    return t + min(1, (100 - t) * 0.05)


def gauge(v: float) -> tuple[str, float]:
    return ("gauge", v)


def counter(per_step: float) -> tuple[str, float]:
    return ("counter", per_step)


Series = dict[str, tuple[str, float]]  # selector -> (kind, value or increase per step)


@dataclass
class Case:
    """How to make one alert fire and stay quiet; levels are in the alert's own unit."""

    series: Callable[[dict, float], Series]
    fire: Callable[[dict], float]
    labels: Callable[[dict, float], dict]
    summary: Callable[[dict, float], str]
    description: Callable[[dict, float], str]
    healthy: float = 0
    under: Callable[[dict], float] | None = None  # None: the alert has no threshold
    true_from: int = 0  # seconds from the start until the expression holds (rates: STEP)
    quiet: dict[str, Callable[[dict], Series]] = field(default_factory=dict)


# Label sets of the example targets, as the values' scrape jobs label them.
API = 'job="api-gateway",service="api-gateway",instance="api-gateway:8000"'
NODE = 'job="node",service="host",instance="node-exporter:9100"'
REDIS = 'job="redis",service="redis",instance="redis-exporter:9121"'
PG = 'job="postgres",service="postgres",instance="postgres-exporter:9187"'
PROM = 'job="prometheus",service="prometheus",instance="localhost:9090"'
AM = 'job="alertmanager",service="alertmanager",instance="alertmanager:9093"'
CELERY = 'job="celery",service="celery",instance="celery-worker:9808"'
ES = 'job="elasticsearch",service="elasticsearch",instance="elasticsearch-exporter:9114"'
LS = 'job="logstash",service="logstash",instance="logstash-exporter:9198"'


def labels_of(selector: str, **extra) -> dict:
    out = dict(re.findall(r'(\w+)="([^"]*)"', selector))
    out.update(extra)
    return out


def root_fs(mountpoint: str, free_pct: float, fstype: str = "ext4", readonly: int = 0, device="/dev/sda1") -> Series:
    sel = f'{NODE},device="{device}",fstype="{fstype}",mountpoint="{mountpoint}"'
    return {
        f"node_filesystem_size_bytes{{{sel}}}": gauge(1e11),
        f"node_filesystem_avail_bytes{{{sel}}}": gauge(free_pct * 1e9),
        f"node_filesystem_readonly{{{sel}}}": gauge(readonly),
    }


def fs_labels(mountpoint: str, fstype: str = "ext4", device="/dev/sda1") -> dict:
    return labels_of(NODE, device=device, fstype=fstype, mountpoint=mountpoint)


def histogram(t: float, lower: float, upper: float, per_step: float) -> Series:
    """Requests whose latency all falls into the bucket (lower, upper]."""
    sel = f'{API},method="GET",endpoint="/api/items/{{item_id}}"'
    return {
        f'http_request_duration_seconds_bucket{{{sel},le="{lower:g}"}}': counter(0),
        f'http_request_duration_seconds_bucket{{{sel},le="{upper:g}"}}': counter(per_step),
        f'http_request_duration_seconds_bucket{{{sel},le="+Inf"}}': counter(per_step),
    }


def ratio_counters(errors: str, total: str, pct: float, scale: float = 100) -> Series:
    """Two counters: `errors` grows by pct% of what `total` grows (errors part of total)."""
    return {errors: counter(pct * scale / 100), total: counter(scale - pct * scale / 100)}


def pg_mount(a: dict) -> str:
    return a["mountpoint"]


# --------------------------------------------------------------------------- the cases

CASES: dict[str, Case] = {
    "HighErrorRate": Case(
        series=lambda a, pct: ratio_counters(
            f'http_requests_total{{{API},method="GET",endpoint="/api/items/{{item_id}}",status="503"}}',
            f'http_requests_total{{{API},method="GET",endpoint="/api/items/{{item_id}}",status="200"}}', pct),
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "api-gateway", "service": "api-gateway"},
        summary=lambda a, v: f"api-gateway: {humanize(v)}% of requests fail",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the requests to api-gateway (job api-gateway) answered 5xx over the last 5 minutes.",
        quiet={"4xx are not errors": lambda a: ratio_counters(
            f'http_requests_total{{{API},method="GET",endpoint="/nowhere",status="404"}}',
            f'http_requests_total{{{API},method="GET",endpoint="/nowhere",status="200"}}', 90)},
    ),
    "HighResponseTime": Case(
        series=lambda a, x: histogram(a["threshold"], a["threshold"] * x / 2, a["threshold"] * x, 10),
        # x scales the bucket: quantile 0.95 of (t*x/2, t*x] is t*x*0.975 (x=2: 1.95 t).
        fire=lambda a: 2, under=lambda a: 1, healthy=0.2, true_from=STEP,
        labels=lambda a, x: {"job": "api-gateway", "service": "api-gateway"},
        summary=lambda a, x: f"api-gateway: p95 latency {humanize_duration(a['threshold'] * x * 0.975)}",
        description=lambda a, x: f"The 95th percentile response time of api-gateway (job api-gateway) is above {num(a['threshold'])}s over the last 5 minutes.",
    ),
    "ServiceDown": Case(
        series=lambda a, up: {f"up{{{API}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(API),
        summary=lambda a, v: "api-gateway target api-gateway:8000 is down",
        description=lambda a, v: "Prometheus cannot scrape api-gateway:8000 of job api-gateway.",
        quiet={"an exporter down is ExporterDown's": lambda a: {f"up{{{REDIS}}}": gauge(0)}},
    ),
    "CeleryWorkerDown": Case(
        series=lambda a, up: {f"up{{{CELERY}}}": gauge(up),
                              'up{job="celery",service="celery",instance="celery-worker-2:9808"}': gauge(up)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "celery", "service": "celery"},
        summary=lambda a, v: "No Celery target of job celery answers",
        description=lambda a, v: "Every target of job celery (service celery) is down: tasks are not being run or not being watched.",
        quiet={"one worker of two still up": lambda a: {
            f"up{{{CELERY}}}": gauge(0), 'up{job="celery",service="celery",instance="celery-worker-2:9808"}': gauge(1)}},
    ),
    "CeleryWorkerOffline": Case(
        series=lambda a, up: {'flower_worker_online{job="flower",service="celery",instance="flower:5555",worker="celery@w1"}': gauge(up)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "flower", "service": "celery", "instance": "flower:5555", "worker": "celery@w1"},
        summary=lambda a, v: "Celery worker celery@w1 is offline",
        description=lambda a, v: "Flower has lost the heartbeat of Celery worker celery@w1; its queues are not being consumed by it.",
    ),
    "RedisDown": Case(
        series=lambda a, up: {f"redis_up{{{REDIS}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(REDIS),
        summary=lambda a, v: "Redis behind redis-exporter:9121 is down",
        description=lambda a, v: "redis_exporter redis-exporter:9121 cannot reach Redis: the Celery broker and caches are unavailable.",
    ),
    "RedisMemoryHigh": Case(
        series=lambda a, pct: {f"redis_memory_used_bytes{{{REDIS}}}": gauge(pct * 1e7),
                               f"redis_memory_max_bytes{{{REDIS}}}": gauge(1e9)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=10,
        labels=lambda a, v: labels_of(REDIS),
        summary=lambda a, v: f"Redis redis-exporter:9121 uses {humanize(v)}% of maxmemory",
        description=lambda a, v: f"Redis behind redis-exporter:9121 uses more than {num(a['threshold'])}% of its maxmemory; it will soon evict keys or refuse writes.",
        quiet={"no maxmemory set": lambda a: {f"redis_memory_used_bytes{{{REDIS}}}": gauge(1e9),
                                               f"redis_memory_max_bytes{{{REDIS}}}": gauge(0)}},
    ),
    "RedisRejectedConnections": Case(
        series=lambda a, n: {f"redis_rejected_connections_total{{{REDIS}}}": counter(n)},
        fire=lambda a: a["threshold"] + 1, under=lambda a: a["threshold"] / 20 * 0.9, true_from=STEP,
        labels=lambda a, v: labels_of(REDIS),
        summary=lambda a, v: "Redis redis-exporter:9121 rejects connections",
        description=lambda a, v: f"Redis behind redis-exporter:9121 refused connections over the last 5 minutes (more than {num(a['threshold'])}; maxclients reached).",
    ),
    "PostgresDown": Case(
        series=lambda a, up: {f"pg_up{{{PG}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(PG),
        summary=lambda a, v: "PostgreSQL behind postgres-exporter:9187 is down",
        description=lambda a, v: "postgres_exporter postgres-exporter:9187 cannot connect to PostgreSQL.",
    ),
    "PostgresHighConnections": Case(
        series=lambda a, pct: {f'pg_stat_database_numbackends{{{PG},datname="app"}}': gauge(pct * 1.5),
                               f'pg_stat_database_numbackends{{{PG},datname="postgres"}}': gauge(pct * 0.5),
                               f"pg_settings_max_connections{{{PG}}}": gauge(200)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=5,
        labels=lambda a, v: {"job": "postgres", "instance": "postgres-exporter:9187"},
        summary=lambda a, v: f"PostgreSQL postgres-exporter:9187 uses {humanize(v)}% of its connections",
        description=lambda a, v: f"More than {num(a['threshold'])}% of max_connections are in use on postgres-exporter:9187; new clients will soon be refused.",
    ),
    "PostgresDeadlocks": Case(
        series=lambda a, n: {f'pg_stat_database_deadlocks{{{PG},datname="app"}}': counter(n)},
        fire=lambda a: a["threshold"] + 1, under=lambda a: a["threshold"] / 20 * 0.9, true_from=STEP,
        labels=lambda a, v: labels_of(PG, datname="app"),
        summary=lambda a, v: "PostgreSQL database app has deadlocks",
        description=lambda a, v: f"More than {num(a['threshold'])} deadlocks in database app on postgres-exporter:9187 over the last 5 minutes.",
        quiet={"template databases": lambda a: {
            f'pg_stat_database_deadlocks{{{PG},datname="template1"}}': counter(a["threshold"] + 1)}},
    ),
    "DatabaseDiskFull": Case(
        series=lambda a, used: root_fs(a["mountpoint"], 100 - used),
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=40,
        labels=lambda a, v: fs_labels(a["mountpoint"]),
        summary=lambda a, v: f"Database filesystem {a['mountpoint']} is {humanize(v)}% full",
        description=lambda a, v: f"The filesystem holding the database ({a['mountpoint']} on node-exporter:9100) is more than {num(a['threshold'])}% full.",
        quiet={"a container's overlay at the same mountpoint": lambda a: root_fs(a["mountpoint"], 1, fstype="overlay", device="overlay"),
               "another mountpoint": lambda a: root_fs(a["mountpoint"].rstrip("/") + "/elsewhere", 1)},
    ),
    "CeleryQueueBackup": Case(
        series=lambda a, n: {f'celery_queue_length{{{API},queue="celery"}}': gauge(n)},
        fire=lambda a: a["threshold"] * 2 + 2, under=lambda a: a["threshold"], healthy=0,
        labels=lambda a, v: {"job": "api-gateway", "queue": "celery"},
        summary=lambda a, v: f"Celery queue celery holds {value(v)} tasks",
        description=lambda a, v: f"More than {num(a['threshold'])} tasks wait in queue celery; workers do not keep up.",
    ),
    "HighTaskFailureRate": Case(
        series=lambda a, pct: {
            f'celery_task_failures_total{{{CELERY},task_name="generate_document"}}': counter(pct),
            f'celery_task_duration_seconds_count{{{CELERY},task_name="generate_document"}}': counter(100)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "celery", "task_name": "generate_document"},
        summary=lambda a, v: f"Celery task generate_document fails {humanize(v)}% of the time",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the runs of generate_document failed over the last 5 minutes.",
    ),
    "NginxHighErrorRate": Case(
        series=lambda a, pct: ratio_counters(
            f'{a["metric"]}{{job="nginx-log",instance="nginx-log-exporter:4040",method="GET",status="502"}}',
            f'{a["metric"]}{{job="nginx-log",instance="nginx-log-exporter:4040",method="GET",status="200"}}', pct),
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "nginx-log", "instance": "nginx-log-exporter:4040"},
        summary=lambda a, v: f"nginx nginx-log-exporter:4040: {humanize(v)}% of responses are 5xx",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the responses nginx (nginx-log-exporter:4040) sent over the last 5 minutes were 5xx, including those the upstreams never saw.",
    ),
    "HighCPUUsage": Case(
        series=lambda a, busy: {f'node_cpu_seconds_total{{{NODE},cpu="{c}",mode="idle"}}': counter(STEP * (1 - busy / 100))
                                for c in (0, 1)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=20, true_from=STEP,
        labels=lambda a, v: {"job": "node", "instance": "node-exporter:9100"},
        summary=lambda a, v: f"CPU of node-exporter:9100 is {humanize(v)}% busy",
        description=lambda a, v: f"Averaged over all cores, the CPU of node-exporter:9100 has been more than {num(a['threshold'])}% busy.",
    ),
    "HighMemoryUsage": Case(
        series=lambda a, used: {f"node_memory_MemAvailable_bytes{{{NODE}}}": gauge((100 - used) * 1e8),
                                f"node_memory_MemTotal_bytes{{{NODE}}}": gauge(1e10)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=30,
        labels=lambda a, v: labels_of(NODE),
        summary=lambda a, v: f"Memory of node-exporter:9100 is {humanize(v)}% used",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the memory of node-exporter:9100 is in use (not available to new allocations).",
    ),
    "DiskSpaceLow": Case(
        series=lambda a, free: root_fs("/", free),
        fire=lambda a: a["threshold"] / 2, under=lambda a: just_over(a["threshold"]), healthy=60,
        labels=lambda a, v: fs_labels("/"),
        summary=lambda a, v: f"/ on node-exporter:9100 has {humanize(v)}% free",
        description=lambda a, v: f"Less than {num(a['threshold'])}% of / (/dev/sda1) on node-exporter:9100 is free.",
        quiet={"read-only filesystem": lambda a: root_fs("/", a["threshold"] / 2, readonly=1),
               "container overlay": lambda a: root_fs("/", a["threshold"] / 2, fstype="overlay", device="overlay"),
               "pseudo filesystem": lambda a: root_fs("/run", a["threshold"] / 2, fstype="tmpfs", device="tmpfs"),
               "docker's own mounts": lambda a: root_fs("/var/lib/docker/overlay2/x/merged", a["threshold"] / 2)},
    ),
    "DiskMetricsMissing": Case(
        # level 1: the database's mountpoint is reported; 0: only another one is.
        series=lambda a, present: {
            f'node_uname_info{{{NODE},nodename="host"}}': gauge(1),
            **root_fs(a["mountpoint"] if present else "/boot", 50)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "node", "instance": "node-exporter:9100"},
        summary=lambda a, v: f"node_exporter node-exporter:9100 reports no host filesystem at {a['mountpoint']}",
        description=lambda a, v: f"node_exporter node-exporter:9100 is up but reports no host filesystem mounted at {a['mountpoint']} (alerts.DatabaseDiskFull.mountpoint), so the disk alerts cannot fire.",
        quiet={"no node_exporter at all": lambda a: {f"up{{{API}}}": gauge(1)}},
    ),
    "TargetMissing": Case(
        series=None, fire=lambda a: 0, healthy=1,  # filled in below: needs the job list
        labels=lambda a, v: {"job": "api-gateway"},
        summary=lambda a, v: "Job api-gateway has no scrape target",
        description=lambda a, v: "Prometheus has no target for job api-gateway, so nothing about it is collected or alerted on. Is the job still in the loaded configuration?",
    ),
    "ExporterDown": Case(
        series=lambda a, up: {f"up{{{REDIS}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(REDIS),
        summary=lambda a, v: "Exporter redis-exporter:9121 (job redis) is down",
        description=lambda a, v: "Prometheus cannot scrape exporter redis-exporter:9121; the alerts that read job redis cannot fire until it is back.",
        quiet={"a service down is ServiceDown's": lambda a: {f"up{{{API}}}": gauge(0)}},
    ),
    "PrometheusRuleEvaluationFailures": Case(
        series=lambda a, n: {f'prometheus_rule_evaluation_failures_total{{{PROM},rule_group="/etc/prometheus/rules/platform.yml;platform"}}': counter(n)},
        fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM, rule_group="/etc/prometheus/rules/platform.yml;platform"),
        summary=lambda a, v: "Prometheus localhost:9090 fails to evaluate rules of group /etc/prometheus/rules/platform.yml;platform",
        description=lambda a, v: "Rule evaluations failed over the last 5 minutes in /etc/prometheus/rules/platform.yml;platform; the alerts of that group may not fire.",
    ),
    "PrometheusNotificationsFailing": Case(
        series=lambda a, pct: {
            f'prometheus_notifications_errors_total{{{PROM},alertmanager="http://alertmanager:9093/api/v2/alerts"}}': counter(pct),
            f'prometheus_notifications_sent_total{{{PROM},alertmanager="http://alertmanager:9093/api/v2/alerts"}}': counter(100)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: labels_of(PROM, alertmanager="http://alertmanager:9093/api/v2/alerts"),
        summary=lambda a, v: f"Prometheus localhost:9090 fails to send {humanize(v)}% of alerts",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the alerts Prometheus localhost:9090 sent to http://alertmanager:9093/api/v2/alerts over the last 5 minutes failed.",
    ),
    "PrometheusConfigReloadFailed": Case(
        series=lambda a, ok: {f"prometheus_config_last_reload_successful{{{PROM}}}": gauge(ok)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(PROM),
        summary=lambda a, v: "Prometheus localhost:9090 failed to reload its configuration",
        description=lambda a, v: "The last configuration reload of Prometheus localhost:9090 failed; it still runs the previous configuration.",
    ),
    "PrometheusTSDBCompactionsFailing": Case(
        series=lambda a, n: {f"prometheus_tsdb_compactions_failed_total{{{PROM}}}": counter(n)}, fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM),
        summary=lambda a, v: "Prometheus localhost:9090 fails to compact its TSDB",
        description=lambda a, v: "TSDB compactions failed on localhost:9090 over the last 3 hours; the disk may be full or a block corrupt.",
    ),
    "PrometheusTSDBWALProblems": Case(
        series=lambda a, n: {f"prometheus_tsdb_wal_corruptions_total{{{PROM}}}": counter(n),
                             f"prometheus_tsdb_wal_writes_failed_total{{{PROM}}}": counter(0),
                             f"prometheus_tsdb_wal_truncations_failed_total{{{PROM}}}": counter(n)},
        fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM),
        summary=lambda a, v: "Prometheus localhost:9090 has write-ahead log problems",
        description=lambda a, v: "The write-ahead log of localhost:9090 saw corruptions, failed writes or failed truncations recently; samples may be lost.",
    ),
    "PrometheusStorageFilling": Case(
        series=lambda a, pct: {f"prometheus_tsdb_storage_blocks_bytes{{{PROM}}}": gauge((pct - 1) * 1e8),
                               f"prometheus_tsdb_wal_storage_size_bytes{{{PROM}}}": gauge(1e8),
                               f"prometheus_tsdb_retention_limit_bytes{{{PROM}}}": gauge(1e10)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=20,
        labels=lambda a, v: labels_of(PROM),
        summary=lambda a, v: f"Prometheus localhost:9090 storage is at {humanize(v)}% of its size limit",
        description=lambda a, v: f"The TSDB of localhost:9090 uses more than {num(a['threshold'])}% of prometheus.retention.size; older data is dropped before prometheus.retention.time.",
        quiet={"no size limit": lambda a: {f"prometheus_tsdb_storage_blocks_bytes{{{PROM}}}": gauge(1e12),
                                           f"prometheus_tsdb_wal_storage_size_bytes{{{PROM}}}": gauge(1e8),
                                           f"prometheus_tsdb_retention_limit_bytes{{{PROM}}}": gauge(0)}},
    ),
    "AlertmanagerNotificationsFailing": Case(
        series=lambda a, pct: {
            f'alertmanager_notifications_failed_total{{{AM},integration="slack",reason="serverError"}}': counter(pct),
            f'alertmanager_notifications_failed_total{{{AM},integration="slack",reason="clientError"}}': counter(0),
            f'alertmanager_notifications_total{{{AM},integration="slack"}}': counter(100),
            f'alertmanager_notifications_total{{{AM},integration="email"}}': counter(100)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "alertmanager", "instance": "alertmanager:9093", "integration": "slack"},
        summary=lambda a, v: f"Alertmanager alertmanager:9093 fails to send {humanize(v)}% of slack notifications",
        description=lambda a, v: f"More than {num(a['threshold'])}% of the slack notifications of alertmanager:9093 failed over the last 5 minutes; check the receiver's URL, credentials and reachability.",
    ),
    "AlertmanagerConfigReloadFailed": Case(
        series=lambda a, ok: {f"alertmanager_config_last_reload_successful{{{AM}}}": gauge(ok)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(AM),
        summary=lambda a, v: "Alertmanager alertmanager:9093 failed to reload its configuration",
        description=lambda a, v: "The last configuration reload of Alertmanager alertmanager:9093 failed; it still routes with the previous configuration.",
    ),
    "ElasticsearchDown": Case(
        # level 1: health is reported; 0: the exporter answers but reads no health.
        series=lambda a, ok: {f"up{{{ES}}}": gauge(1), **({
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="{c}"}}': gauge(1 if c == "green" else 0)
            for c in ("green", "yellow", "red")} if ok else {})},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(ES),
        summary=lambda a, v: "Elasticsearch behind elasticsearch-exporter:9114 reports no cluster health",
        description=lambda a, v: "elasticsearch-exporter elasticsearch-exporter:9114 is up but cannot read the cluster health: Elasticsearch is down or refuses the exporter's login. Logs are not being stored.",
        quiet={"the exporter itself down is ExporterDown's": lambda a: {f"up{{{ES}}}": gauge(0)}},
    ),
    "ElasticsearchClusterRed": Case(
        series=lambda a, red: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="green"}}': gauge(0),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(1 - red),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="red"}}': gauge(red)},
        fire=lambda a: 1, healthy=0,
        labels=lambda a, v: labels_of(ES, es_cluster="logs", color="red"),
        summary=lambda a, v: "Elasticsearch cluster logs is red",
        description=lambda a, v: "At least one primary shard of Elasticsearch cluster logs is unassigned: some logs can be neither written nor searched.",
    ),
    "ElasticsearchClusterYellow": Case(
        series=lambda a, yellow: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="green"}}': gauge(1 - yellow),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(yellow),
            f"elasticsearch_cluster_health_number_of_data_nodes{{{ES},cluster=\"logs\"}}": gauge(3)},
        fire=lambda a: 1, healthy=0,
        labels=lambda a, v: labels_of(ES, es_cluster="logs", color="yellow"),
        summary=lambda a, v: "Elasticsearch cluster logs is yellow",
        description=lambda a, v: "Replica shards of Elasticsearch cluster logs are unassigned: one more node lost would lose data.",
        quiet={"a single node is always yellow": lambda a: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(1),
            f"elasticsearch_cluster_health_number_of_data_nodes{{{ES},cluster=\"logs\"}}": gauge(1)}},
    ),
    "LogstashDown": Case(
        series=lambda a, ok: {f"up{{{LS}}}": gauge(1), **(
            {f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(10)} if ok else {})},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(LS),
        summary=lambda a, v: "Logstash behind logstash-exporter:9198 reports no pipeline",
        description=lambda a, v: "logstash-exporter logstash-exporter:9198 is up but reads no pipeline from Logstash's monitoring API: Logstash is down or starting. Logs sent to it are refused.",
    ),
    "LogstashPipelineStalled": Case(
        # level: events in per step while none go out (0: nothing in, nothing queued).
        series=lambda a, n: {
            f'logstash_stats_pipeline_events_in{{{LS},pipeline="main"}}': counter(n),
            f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(0),
            f'logstash_stats_pipeline_queue_events_count{{{LS},pipeline="main"}}': gauge(0)},
        fire=lambda a: 10, healthy=0, true_from=STEP,
        labels=lambda a, v: {"job": "logstash", "instance": "logstash-exporter:9198", "pipeline": "main"},
        summary=lambda a, v: "Logstash pipeline main on logstash-exporter:9198 is stalled",
        description=lambda a, v: "Pipeline main on logstash-exporter:9198 has sent no event out for 5 minutes while events come in or wait in its queue.",
        quiet={"events flow out": lambda a: {
            f'logstash_stats_pipeline_events_in{{{LS},pipeline="main"}}': counter(10),
            f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(10),
            f'logstash_stats_pipeline_queue_events_count{{{LS},pipeline="main"}}': gauge(50)}},
    ),
    "LogstashDeadLetterQueueGrowing": Case(
        series=lambda a, n: {f'logstash_stats_pipeline_dead_letter_queue_size_in_bytes{{{LS},pipeline="main"}}': counter(n)},
        fire=lambda a: 1024, healthy=0, true_from=STEP,
        labels=lambda a, v: {**labels_of(LS), "pipeline": "main"},
        summary=lambda a, v: "Logstash pipeline main on logstash-exporter:9198 writes to its dead letter queue",
        description=lambda a, v: "The dead letter queue of pipeline main on logstash-exporter:9198 grew over the last 15 minutes: Elasticsearch rejects some events, which are kept there instead of being indexed.",
    ),
}


def target_missing_series(values: dict) -> Callable[[dict, float], Series]:
    jobs = [j["job_name"] for j in values["prometheus"]["scrape_configs"]
            if j.get("layer", "core") == "core" or values["layers"][j["layer"]]]

    def series(a: dict, present: float) -> Series:
        return {f'up{{job="{job}",instance="{job}:1"}}': gauge(1)
                for job in jobs if present or job != "api-gateway"}

    return series


# --------------------------------------------------------------------------- generation


def samples(kind: str, v: float, n: int) -> str:
    return f"{v:g}+0x{n}" if kind == "gauge" else f"0+{v:g}x{n}"


def input_series(series: Series, n: int) -> list[dict]:
    return [{"series": sel, "values": samples(kind, v, n)} for sel, (kind, v) in series.items()]


def duration(sec: int) -> str:
    return f"{sec}s"


def promtool_tests(name: str, case: Case, a: dict, runbook_base_url: str) -> list[dict]:
    """The promtool test groups of one alert: fire (with `for`), healthy, under, quiet."""
    hold = seconds(a["for"])
    fire_at = case.true_from + math.ceil(hold / STEP) * STEP
    n = (fire_at + TAIL) // STEP + 1
    level = case.fire(a)
    expected = {
        "exp_labels": {**{k: str(v) for k, v in case.labels(a, level).items()}, "severity": a["severity"]},
        "exp_annotations": {
            "summary": case.summary(a, level),
            "description": case.description(a, level),
            "runbook_url": f"{runbook_base_url}#{name.lower()}",
        },
    }
    checks = []
    if fire_at > 0 and hold > 0:
        # `for` honoured: still pending one evaluation before it may fire.
        checks.append({"eval_time": duration(fire_at - STEP), "alertname": name, "exp_alerts": []})
    checks.append({"eval_time": duration(fire_at), "alertname": name, "exp_alerts": [expected]})
    checks.append({"eval_time": duration(fire_at + TAIL), "alertname": name, "exp_alerts": [expected]})
    groups = [{"name": f"{name}: fires after for={a['for']}", "interval": duration(STEP),
               "input_series": input_series(case.series(a, level), n), "alert_rule_test": checks}]

    def quiet(label: str, series: Series) -> dict:
        return {"name": f"{name}: quiet ({label})", "interval": duration(STEP), "input_series": input_series(series, n),
                "alert_rule_test": [{"eval_time": duration(t), "alertname": name, "exp_alerts": []}
                                    for t in (fire_at, fire_at + TAIL)]}

    groups.append(quiet("healthy", case.series(a, case.healthy)))
    if case.under is not None:
        groups.append(quiet(f"just under the threshold {a['threshold']}", case.series(a, case.under(a))))
    for label, make in case.quiet.items():
        groups.append(quiet(label, make(a)))
    return groups


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    values = rule_values()
    out = render_to(values, tmp_path_factory.mktemp("rules") / "config")
    return values, out / "prometheus" / "rules"


@pytest.fixture(scope="module")
def promtool(tool):
    return tool("promtool")


def case_for(name: str, values: dict) -> Case:
    case = CASES[name]
    if name == "TargetMissing":
        case.series = target_missing_series(values)
    return case


def alert_settings(values: dict, name: str) -> dict:
    settings = dict(values["alerts"][name])
    if name == "DiskMetricsMissing":  # watches the mountpoint DatabaseDiskFull reads
        settings["mountpoint"] = values["alerts"]["DatabaseDiskFull"]["mountpoint"]
    return settings


def run_promtool_tests(promtool: str, rules_dir: Path, rule_files: list[str], groups: list[dict], name: str) -> None:
    test_file = rules_dir / f"{name}.test.yml"
    test_file.write_text(yaml.safe_dump({
        "rule_files": rule_files, "evaluation_interval": duration(STEP), "tests": groups,
    }, sort_keys=False, width=1000))
    result = subprocess.run([promtool, "test", "rules", test_file.name], cwd=rules_dir, capture_output=True, text=True)
    assert result.returncode == 0, f"{test_file}:\n{result.stdout}{result.stderr}"


def only_alert(rules_dir: Path, name: str) -> str:
    """A rule file holding just the rules of one alert, exactly as rendered: promtool
    then evaluates only them, which keeps each test fast and independent."""
    path = rules_dir / f"{name}.rules.yml"
    rules = alert_rules(rules_dir, BUNDLE_RULE_FILES)[name]
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}, sort_keys=False, width=1000))
    return path.name


def bundle_alerts(rules_dir: Path) -> list[str]:
    return sorted(alert_rules(rules_dir, BUNDLE_RULE_FILES))


@pytest.mark.parametrize("name", sorted(CASES))
def test_alert_fires_on_time_with_its_labels_and_stays_quiet_otherwise(name, rendered, promtool):
    values, rules_dir = rendered
    if name not in bundle_alerts(rules_dir):
        # CeleryWorkerOffline exists only while a job named flower is scraped.
        pytest.skip(f"the values in use render no {name} rule")
    groups = promtool_tests(name, case_for(name, values), alert_settings(values, name), values["runbook_base_url"])
    run_promtool_tests(promtool, rules_dir, [only_alert(rules_dir, name)], groups, name)


# --------------------------------------------------------------------------- kept tests


def kept_test_files() -> list[Path]:
    return sorted(KEPT_RULE_TESTS.glob("**/*.test.yml")) if KEPT_RULE_TESTS.exists() else []


def kept_cases(path: Path) -> dict[str, set[str]]:
    """alert name -> {"fire", "quiet"}: the kinds of checks a kept test file makes."""
    found: dict[str, set[str]] = {}
    for test in yaml.safe_load(path.read_text()).get("tests", []):
        for check in test.get("alert_rule_test", []):
            found.setdefault(check["alertname"], set()).add("fire" if check.get("exp_alerts") else "quiet")
    return found


def test_kept_rule_tests_pass_for_the_custom_rules_in_use(rendered, promtool, tmp_path):
    """Every kept promtool file whose alerts are all among the custom rules in use runs
    against the rendered custom.yml (its rule_files: [custom.yml])."""
    values, rules_dir = rendered
    custom = set(alert_rules(rules_dir, ["custom.yml"]))
    for path in kept_test_files():
        if not set(kept_cases(path)) <= custom:
            continue  # a test of custom rules another values file defines
        target = rules_dir / path.name
        target.write_text(path.read_text())
        result = subprocess.run([promtool, "test", "rules", target.name], cwd=rules_dir, capture_output=True, text=True)
        assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"


# --------------------------------------------------------------------------- meta-test


# An expression that reads no series, like vector(1): it can only fire, never be quiet.
CONSTANT = re.compile(r"\s*vector\(\s*[0-9.]+\s*\)\s*")


def untested(rules_dir: Path) -> list[str]:
    """Alerts of the rendered rules without both a firing and a quiet test."""
    problems = []
    for name in bundle_alerts(rules_dir):
        if name not in CASES:
            problems.append(f"{name}: no test case in tests/config/test_rules.py CASES")
    kinds: dict[str, set[str]] = {}
    for path in kept_test_files():
        for name, found in kept_cases(path).items():
            kinds.setdefault(name, set()).update(found)
    for name, rules in sorted(alert_rules(rules_dir, ["custom.yml"]).items()):
        needed = {"fire"} if all(CONSTANT.fullmatch(r["expr"]) for r in rules) else {"fire", "quiet"}
        missing = needed - kinds.get(name, set())
        if missing:
            problems.append(f"{name} (custom_rules): no {' and no '.join(sorted(missing))} case in a "
                            f"promtool test file under tests/rules/")
    return problems


def test_every_alert_has_a_firing_and_a_quiet_test(rendered):
    _, rules_dir = rendered
    assert bundle_alerts(rules_dir), "no alert rendered"
    assert not untested(rules_dir), "\n".join(untested(rules_dir))


def test_every_case_checks_fire_and_quiet(rendered):
    values, _ = rendered
    for name in CASES:
        groups = promtool_tests(name, case_for(name, values), alert_settings(values, name), "x")
        assert any(c["exp_alerts"] for g in groups for c in g["alert_rule_test"]), name
        assert sum(1 for g in groups if "quiet" in g["name"]) >= 1, name


def test_meta_test_catches_an_untested_rule(tmp_path):
    """A custom rule nobody tested, and a bundle rule without a case, are both reported."""
    values = render.merge(rule_values(), {"custom_rules": [{
        "alert": "UntestedSignupsStalled", "expr": "vector(1)", "for": "5m", "severity": "warning",
        "summary": "s", "description": "d", "runbook_url": "https://wiki.example.com/signups"}]})
    rules_dir = render_to(values, tmp_path / "config") / "prometheus" / "rules"
    assert any(p.startswith("UntestedSignupsStalled (custom_rules)") for p in untested(rules_dir))
    custom = alert_rules(rules_dir, ["custom.yml"])["UntestedSignupsStalled"][0]
    assert custom["annotations"]["runbook_url"] == "https://wiki.example.com/signups"
    platform = rules_dir / "platform.yml"
    platform.write_text(platform.read_text().replace("- alert: RedisDown", "- alert: RedisGone"))
    assert "RedisGone: no test case in tests/config/test_rules.py CASES" in untested(rules_dir)


def test_every_rule_carries_summary_description_and_runbook(rendered):
    values, rules_dir = rendered
    for name, rules in alert_rules(rules_dir, BUNDLE_RULE_FILES).items():
        for rule in rules:
            assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}, name
            assert rule["annotations"]["runbook_url"] == f"{values['runbook_base_url']}#{name.lower()}"
            assert rule["labels"]["severity"] == values["alerts"][name]["severity"]
            assert rule["for"] == values["alerts"][name]["for"]


def test_every_alert_has_a_runbook_section(rendered, root):
    """docs/runbooks.md has a heading for each alert, so each runbook_url anchor resolves."""
    _, rules_dir = rendered
    text = (root / "docs" / "runbooks.md").read_text()
    anchors = {re.sub(r"[^a-z0-9_-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"(?m)^#{2,3} (.+)$", text)}
    missing = [n for n in bundle_alerts(rules_dir) if n.lower() not in anchors]
    assert not missing, f"no section in docs/runbooks.md for {missing}"
