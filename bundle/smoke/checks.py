"""The checks of the core (Prometheus, Alertmanager, the containers), and the registry
every check is declared in. A check returns its message when it passes, raises Fail
with what is wrong, or Skip when it cannot apply (saying why)."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import yaml

from .. import ROOT, layers
from .compare import ALERTMANAGER, PROMETHEUS, differences, seconds
from .expect import NODE_JOB, Expected, Group
from .http import Client, HttpStatus, SmokeError
from .queries import filesystems, grew, total


class Fail(Exception):
    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class Skip(Exception):
    pass


@dataclass
class Check:
    id: str
    title: str
    layer: str
    service: str
    run: Callable[["Context"], str]


CHECKS: list[Check] = []


def check(id: str, title: str, service: str, layer: str = "core"):
    def register(fn):
        CHECKS.append(Check(id, title, layer, service, fn))
        return fn
    return register


@dataclass
class Context:
    expected: Expected
    clients: dict[str, Client]
    local: bool
    secrets: dict[str, str] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    def client(self, service: str) -> Client:
        return self.clients[service]

    def once(self, key: str, fetch: Callable[[], object]):
        """One GET per run for what several checks read (rules, runtime info)."""
        if key not in self.cache:
            self.cache[key] = fetch()
        return self.cache[key]

    def query(self, expr: str) -> list[tuple[dict, float]]:
        """An instant PromQL query on Prometheus: (labels, value) of each series."""
        body = self.client("prometheus").json("/api/v1/query", {"query": expr}, ok=(200, 400, 422, 503))
        if body.get("status") != "success":
            raise SmokeError(f"Prometheus refused the query {expr}: {body.get('error')}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def runtime(self) -> dict:
        return self.once("runtime", lambda: self.client("prometheus").json("/api/v1/status/runtimeinfo")["data"])

    def now(self) -> float:
        """Prometheus' clock: freshness is judged on the server, whatever this host's clock says."""
        return timestamp(self.runtime()["serverTime"])

    def rules(self) -> list[dict]:
        return self.once("rules", lambda: self.client("prometheus").json("/api/v1/rules")["data"]["groups"])


def timestamp(text: str) -> float:
    """RFC 3339 with nanoseconds (Go) -> seconds since the epoch."""
    text = text.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        text = f"{head}.{digits[:6]}{tz}"
    return datetime.fromisoformat(text).timestamp()


def listing(items: list[str], limit: int = 6) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def fail_if(problems: list[str], what: str) -> None:
    if problems:
        raise Fail(f"{what}: {listing(problems)}", problems)


# ---------------------------------------------------------------- containers (local)


def compose_services(values: dict) -> tuple[list[str], list[str]]:
    """(long-running services, one-shot jobs `up` runs) of the enabled layers. Jobs under
    a Compose profile are not started by `up` and not expected."""
    running, jobs = [], []
    for layer in layers.enabled(values):
        defined = yaml.safe_load((ROOT / layer.compose).read_text(encoding="utf-8"))["services"]
        for name, spec in defined.items():
            if spec.get("profiles"):
                continue
            (jobs if str(spec.get("restart", "")) == "no" else running).append(name)
    return running, jobs


def compose_ps() -> list[dict]:
    proc = subprocess.run([str(ROOT / "scripts" / "compose.sh"), "ps", "--all", "--format", "json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise SmokeError(f"docker compose ps failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    text = proc.stdout.strip()
    if text.startswith("["):  # Compose before 2.21 prints one array
        return json.loads(text)
    return [json.loads(row) for row in text.splitlines() if row.strip()]


@check("stack.containers", "every service of the enabled layers is running and healthy", "docker")
def containers(ctx: Context) -> str:
    if not ctx.local:
        raise Skip("remote stack: container states are not visible from here; each service's own "
                   "health checks below stand for them")
    running, jobs = compose_services(ctx.expected.values)
    state = {row["Service"]: row for row in compose_ps()}
    problems = []
    for service in running:
        row = state.get(service)
        if row is None:
            problems.append(f"{service}: no container (make up)")
        elif row["State"] != "running":
            problems.append(f"{service}: {row['State']} ({row.get('Status', '')})")
        elif (row.get("Health") or "") not in ("", "healthy"):
            problems.append(f"{service}: {row['Health']}")
    for job in jobs:
        row = state.get(job)
        if row is None:
            problems.append(f"{job}: the one-shot job never ran (make up)")
        elif row["State"] == "exited" and row.get("ExitCode") != 0:
            problems.append(f"{job}: exited with code {row.get('ExitCode')}")
    fail_if(problems, f"{len(problems)} of {len(running) + len(jobs)} services not as they should be")
    healthchecked = sum(state[s].get("Health") == "healthy" for s in running)
    return (f"{len(running)} services running ({healthchecked} with a healthcheck, all healthy)"
            + (f", {len(jobs)} one-shot jobs succeeded" if jobs else ""))


# ---------------------------------------------------------------- Prometheus


@check("prometheus.health", "Prometheus is healthy and ready", "prometheus")
def prometheus_health(ctx: Context) -> str:
    api = ctx.client("prometheus")
    api.ok("/-/healthy")
    api.ok("/-/ready")
    version = api.json("/api/v1/status/buildinfo")["data"]["version"]
    return f"Prometheus {version} at {api.base} is healthy and ready"


def rule_problems(ctx: Context, want: list[Group], loaded: list[dict]) -> list[str]:
    """Differences between the rendered rule groups and the loaded ones."""
    got = {(g["file"].rsplit("/", 1)[-1], g["name"]): g for g in loaded}
    problems = []
    for group in want:
        found = got.pop((group.file, group.name), None)
        where = f"rules/{group.file} group {group.name}"
        if found is None:
            problems.append(f"{where}: rendered, not loaded")
            continue
        if float(found["interval"]) != group.interval:
            problems.append(f"{where}: interval {found['interval']}s loaded, {group.interval:g}s rendered")
        names = [r["name"] for r in found["rules"]]
        if names != [r.name for r in group.rules]:
            problems.append(f"{where}: rules {names} loaded, {[r.name for r in group.rules]} rendered")
            continue
        for rule, live in zip(group.rules, found["rules"]):
            at = f"{where} rule {rule.name}"
            if live["type"] != rule.kind:
                problems.append(f"{at}: {live['type']} loaded, {rule.kind} rendered")
            if rule.kind == "alerting" and float(live.get("duration", 0)) != rule.duration:
                problems.append(f"{at}: for {live.get('duration')}s loaded, {rule.duration:g}s rendered")
            if live.get("labels", {}) != rule.labels:
                problems.append(f"{at}: labels {live.get('labels')} loaded, {rule.labels} rendered")
            if rule.kind == "alerting" and live.get("annotations", {}) != rule.annotations:
                problems.append(f"{at}: annotations differ from the rendered ones")
            if not same_query(ctx, rule.query, live["query"]):
                problems.append(f"{at}: expression {live['query']!r} loaded, {rule.query.strip()!r} rendered")
    problems += [f"rules/{file} group {name}: loaded, not rendered" for file, name in got]
    return problems


def same_query(ctx: Context, rendered: str, loaded: str) -> bool:
    """Prometheus prints a rule's expression from its parse tree; when the text differs
    beyond white space, let Prometheus format both (a GET that evaluates nothing)."""
    if "".join(rendered.split()) == "".join(loaded.split()):
        return True
    api = ctx.client("prometheus")
    form = [api.json("/api/v1/format_query", {"query": q})["data"] for q in (rendered, loaded)]
    return form[0] == form[1]


@check("prometheus.config", "the loaded Prometheus configuration and rules are the rendered ones", "prometheus")
def prometheus_config(ctx: Context) -> str:
    api = ctx.client("prometheus")
    loaded = yaml.safe_load(api.json("/api/v1/status/config")["data"]["yaml"])
    problems = [f"prometheus.yml: {d}" for d in
                differences(ctx.expected.config("prometheus/prometheus.yml"), loaded, PROMETHEUS)]
    want = ctx.expected.groups
    problems += rule_problems(ctx, want, ctx.rules())
    runtime = ctx.runtime()
    if not runtime.get("reloadConfigSuccess", True):
        problems.insert(0, f"the last reload failed: Prometheus still runs what it loaded at {runtime['lastConfigTime']}")
    fail_if(problems, "Prometheus does not run the rendered configuration (make reload applies it)")
    return (f"loaded configuration is the rendered one ({len(loaded.get('scrape_configs') or [])} jobs, "
            f"{sum(len(g.rules) for g in want)} rules in {len(want)} groups), loaded {runtime.get('lastConfigTime')}")


@check("prometheus.rules", "every rule group evaluated within two intervals, every rule healthy", "prometheus")
def prometheus_rules(ctx: Context) -> str:
    now = ctx.now()
    problems, count = [], 0
    for group in ctx.rules():
        interval = float(group["interval"])
        last = group.get("lastEvaluation", "")
        if not last or last.startswith("0001-"):
            problems.append(f"group {group['name']}: never evaluated")
        elif now - timestamp(last) > 2 * interval:
            problems.append(f"group {group['name']}: last evaluated {now - timestamp(last):.0f}s ago "
                            f"(interval {interval:g}s)")
        for rule in group["rules"]:
            count += 1
            if rule.get("health") != "ok":
                problems.append(f"rule {rule['name']} (group {group['name']}): {rule.get('health')}: "
                                f"{rule.get('lastError') or 'not evaluated yet'}")
    fail_if(problems, f"{len(problems)} problems in rule evaluation")
    return f"{len(ctx.rules())} groups evaluated within two intervals, {count} rules healthy"


@check("prometheus.targets", "every scrape target of the values is up", "prometheus")
def prometheus_targets(ctx: Context) -> str:
    active = ctx.client("prometheus").json("/api/v1/targets", {"state": "active"})["data"]["activeTargets"]
    allowed = ctx.expected.allowed_down
    by_job: dict[str, list[dict]] = {}
    for target in active:
        by_job.setdefault(target.get("scrapePool") or target["labels"].get("job", ""), []).append(target)
    problems, excused = [], []
    for job in ctx.expected.jobs:
        if not by_job.get(job):
            problems.append(f"job {job}: no target (is it in the loaded configuration?)")
    for job, targets in by_job.items():
        for target in targets:
            if target["health"] == "up":
                continue
            what = (f"job {job} {target['labels'].get('instance', target['scrapeUrl'])}: {target['health']}"
                    + (f" ({target['lastError']})" if target.get("lastError") else " (not scraped yet)"))
            (excused if job in allowed else problems).append(what)
    fail_if(problems, f"{len(problems)} targets down or missing")
    up = sum(t["health"] == "up" for t in active)
    note = f"; down but allowed (smoke.targets_may_be_down): {listing(excused)}" if excused else ""
    return f"{up} of {len(active)} targets of {len(by_job)} jobs up{note}"


def metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of the text exposition format (`name value`)."""
    out = {}
    for row in text.splitlines():
        parts = row.split()
        if len(parts) in (2, 3) and not row.startswith("#") and "{" not in parts[0]:
            out[parts[0]] = float(parts[1])
    return out


def size_in_bytes(size: str) -> int:
    """Prometheus sizes are powers of 1024 whether written 10GB or 10GiB."""
    found = re.fullmatch(r"(\d+)([KMGTPE]?)i?B", size)
    if not found:
        raise SmokeError(f"not a size: {size!r}")
    number, unit = found.groups()
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def tsdb_usage(ctx: Context) -> tuple[float, float]:
    """(bytes the TSDB uses, its size limit), from Prometheus' own /metrics."""
    def fetch():
        response = ctx.client("prometheus").get("/metrics")
        if response.status_code != 200:
            raise HttpStatus(response.status_code, response.url, response.text)
        found = metrics(response.text)
        return (found["prometheus_tsdb_storage_blocks_bytes"] + found["prometheus_tsdb_wal_storage_size_bytes"],
                found["prometheus_tsdb_retention_limit_bytes"])
    return ctx.once("tsdb_usage", fetch)


@check("prometheus.tsdb", "TSDB retention as the values say, ingesting, no corruption, below its size alert",
       "prometheus")
def prometheus_tsdb(ctx: Context) -> str:
    api = ctx.client("prometheus")
    flags = api.json("/api/v1/status/flags")["data"]
    retention = ctx.expected.values["prometheus"]["retention"]
    problems = []
    if seconds(flags["storage.tsdb.retention.time"]) != seconds(retention["time"]):
        problems.append(f"retention time {flags['storage.tsdb.retention.time']} in effect, {retention['time']} in the values")
    if size_in_bytes(flags["storage.tsdb.retention.size"]) != size_in_bytes(retention["size"]):
        problems.append(f"retention size {flags['storage.tsdb.retention.size']} in effect, {retention['size']} in the values")
    runtime = ctx.runtime()
    if runtime.get("corruptionCount", 0):
        problems.append(f"{runtime['corruptionCount']} WAL corruptions since start")
    head = api.json("/api/v1/status/tsdb")["data"]["headStats"]
    lag = max(ctx.now() - head["maxTime"] / 1000, 0.0)
    if head["numSeries"] == 0 or lag > 2 * ctx.expected.scrape_interval:
        problems.append(f"not ingesting: newest sample {lag:.0f}s old with {head['numSeries']} series in the head "
                        f"(scrape interval {ctx.expected.scrape_interval:g}s)")
    used, limit = tsdb_usage(ctx)
    threshold = ctx.expected.storage_filling_threshold
    if limit and used / limit * 100 >= threshold:
        problems.append(f"TSDB at {used / limit * 100:.0f}% of its {retention['size']} limit "
                        f"(PrometheusStorageFilling fires at {threshold:g}%)")
    fail_if(problems, "TSDB not as it should be")
    return (f"retention {runtime.get('storageRetention')}, {head['numSeries']} series, newest sample {lag:.0f}s old, "
            f"{used / 2**20:.0f} MiB used ({used / limit * 100:.1f}% of the size limit)")


def tsdb_host_path(ctx: Context) -> str:
    """Where the TSDB volume lives on the host: asked of Docker locally; Docker's default
    data root for a remote stack."""
    volume = ctx.expected.tsdb_volume
    if not ctx.local:
        return f"/var/lib/docker/volumes/{volume}/_data"
    proc = subprocess.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", volume],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise SmokeError(f"docker volume inspect {volume}: {proc.stderr.strip()[:200]}")
    return proc.stdout.strip()


@check("prometheus.disk", "the disk holding the TSDB has room for it to reach its size limit", "prometheus")
def prometheus_disk(ctx: Context) -> str:
    instances = ctx.expected.targets_of(NODE_JOB)
    if not instances:
        raise Skip(f"no scrape job {NODE_JOB} (node_exporter) in the values: disk space not visible")
    path = tsdb_host_path(ctx)
    found = [(labels["mountpoint"], value) for labels, value in
             ctx.query(filesystems(NODE_JOB))
             if labels.get("instance") in instances
             and (path == labels["mountpoint"] or path.startswith(labels["mountpoint"].rstrip("/") + "/"))]
    if not found:
        raise Fail(f"node_exporter ({', '.join(instances)}) reports no filesystem holding {path}")
    mountpoint, avail = max(found, key=lambda item: len(item[0]))
    used, limit = tsdb_usage(ctx)
    growth = max(limit - used, 0)
    size = ctx.expected.values["prometheus"]["retention"]["size"]
    if avail < growth:
        raise Fail(f"{mountpoint} has {avail / 2**30:.1f} GiB free but the TSDB may still grow by "
                   f"{growth / 2**30:.1f} GiB to prometheus.retention.size {size}: free space or lower it")
    return (f"{mountpoint} (holding {path}) has {avail / 2**30:.1f} GiB free; the TSDB may grow by "
            f"{growth / 2**30:.1f} GiB more (retention.size {size})")


def increases(ctx: Context, metric: str, by: str) -> list[str]:
    """Series of a counter that grew in the last hour, as 'labels: +n'."""
    rows = ctx.query(grew(metric, by))
    return [", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + f": +{max(round(value), 1)}"
            for labels, value in rows]


@check("prometheus.notifications", "Prometheus reaches Alertmanager: no alert failed or dropped in the last hour",
       "prometheus")
def prometheus_notifications(ctx: Context) -> str:
    problems = [f"alerts failed to reach Alertmanager ({row})"
                for row in increases(ctx, "prometheus_notifications_errors_total", "instance, alertmanager")]
    problems += [f"alerts dropped ({row})"
                 for row in increases(ctx, "prometheus_notifications_dropped_total", "instance")]
    # The central Prometheus' own (job prometheus): remote agents (values hosts), whose
    # metrics arrive here too, send no alerts and discover no Alertmanager.
    discovered = ctx.query('prometheus_notifications_alertmanagers_discovered{job="prometheus"}')
    if not discovered or any(value < 1 for _, value in discovered):
        problems.append("Prometheus has discovered no Alertmanager")
    fail_if(problems, "alerts did not all reach Alertmanager")
    sent = sum(v for _, v in ctx.query(total("prometheus_notifications_sent_total")))
    return f"{max(v for _, v in discovered):.0f} Alertmanager(s) discovered, {sent:.0f} alerts sent in the last hour, none failed or dropped"


# ---------------------------------------------------------------- Alertmanager


def am_status(ctx: Context) -> dict:
    return ctx.once("am_status", lambda: ctx.client("alertmanager").json("/api/v2/status"))


@check("alertmanager.health", "Alertmanager is healthy and ready", "alertmanager")
def alertmanager_health(ctx: Context) -> str:
    api = ctx.client("alertmanager")
    api.ok("/-/healthy")
    api.ok("/-/ready")
    status = am_status(ctx)
    return f"Alertmanager {status['versionInfo']['version']} at {api.base} is healthy and ready, up since {status['uptime']}"


@check("alertmanager.config", "the loaded Alertmanager configuration is the rendered one", "alertmanager")
def alertmanager_config(ctx: Context) -> str:
    loaded = yaml.safe_load(am_status(ctx)["config"]["original"])
    rendered = ctx.expected.config("alertmanager/alertmanager.yml")
    fail_if([f"alertmanager.yml: {d}" for d in differences(rendered, loaded, ALERTMANAGER)],
            "Alertmanager does not run the rendered configuration (make reload applies it)")
    return (f"loaded configuration is the rendered one ({len(rendered['receivers'])} receivers, "
            f"{len(rendered['route'].get('routes', []))} routes)")


@check("alertmanager.cluster", "Alertmanager's cluster is healthy when clustered", "alertmanager")
def alertmanager_cluster(ctx: Context) -> str:
    cluster = am_status(ctx)["cluster"]
    replicas = ctx.expected.alertmanagers
    if cluster["status"] == "disabled":
        if replicas > 1:
            raise Fail(f"clustering is off, but the values run {replicas} Alertmanagers")
        return "single node (clustering off): nothing to check"
    problems = []
    if cluster["status"] != "ready":
        problems.append(f"cluster status {cluster['status']}")
    peers = len(cluster.get("peers") or [])
    if peers != replicas:
        problems.append(f"{peers} peers listed, the values run {replicas} Alertmanagers")
    for labels, value in ctx.query("alertmanager_cluster_members"):
        if value != peers:
            problems.append(f"{labels.get('instance')} sees {value:.0f} members, {peers} peers listed")
    for labels, value in ctx.query("alertmanager_cluster_health_score > 0"):
        problems.append(f"{labels.get('instance')}: health score {value:g} (0 is healthy)")
    for labels, value in ctx.query("alertmanager_cluster_failed_peers > 0"):
        problems.append(f"{labels.get('instance')}: {value:.0f} failed peers")
    fail_if(problems, "Alertmanager cluster unhealthy")
    return f"cluster ready with {peers} peers, all healthy"


@check("alertmanager.notifications", "no notification failed and no alert was refused in the last hour",
       "alertmanager")
def alertmanager_notifications(ctx: Context) -> str:
    # A notification fails when Alertmanager gives up on it (notifications_failed_total,
    # what AlertmanagerNotificationsFailing watches); an attempt that failed and was
    # retried successfully is reported, not failed.
    by = "instance, integration, receiver_name"
    problems = [f"notifications not delivered ({row})"
                for row in increases(ctx, "alertmanager_notifications_failed_total", by)]
    problems += [f"invalid alerts refused ({row})"
                 for row in increases(ctx, "alertmanager_alerts_invalid_total", "instance")]
    if not ctx.query("alertmanager_notifications_total"):
        problems.append("Prometheus has no alertmanager_notifications_total: is Alertmanager scraped?")
    fail_if(problems, "notifications failed in the last hour")
    sent = sum(v for _, v in ctx.query(total("alertmanager_notifications_total")))
    retried = increases(ctx, "alertmanager_notification_requests_failed_total", by)
    return (f"{sent:.0f} notifications in the last hour, none failed; no alert refused"
            + (f"; delivery attempts failed and were retried: {listing(retried)}" if retried else ""))


@check("alerts.self_monitoring", "no alert watching the bundle itself is firing", "prometheus")
def self_monitoring(ctx: Context) -> str:
    watched = ctx.expected.self_monitoring
    active = ctx.client("prometheus").json("/api/v1/alerts")["data"]["alerts"]
    mine = [a for a in active if a["labels"].get("alertname") in watched]
    firing = [f"{a['labels']['alertname']} {a['labels'].get('instance', '')}".strip() +
              (f": {a['annotations'].get('summary')}" if a.get("annotations", {}).get("summary") else "")
              for a in mine if a["state"] == "firing"]
    fail_if(firing, f"{len(firing)} self-monitoring alerts firing")
    pending = sorted({a["labels"]["alertname"] for a in mine if a["state"] == "pending"})
    return (f"none of the {len(watched)} self-monitoring alerts firing"
            + (f" (pending: {', '.join(pending)})" if pending else ""))
