"""The checks of the optional layers: Grafana (dashboards), Elasticsearch, Logstash and
Kibana (logs), Jaeger (tracing), APM Server (apm). Each reads the API the service
documents for health, or the exporter metrics Prometheus already scrapes where the
service's own API is not published (Logstash's monitoring API stays inside the stack)."""

from __future__ import annotations

import time

from .checks import Context, Fail, Skip, check, fail_if, listing
from .expect import JAEGER_JOB, LOGSTASH_JOB
from .http import HttpStatus, SmokeError
from .queries import logstash_dlq_growth, logstash_events, otelcol

# ---------------------------------------------------------------- Grafana


@check("grafana.health", "Grafana is up and its database is ok", "grafana", layer="dashboards")
def grafana_health(ctx: Context) -> str:
    # https://grafana.com/docs/grafana/latest/developers/http_api/other/#health-api
    health = ctx.client("grafana").json("/api/health")
    if health.get("database") != "ok":
        raise Fail(f"Grafana's database is {health.get('database')!r}")
    return f"Grafana {health.get('version', '')} is up, database ok"


@check("grafana.datasources", "every provisioned Grafana datasource passes its health check", "grafana",
       layer="dashboards")
def grafana_datasources(ctx: Context) -> str:
    api = ctx.client("grafana")
    problems, ok = [], []
    for key, uid in ctx.expected.datasources.items():
        # The "Test" button's check; needs only the datasources:query permission (Viewer).
        # 200 {"status": "OK"}, 400 {"status": "ERROR", "message"}, 404 when the plugin
        # has no backend health check. https://github.com/grafana/grafana/blob/main/pkg/api/datasources.go
        response = api.get(f"/api/datasources/uid/{uid}/health")
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code == 200 and body.get("status") == "OK":
            ok.append(key)
        elif response.status_code == 404 and key == "alertmanager":
            # Alertmanager's datasource has no backend check: read through Grafana's proxy
            # what the plugin itself reads.
            proxied = api.get(f"/api/datasources/proxy/uid/{uid}/api/v2/status")
            if proxied.status_code == 200:
                ok.append(key)
            else:
                problems.append(f"{key} ({uid}): Alertmanager through Grafana's proxy answered HTTP "
                                f"{proxied.status_code}: {proxied.text.strip()[:150]}")
        elif response.status_code in (401, 403):
            problems.append(f"{key} ({uid}): HTTP {response.status_code}: the credentials may not query it "
                            "(a Viewer service account token is enough)")
        else:
            problems.append(f"{key} ({uid}): {body.get('status', f'HTTP {response.status_code}')}: "
                            f"{body.get('message') or response.text.strip()[:150]}")
    fail_if(problems, f"{len(problems)} of {len(ctx.expected.datasources)} datasources broken")
    return f"{len(ok)} datasources healthy: {', '.join(ok)}"


# ---------------------------------------------------------------- Elasticsearch, Logstash, Kibana


@check("elasticsearch.health", "Elasticsearch's cluster health is green (yellow on a single node)",
       "elasticsearch", layer="logs")
def elasticsearch_health(ctx: Context) -> str:
    # https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-cluster-health
    health = ctx.client("elasticsearch").json("/_cluster/health")
    status, nodes = health["status"], health["number_of_data_nodes"]
    where = (f"cluster {health['cluster_name']}: {status}, {nodes} data nodes, "
             f"{health['unassigned_shards']} unassigned shards")
    if status == "green":
        return where
    if status == "yellow" and nodes == 1:
        # As the ElasticsearchClusterYellow alert: one node can never place replicas.
        return where + " (yellow is expected on a single node: replicas cannot be placed)"
    raise Fail(where)


@check("elasticsearch.logs_fresh", "the logs data stream received a document within smoke.logs_max_age",
       "elasticsearch", layer="logs")
def elasticsearch_logs_fresh(ctx: Context) -> str:
    stream = ctx.expected.logs_stream
    # maximum_timestamp: the newest @timestamp of the stream, in milliseconds; needs the
    # `monitor` index privilege. https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-indices-data-streams-stats-1
    response = ctx.client("elasticsearch").get(f"/_data_stream/{stream}/_stats")
    if response.status_code == 404:
        raise Fail(f"data stream {stream} does not exist: no log has ever been stored")
    if response.status_code != 200:
        raise HttpStatus(response.status_code, response.url, response.text)
    found = response.json()["data_streams"]
    newest = max(s["maximum_timestamp"] for s in found) / 1000 if found else 0
    age = time.time() - newest
    limit = ctx.expected.values["smoke"]["logs_max_age"]
    if not newest or age > ctx.expected.logs_max_age:
        raise Fail(f"newest document of {stream} is {age / 60:.0f} min old (smoke.logs_max_age {limit})")
    return f"newest document of {stream} is {age:.0f}s old (limit {limit})"


@check("logstash.pipelines", "events flow out of every Logstash pipeline and no dead letter queue grows",
       "prometheus", layer="logs")
def logstash_pipelines(ctx: Context) -> str:
    # Logstash's node stats (pipeline events, dead letter queue), as logstash-exporter
    # relays them to Prometheus: the monitoring API on 9600 is not published.
    if LOGSTASH_JOB not in ctx.expected.jobs:
        raise Skip(f"no scrape job {LOGSTASH_JOB} (logstash-exporter) in the values: pipelines not visible")
    window = ctx.expected.values["smoke"]["logs_max_age"]
    out = {labels.get("pipeline", ""): value for labels, value in ctx.query(logstash_events(LOGSTASH_JOB, "out", window))}
    if not out:
        raise Fail("logstash-exporter reports no pipeline: Logstash is down or starting (see LogstashDown)")
    came = {labels.get("pipeline", ""): value for labels, value in ctx.query(logstash_events(LOGSTASH_JOB, "in", window))}
    problems = []
    for pipeline, value in sorted(out.items()):
        if value <= 0:
            problems.append(f"pipeline {pipeline}: no event out in {window}"
                            + (f" while {came[pipeline]:.0f} came in (stalled)" if came.get(pipeline, 0) > 0
                               else " and none came in"))
    problems += [f"pipeline {labels.get('pipeline')}: dead letter queue grew by {value:.0f} bytes in the last hour "
                 "(Elasticsearch rejects events)" for labels, value in ctx.query(logstash_dlq_growth(LOGSTASH_JOB))]
    fail_if(problems, "Logstash pipelines not flowing")
    return f"{len(out)} pipelines, {sum(out.values()):.0f} events out in {window}, no dead letter queue growth"


@check("kibana.status", "Kibana reports itself available", "kibana", layer="logs")
def kibana_status(ctx: Context) -> str:
    # Without credentials /api/status answers the overall level only.
    # https://www.elastic.co/docs/api/doc/kibana/operation/operation-get-status
    level = ctx.client("kibana").json("/api/status", ok=(200, 503))["status"]["overall"]["level"]
    if level != "available":
        raise Fail(f"Kibana's overall status is {level}")
    return "Kibana is available"


# ---------------------------------------------------------------- Jaeger


@check("jaeger.query", "Jaeger's query API answers", "jaeger", layer="tracing")
def jaeger_query(ctx: Context) -> str:
    services = ctx.client("jaeger").json("/api/services").get("data") or []
    return f"query API answers; {len(services)} services have sent spans: {listing(sorted(services))}"


@check("jaeger.spans", "Jaeger refused no span and failed to store none in the last hour", "prometheus",
       layer="tracing")
def jaeger_spans(ctx: Context) -> str:
    # Jaeger v2's own OpenTelemetry Collector metrics (job jaeger, port 8888).
    if JAEGER_JOB not in ctx.expected.jobs:
        raise Skip(f"no scrape job {JAEGER_JOB} in the values: Jaeger's span counters not visible")
    problems = [f"receiver {labels.get('receiver')} ({labels.get('transport')}) refused {value:.0f} spans"
                for labels, value in ctx.query(otelcol("receiver_refused_spans", JAEGER_JOB, "receiver, transport"))
                if value > 0]
    problems += [f"exporter {labels.get('exporter')} failed to store {value:.0f} spans"
                 for labels, value in ctx.query(otelcol("exporter_send_failed_spans", JAEGER_JOB, "exporter"))
                 if value > 0]
    fail_if(problems, "Jaeger loses spans")
    accepted = sum(v for _, v in ctx.query(otelcol("receiver_accepted_spans", JAEGER_JOB, "receiver")))
    return f"{accepted:.0f} spans accepted in the last hour, none refused or failed"


# ---------------------------------------------------------------- APM Server


@check("apm.ready", "APM Server is up and ready to publish to Elasticsearch", "apm-server", layer="apm")
def apm_ready(ctx: Context) -> str:
    # GET / with the secret token answers build information and publish_ready.
    # https://www.elastic.co/docs/solutions/observability/apm/apm-server/information-api
    api = ctx.client("apm-server")
    if "Authorization" not in api.endpoint.headers:
        raise SmokeError("no APM secret token: publish_ready is only shown to agents that send it "
                         "(SMOKE_APM_SECRET_TOKEN, or .env locally)")
    response = api.get("/")
    if response.status_code in (401, 403):
        raise Fail(f"APM Server refused the secret token (HTTP {response.status_code})")
    if response.status_code != 200:
        raise HttpStatus(response.status_code, response.url, response.text)
    info = response.json()
    if info.get("publish_ready") is not True:
        raise Fail(f"APM Server {info.get('version', '')} is up but not ready to publish "
                   f"(publish_ready {info.get('publish_ready')!r}): Elasticsearch unreachable or refusing it")
    return f"APM Server {info.get('version', '')} is up and ready to publish"
