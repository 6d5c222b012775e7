"""The input series of each bundle alert's promtool test: how to make it fire and how to
keep it quiet. Everything else of the test (the rule, `for`, severity, annotations,
runbook link) comes from the alert catalogue through tests/config/test_rules.py.

Adding an alert to bundle/alerts.yaml means adding its Case here. Levels are in the
alert's own unit (the catalogue's `unit`) and follow the threshold in use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from bundle.layers import scrape_jobs

STEP = 15  # seconds between input samples and between rule evaluations


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


def clock(v: float) -> tuple[str, float]:
    """A timestamp-like gauge: v plus the seconds since the start, so v - time() stays v."""
    return ("clock", v)


def once(v: float) -> tuple[str, float]:
    """One sample at the start, then nothing: a series that went silent."""
    return ("once", v)


Series = dict[str, tuple[str, float]]  # selector -> (kind, value or increase per step)


def level_itself(a: dict, level: float) -> float:
    return level


@dataclass
class Case:
    """How to make one alert fire and stay quiet; levels are in the alert's own unit."""

    series: Callable[[dict, float], Series]
    fire: Callable[[dict], float]
    labels: Callable[[dict, float], dict]
    # The value the expression yields at `fire` (what {{ $value }} shows): the level
    # itself unless the level is a scale of something else.
    value: Callable[[dict, float], float] = level_itself
    healthy: float = 0
    under: Callable[[dict], float] | None = None  # None: the alert has no threshold
    # A level just past the threshold, which must fire too. By default, where the level is
    # the value, the mirror of `under` across the threshold.
    near: Callable[[dict], float] | None = None
    true_from: int = 0  # seconds from the start until the expression holds (rates: STEP)
    quiet: dict[str, Callable[[dict], Series]] = field(default_factory=dict)


# Label sets of the example targets, as the values' scrape jobs label them.
API = 'job="api-gateway",service="api-gateway",instance="api-gateway:8000"'
NODE = 'job="node",service="host",instance="node-exporter:9100"'
REDIS = 'job="redis",service="redis",instance="redis-exporter:9121"'
PG = 'job="postgres",service="postgres",instance="postgres-exporter:9187"'
NGINX = 'job="nginx",service="nginx",instance="nginx-exporter:9113"'
PROM = 'job="prometheus",service="prometheus",instance="localhost:9090"'
AM = 'job="alertmanager",service="alertmanager",instance="alertmanager:9093"'
CELERY = 'job="celery",service="celery",instance="celery-worker:9808"'
ES = 'job="elasticsearch",service="elasticsearch",instance="elasticsearch-exporter:9114"'
LS = 'job="logstash",service="logstash",instance="logstash-exporter:9198"'
# As a remote host's agent labels what it sends (bundle/agent.py).
AGENT = 'job="prometheus-agent",service="prometheus-agent",instance="web-1",host="web-1"'
QUEUE = 'remote_name="central",url="https://monitoring.example.com/prometheus/api/v1/write"'
PROBE = 'job="blackbox",instance="https://shop.example.com/health",probe="shop",host="central"'
LOOKBACK = 300  # seconds an instant query looks back for a series' last sample


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


# Bucket bounds of the latency histogram, in units of the alert's threshold.
BUCKETS = (0.1, 0.25, 0.5, 1, 1.1, 2, 4)


def p95_in_bucket(x: float) -> float:
    """The 95th percentile, in units of t, of requests all in the bucket ending at x."""
    lower = max([b for b in BUCKETS if b < x], default=0)
    return lower + (x - lower) * 0.95


def histogram(t: float, x: float, per_step: float) -> Series:
    """Requests whose latency all falls into the bucket whose upper bound is x*t (x one of
    BUCKETS): the same buckets at every level, so levels can follow one another."""
    assert x in BUCKETS, x
    sel = f'{API},method="GET",endpoint="/api/items/{{item_id}}"'
    out = {f'http_request_duration_seconds_bucket{{{sel},le="{b * t:g}"}}': counter(per_step if b >= x else 0)
           for b in BUCKETS}
    out[f'http_request_duration_seconds_bucket{{{sel},le="+Inf"}}'] = counter(per_step)
    return out


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
        quiet={"4xx are not errors": lambda a: ratio_counters(
            f'http_requests_total{{{API},method="GET",endpoint="/nowhere",status="404"}}',
            f'http_requests_total{{{API},method="GET",endpoint="/nowhere",status="200"}}', 90)},
    ),
    "HighResponseTime": Case(
        series=lambda a, x: histogram(a["threshold"], x, 10),
        # x picks the bucket of BUCKETS with upper bound x*t; p95 interpolates within it.
        fire=lambda a: 2, under=lambda a: 1, near=lambda a: 1.1, healthy=0.25, true_from=STEP,
        value=lambda a, x: a["threshold"] * p95_in_bucket(x),
        labels=lambda a, x: {"job": "api-gateway", "service": "api-gateway"},
    ),
    "ServiceDown": Case(
        series=lambda a, up: {f"up{{{API}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(API),
        quiet={"an exporter down is ExporterDown's": lambda a: {f"up{{{REDIS}}}": gauge(0)}},
    ),
    "CeleryWorkerDown": Case(
        series=lambda a, up: {f"up{{{CELERY}}}": gauge(up),
                              'up{job="celery",service="celery",instance="celery-worker-2:9808"}': gauge(up)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "celery", "service": "celery"},
        quiet={"one worker of two still up": lambda a: {
            f"up{{{CELERY}}}": gauge(0), 'up{job="celery",service="celery",instance="celery-worker-2:9808"}': gauge(1)}},
    ),
    "CeleryWorkerOffline": Case(
        series=lambda a, up: {'flower_worker_online{job="flower",service="celery",instance="flower:5555",worker="celery@w1"}': gauge(up)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "flower", "service": "celery", "instance": "flower:5555", "worker": "celery@w1"},
    ),
    "RedisDown": Case(
        series=lambda a, up: {f"redis_up{{{REDIS}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(REDIS),
    ),
    "RedisMemoryHigh": Case(
        series=lambda a, pct: {f"redis_memory_used_bytes{{{REDIS}}}": gauge(pct * 1e7),
                               f"redis_memory_max_bytes{{{REDIS}}}": gauge(1e9)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=10,
        labels=lambda a, v: labels_of(REDIS),
        quiet={"no maxmemory set": lambda a: {f"redis_memory_used_bytes{{{REDIS}}}": gauge(1e9),
                                               f"redis_memory_max_bytes{{{REDIS}}}": gauge(0)}},
    ),
    "RedisRejectedConnections": Case(
        series=lambda a, n: {f"redis_rejected_connections_total{{{REDIS}}}": counter(n)},
        fire=lambda a: a["threshold"] + 1, under=lambda a: a["threshold"] / 20 * 0.9, true_from=STEP,
        near=lambda a: (a["threshold"] + 0.5) / 20,
        labels=lambda a, v: labels_of(REDIS),
    ),
    "PostgresDown": Case(
        series=lambda a, up: {f"pg_up{{{PG}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(PG),
    ),
    "PostgresHighConnections": Case(
        series=lambda a, pct: {f'pg_stat_database_numbackends{{{PG},datname="app"}}': gauge(pct * 1.5),
                               f'pg_stat_database_numbackends{{{PG},datname="postgres"}}': gauge(pct * 0.5),
                               f"pg_settings_max_connections{{{PG}}}": gauge(200)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=5,
        labels=lambda a, v: {"job": "postgres", "instance": "postgres-exporter:9187"},
    ),
    "PostgresDeadlocks": Case(
        series=lambda a, n: {f'pg_stat_database_deadlocks{{{PG},datname="app"}}': counter(n)},
        fire=lambda a: a["threshold"] + 1, under=lambda a: a["threshold"] / 20 * 0.9, true_from=STEP,
        near=lambda a: (a["threshold"] + 0.5) / 20,
        labels=lambda a, v: labels_of(PG, datname="app"),
        quiet={"template databases": lambda a: {
            f'pg_stat_database_deadlocks{{{PG},datname="template1"}}': counter(a["threshold"] + 1)}},
    ),
    "DatabaseDiskFull": Case(
        series=lambda a, free: root_fs(a["mountpoint"], free),
        fire=lambda a: a["threshold"] / 2, under=lambda a: just_over(a["threshold"]), healthy=60,
        labels=lambda a, v: fs_labels(a["mountpoint"]),
        quiet={"a container's overlay at the same mountpoint": lambda a: root_fs(a["mountpoint"], 1, fstype="overlay", device="overlay"),
               "a read-only filesystem": lambda a: root_fs(a["mountpoint"], 1, readonly=1),
               "another mountpoint": lambda a: root_fs(a["mountpoint"].rstrip("/") + "/elsewhere", 1)},
    ),
    "CeleryQueueBackup": Case(
        # The API and the worker both report the broker's queue length.
        series=lambda a, n: {f'celery_queue_length{{{API},queue="celery"}}': gauge(n),
                             f'celery_queue_length{{{CELERY},queue="celery"}}': gauge(n)},
        fire=lambda a: a["threshold"] * 2 + 2, under=lambda a: a["threshold"], near=lambda a: a["threshold"] + 1,
        healthy=0,
        labels=lambda a, v: {"queue": "celery"},
        quiet={"two reports of one queue are not added up": lambda a: {
            f'celery_queue_length{{{API},queue="celery"}}': gauge(a["threshold"] * 0.6),
            f'celery_queue_length{{{CELERY},queue="celery"}}': gauge(a["threshold"] * 0.6)}},
    ),
    "CeleryQueueLengthMissing": Case(
        # level 1: the API exports the queue length; 0: Celery is scraped but nothing does.
        series=lambda a, present: {f"up{{{CELERY}}}": gauge(1), f"up{{{API}}}": gauge(1), **(
            {f'celery_queue_length{{{API},queue="celery"}}': gauge(3)} if present else {})},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {},
        quiet={"no Celery scraped at all": lambda a: {f"up{{{API}}}": gauge(1)},
               "a queue length from any job": lambda a: {
                   f"up{{{CELERY}}}": gauge(1), f'celery_queue_length{{{CELERY},queue="celery"}}': gauge(0)}},
    ),
    "HighTaskFailureRate": Case(
        series=lambda a, pct: {
            f'celery_task_failures_total{{{CELERY},task_name="generate_document"}}': counter(pct),
            f'celery_task_duration_seconds_count{{{CELERY},task_name="generate_document"}}': counter(100)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "celery", "task_name": "generate_document"},
    ),
    "NginxHighErrorRate": Case(
        series=lambda a, pct: ratio_counters(
            f'{a["metric"]}{{job="nginx-log",instance="nginx-log-exporter:4040",method="GET",status="502"}}',
            f'{a["metric"]}{{job="nginx-log",instance="nginx-log-exporter:4040",method="GET",status="200"}}', pct),
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: {"job": "nginx-log", "instance": "nginx-log-exporter:4040"},
    ),
    "NginxDown": Case(
        series=lambda a, up: {f"nginx_up{{{NGINX}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(NGINX),
    ),
    "HighCPUUsage": Case(
        series=lambda a, busy: {f'node_cpu_seconds_total{{{NODE},cpu="{c}",mode="idle"}}': counter(STEP * (1 - busy / 100))
                                for c in (0, 1)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=20, true_from=STEP,
        labels=lambda a, v: {"job": "node", "instance": "node-exporter:9100"},
    ),
    "HighMemoryUsage": Case(
        series=lambda a, used: {f"node_memory_MemAvailable_bytes{{{NODE}}}": gauge((100 - used) * 1e8),
                                f"node_memory_MemTotal_bytes{{{NODE}}}": gauge(1e10)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=30,
        labels=lambda a, v: labels_of(NODE),
    ),
    "DiskSpaceLow": Case(
        series=lambda a, free: root_fs("/", free),
        fire=lambda a: a["threshold"] / 2, under=lambda a: just_over(a["threshold"]), healthy=60,
        labels=lambda a, v: fs_labels("/"),
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
        quiet={"no node_exporter at all": lambda a: {f"up{{{API}}}": gauge(1)}},
    ),
    "TargetMissing": Case(
        series=None, fire=lambda a: 0, healthy=1,  # filled in below: needs the job list
        labels=lambda a, v: {"job": "api-gateway"},
    ),
    "ExporterDown": Case(
        series=lambda a, up: {f"up{{{REDIS}}}": gauge(up)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(REDIS),
        quiet={"a service down is ServiceDown's": lambda a: {f"up{{{API}}}": gauge(0)}},
    ),
    "PrometheusRuleEvaluationFailures": Case(
        series=lambda a, n: {f'prometheus_rule_evaluation_failures_total{{{PROM},rule_group="/etc/prometheus/rules/platform.yml;platform"}}': counter(n)},
        fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM, rule_group="/etc/prometheus/rules/platform.yml;platform"),
    ),
    "PrometheusNotificationsFailing": Case(
        series=lambda a, pct: {
            f'prometheus_notifications_errors_total{{{PROM},alertmanager="http://alertmanager:9093/api/v2/alerts"}}': counter(pct),
            f'prometheus_notifications_sent_total{{{PROM},alertmanager="http://alertmanager:9093/api/v2/alerts"}}': counter(100)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), true_from=STEP,
        labels=lambda a, v: labels_of(PROM, alertmanager="http://alertmanager:9093/api/v2/alerts"),
    ),
    "PrometheusConfigReloadFailed": Case(
        series=lambda a, ok: {f"prometheus_config_last_reload_successful{{{PROM}}}": gauge(ok)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(PROM),
    ),
    "PrometheusTSDBCompactionsFailing": Case(
        series=lambda a, n: {f"prometheus_tsdb_compactions_failed_total{{{PROM}}}": counter(n)}, fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM),
    ),
    "PrometheusTSDBWALProblems": Case(
        series=lambda a, n: {f"prometheus_tsdb_wal_corruptions_total{{{PROM}}}": counter(n),
                             f"prometheus_tsdb_wal_writes_failed_total{{{PROM}}}": counter(0),
                             f"prometheus_tsdb_wal_truncations_failed_total{{{PROM}}}": counter(n)},
        fire=lambda a: 1, true_from=STEP,
        labels=lambda a, v: labels_of(PROM),
    ),
    "PrometheusStorageFilling": Case(
        series=lambda a, pct: {f"prometheus_tsdb_storage_blocks_bytes{{{PROM}}}": gauge((pct - 1) * 1e8),
                               f"prometheus_tsdb_wal_storage_size_bytes{{{PROM}}}": gauge(1e8),
                               f"prometheus_tsdb_retention_limit_bytes{{{PROM}}}": gauge(1e10)},
        fire=lambda a: over(a["threshold"]), under=lambda a: just_under(a["threshold"]), healthy=20,
        labels=lambda a, v: labels_of(PROM),
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
    ),
    "AlertmanagerConfigReloadFailed": Case(
        series=lambda a, ok: {f"alertmanager_config_last_reload_successful{{{AM}}}": gauge(ok)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(AM),
    ),
    "ElasticsearchDown": Case(
        # level 1: health is reported; 0: the exporter answers but reads no health.
        series=lambda a, ok: {f"up{{{ES}}}": gauge(1), **({
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="{c}"}}': gauge(1 if c == "green" else 0)
            for c in ("green", "yellow", "red")} if ok else {})},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(ES),
        quiet={"the exporter itself down is ExporterDown's": lambda a: {f"up{{{ES}}}": gauge(0)}},
    ),
    "ElasticsearchClusterRed": Case(
        series=lambda a, red: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="green"}}': gauge(0),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(1 - red),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="red"}}': gauge(red)},
        fire=lambda a: 1, healthy=0,
        labels=lambda a, v: labels_of(ES, es_cluster="logs", color="red"),
    ),
    "ElasticsearchClusterYellow": Case(
        series=lambda a, yellow: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="green"}}': gauge(1 - yellow),
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(yellow),
            f"elasticsearch_cluster_health_number_of_data_nodes{{{ES},cluster=\"logs\"}}": gauge(3)},
        fire=lambda a: 1, healthy=0,
        labels=lambda a, v: labels_of(ES, es_cluster="logs", color="yellow"),
        quiet={"a single node is always yellow": lambda a: {
            f'elasticsearch_cluster_health_status{{{ES},cluster="logs",color="yellow"}}': gauge(1),
            f"elasticsearch_cluster_health_number_of_data_nodes{{{ES},cluster=\"logs\"}}": gauge(1)}},
    ),
    "LogstashDown": Case(
        series=lambda a, ok: {f"up{{{LS}}}": gauge(1), **(
            {f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(10)} if ok else {})},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(LS),
    ),
    "LogstashPipelineStalled": Case(
        # level: events in per step while none go out (0: nothing in, nothing queued).
        series=lambda a, n: {
            f'logstash_stats_pipeline_events_in{{{LS},pipeline="main"}}': counter(n),
            f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(0),
            f'logstash_stats_pipeline_queue_events_count{{{LS},pipeline="main"}}': gauge(0)},
        fire=lambda a: 10, healthy=0, true_from=STEP,
        labels=lambda a, v: {"job": "logstash", "instance": "logstash-exporter:9198", "pipeline": "main"},
        quiet={"events flow out": lambda a: {
            f'logstash_stats_pipeline_events_in{{{LS},pipeline="main"}}': counter(10),
            f'logstash_stats_pipeline_events_out{{{LS},pipeline="main"}}': counter(10),
            f'logstash_stats_pipeline_queue_events_count{{{LS},pipeline="main"}}': gauge(50)}},
    ),
    "LogstashDeadLetterQueueGrowing": Case(
        series=lambda a, n: {f'logstash_stats_pipeline_dead_letter_queue_size_in_bytes{{{LS},pipeline="main"}}': counter(n)},
        fire=lambda a: 1024, healthy=0, true_from=STEP,
        labels=lambda a, v: {**labels_of(LS), "pipeline": "main"},
    ),
    "LogShipperDroppingLines": Case(
        series=lambda a, n: {f'log_shipper_dropped_lines_total{{{API},destination="logstash:5000",reason="memory_full"}}': counter(n)},
        fire=lambda a: 5, healthy=0, true_from=STEP,
        labels=lambda a, v: {"job": "api-gateway", "destination": "logstash:5000", "reason": "memory_full"},
        quiet={"lines sent, none dropped": lambda a: {
            f'log_shipper_sent_lines_total{{{API},destination="logstash:5000"}}': counter(50),
            f'log_shipper_dropped_lines_total{{{API},destination="logstash:5000",reason="memory_full"}}': counter(0)}},
    ),
    "LogShipperDisconnected": Case(
        series=lambda a, up: {f'log_shipper_connected{{{API},destination="logstash:5000"}}': gauge(up)},
        fire=lambda a: 0, healthy=1,
        labels=lambda a, v: {"job": "api-gateway", "instance": "api-gateway:8000", "destination": "logstash:5000"},
        quiet={"an app that never logged reports no shipper": lambda a: {f"up{{{API}}}": gauge(1)}},
    ),
}


CASES.update({
    "RemoteHostSilent": Case(
        # level 1: the agent keeps sending; 0: one sample, then silence.
        series=lambda a, sending: {f"up{{{AGENT}}}": gauge(1) if sending else once(1)},
        fire=lambda a: 0, healthy=1, true_from=LOOKBACK,
        labels=lambda a, v: {"host": "web-1"},
    ),
    "RemoteWriteBehind": Case(
        series=lambda a, behind: {
            f"prometheus_remote_storage_highest_timestamp_in_seconds{{{AGENT}}}": gauge(100000),
            f"prometheus_remote_storage_queue_highest_sent_timestamp_seconds{{{AGENT},{QUEUE}}}": gauge(100000 - behind)},
        fire=lambda a: a["threshold"] * 2, under=lambda a: just_under(a["threshold"]), healthy=1,
        labels=lambda a, v: labels_of(f"{AGENT},{QUEUE}"),
    ),
    "RemoteWriteFailing": Case(
        series=lambda a, n: {f"prometheus_remote_storage_samples_failed_total{{{AGENT},{QUEUE}}}": counter(n)},
        fire=lambda a: 10, healthy=0, true_from=STEP,
        labels=lambda a, v: {k: v for k, v in labels_of(f"{AGENT},{QUEUE}").items() if k not in ("job", "service")},
    ),
    "EndpointDown": Case(
        series=lambda a, ok: {f"probe_success{{{PROBE}}}": gauge(ok)}, fire=lambda a: 0, healthy=1,
        labels=lambda a, v: labels_of(PROBE),
    ),
    "CertificateExpiresSoon": Case(
        # An expiry `days` ahead of the test's clock all along.
        series=lambda a, days: {f"probe_ssl_earliest_cert_expiry{{{PROBE}}}": clock(days * 86400)},
        fire=lambda a: a["threshold"] / 2, under=lambda a: just_over(a["threshold"]), healthy=90,
        labels=lambda a, v: labels_of(PROBE),
    ),
})


def target_missing_series(values: dict) -> Callable[[dict, float], Series]:
    jobs = list(scrape_jobs(values))

    def series(a: dict, present: float) -> Series:
        return {f'up{{job="{job}",instance="{job}:1"}}': gauge(1)
                for job in jobs if present or job != "api-gateway"}

    return series
