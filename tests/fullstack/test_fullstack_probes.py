"""Probe every service of the running stack, then send data through each path and find it
where it must land. Probes are retried until they pass or their deadline ends (see
conftest.py: Stack.wait), so an assertion inside a probe means "not yet"."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.fullstack


def need(stack, layer: str) -> None:
    if not stack.layer(layer):
        pytest.skip(f"layer {layer} is off in values")


def ok_json(response, *codes: int):
    """The JSON of a response whose status is one of `codes` (200 by default)."""
    assert response.status_code in (codes or (200,)), (
        f"HTTP {response.status_code} from {response.request.method} {response.url}: {response.text[:300]}")
    return response.json()


# ---------------------------------------------------------------- Grafana


def test_grafana_is_healthy(stack):
    need(stack, "dashboards")

    def probe():
        health = ok_json(stack.http.get(stack.url("grafana", "/api/health"), timeout=5))
        assert health.get("database") == "ok", f"database: {health.get('database')}"
        return health

    stack.wait("Grafana /api/health", probe, ["grafana"])


def test_grafana_loads_the_bundled_datasource_plugins_and_installs_none(stack):
    """Plugins are the image's (compose/dashboards.yml, README "Security defaults"): the
    datasources the bundle provisions load from the image's bundled copies, and Grafana's
    background installer, which downloads its preinstall list from grafana.com, never ran."""
    need(stack, "dashboards")
    auth = stack.grafana_admin

    def probe():
        plugins = ok_json(stack.http.get(stack.url("grafana", "/api/plugins"), params={"type": "datasource"},
                                         auth=auth, timeout=10))
        return {plugin["id"] for plugin in plugins}

    loaded = stack.wait("Grafana /api/plugins", probe, ["grafana"])
    assert {"prometheus", "elasticsearch", "jaeger"} <= loaded, f"datasource plugins loaded: {sorted(loaded)}"
    logs = stack.compose("logs", "--no-color", "grafana").stdout
    installs = [line for line in logs.splitlines() if "plugin.backgroundinstaller" in line or "Installing plugin" in line]
    assert not installs, "Grafana installed plugins at start:\n" + "\n".join(installs[:10])


def test_grafana_datasource_is_healthy(stack, datasource):
    need(stack, "dashboards")
    spec = stack.values["grafana"]["datasources"][datasource]
    auth = stack.grafana_admin
    uid = spec["uid"]
    # The datasource's key under grafana.datasources names the service behind it.
    services = ["grafana", datasource]

    def probe():
        found = ok_json(stack.http.get(stack.url("grafana", f"/api/datasources/uid/{uid}"), auth=auth, timeout=5))
        settings = ok_json(stack.http.get(stack.url("grafana", "/api/frontend/settings"), auth=auth, timeout=5))
        meta = settings["datasources"][found["name"]]["meta"]
        if meta.get("backend"):
            health = ok_json(stack.http.get(stack.url("grafana", f"/api/datasources/uid/{uid}/health"),
                                            auth=auth, timeout=30))
            assert health.get("status") == "OK", f"health: {health}"
            return health
        # Frontend-only plugins (Alertmanager) have no health endpoint: query through
        # Grafana's proxy what the plugin's own "Test" button queries.
        paths = {"alertmanager": "/api/v2/status"}
        if found["type"] not in paths:
            pytest.fail(f"datasource {uid} ({found['type']}) has no backend health check and no known probe")
        return ok_json(stack.http.get(stack.url("grafana", f"/api/datasources/proxy/uid/{uid}{paths[found['type']]}"),
                                      auth=auth, timeout=10))

    stack.wait(f"Grafana datasource {uid} healthy", probe, services)


def test_grafana_provisioned_every_dashboard(stack):
    need(stack, "dashboards")
    files = sorted((stack.root / "config" / "grafana" / "dashboards").rglob("*.json"))
    assert files, "no dashboards under config/grafana/dashboards"
    uids = [json.loads(path.read_text())["uid"] for path in files]
    auth = stack.grafana_admin

    def probe():
        missing = [uid for uid in uids
                   if stack.http.get(stack.url("grafana", f"/api/dashboards/uid/{uid}"), auth=auth, timeout=5).status_code != 200]
        assert not missing, f"not provisioned: {missing}"
        return True

    stack.wait("Grafana dashboards provisioned", probe, ["grafana"])


# ---------------------------------------------------------------- Elasticsearch, Logstash


def test_elasticsearch_cluster_is_healthy(stack):
    need(stack, "logs")

    def probe():
        health = ok_json(stack.http.get(stack.url("elasticsearch", "/_cluster/health"), auth=stack.elastic, timeout=10))
        assert health["status"] in ("green", "yellow"), f"cluster status {health['status']}"
        return health

    stack.wait("Elasticsearch cluster health", probe, ["elasticsearch"])


def test_logstash_pipeline_is_running(stack):
    need(stack, "logs")

    def probe():
        # The monitoring API (9600) is not published and listens on the stack network's
        # alias only: ask from inside the container.
        result = stack.compose("exec", "-T", "logstash", "curl", "-fsS", "http://logstash.stack:9600/_node/pipelines")
        assert result.returncode == 0, result.stderr.strip() or result.stdout.strip()
        pipelines = json.loads(result.stdout)["pipelines"]
        assert "main" in pipelines, f"pipelines: {list(pipelines)}"
        return pipelines

    stack.wait("Logstash pipeline main", probe, ["logstash"])


def data_stream(stack) -> str:
    spec = stack.values["logstash"]["data_stream"]
    return f"logs-{spec['dataset']}-{spec['namespace']}"


@pytest.fixture(scope="module")
def shipped_log(stack):
    """A JSON line sent to Logstash's TCP input, as found in Elasticsearch."""
    need(stack, "logs")
    if not stack.values["logstash"]["tcp_json"]["enabled"]:
        pytest.skip("logstash.tcp_json is off in values")
    token = f"fullstack-{secrets.token_hex(8)}"
    # With fields a sender may not decide: the pipeline must replace them, not append.
    line = json.dumps({"message": f"probe {token}", "level": "warn", "service": {"name": "fullstack-probe"},
                       "labels": {"cluster": "forged"}, "log": {"source": {"address": "203.0.113.9"}}}) + "\n"

    def send():
        with socket.create_connection(("127.0.0.1", stack.values["logstash"]["tcp_json"]["port"]), timeout=5) as conn:
            conn.sendall(line.encode())
        return True

    stack.wait("Logstash TCP input accepting", send, ["logstash"])
    # `fields` answers the same whatever shape the stored _source has.
    query = {"query": {"match_phrase": {"message": token}}, "fields": ["log.level", "labels.*", "log.source.address"],
             "_source": False}
    index = f"logs-{stack.values['logstash']['data_stream']['dataset']}-*"

    def probe():
        found = ok_json(stack.http.post(stack.url("elasticsearch", f"/{index}/_search"), json=query,
                                        auth=stack.elastic, timeout=10), 200, 404)
        hits = found.get("hits", {}).get("hits", [])
        assert hits, f"no document with {token} in {index} yet"
        return hits[0]

    return stack.wait(f"log line {token} in Elasticsearch", probe, ["logstash", "elasticsearch"])


def test_log_line_sent_to_logstash_is_found_in_elasticsearch(stack, shipped_log):
    fields = shipped_log["fields"]
    assert shipped_log["_index"].startswith(f".ds-{data_stream(stack)}-")
    assert fields["log.level"] == ["warn"]  # the pipeline's rename of `level`
    # Replaced, not appended: the sender's "forged" is gone.
    assert fields["labels.cluster"] == [stack.values["cluster"]]
    assert fields["labels.environment"] == [stack.values["environment"]]
    # The peer address of the connection (Docker's proxy for the published port), not the
    # address the sender wrote.
    [address] = fields["log.source.address"]
    assert address != "203.0.113.9" and socket.inet_aton(address), address


def test_logs_data_stream_is_managed_by_the_retention_policy(stack, shipped_log):
    stream = data_stream(stack)
    info = ok_json(stack.http.get(stack.url("elasticsearch", f"/_data_stream/{stream}"), auth=stack.elastic, timeout=10))
    policy_name = info["data_streams"][0].get("ilm_policy")
    assert policy_name, f"{stream} has no ILM policy: {info}"
    policy = ok_json(stack.http.get(stack.url("elasticsearch", f"/_ilm/policy/{policy_name}"), auth=stack.elastic,
                                    timeout=10))
    phases = policy[policy_name]["policy"]["phases"]
    assert phases["delete"]["min_age"] == f"{stack.values['elasticsearch']['retention_days']}d"
    assert "rollover" in phases["hot"]["actions"]
    explain = ok_json(stack.http.get(stack.url("elasticsearch", f"/{stream}/_ilm/explain"), auth=stack.elastic,
                                     timeout=10))
    assert explain["indices"]
    for index, state in explain["indices"].items():
        assert state["managed"] is True, index
        assert state["policy"] == policy_name, index


def es_user(stack, key: str) -> tuple[str, str]:
    """(username, password) of a user of values elasticsearch.users or a service user."""
    paths = {"logs_viewer": ("elasticsearch", "users", "logs_viewer"),
             "kibana_admin": ("elasticsearch", "users", "kibana_admin"),
             "logstash": ("logstash", "elasticsearch"), "exporter": ("elasticsearch", "exporter")}
    node = stack.values
    for part in paths[key]:
        node = node[part]
    return node["username"], stack.secret(node["password_secret"])


def test_each_elasticsearch_user_can_do_its_job_and_no_more(stack, shipped_log):
    """The roles of bundle/elasticsearch.yaml, against the real Elasticsearch."""
    stream = data_stream(stack)
    logs = f"logs-{stack.values['logstash']['data_stream']['dataset']}-*"
    es = lambda path: stack.url("elasticsearch", path)  # noqa: E731
    viewer, writer, exporter = es_user(stack, "logs_viewer"), es_user(stack, "logstash"), es_user(stack, "exporter")
    # The logs viewer searches the logs, and writes nothing.
    assert stack.http.post(es(f"/{logs}/_search"), json={"size": 1}, auth=viewer, timeout=10).status_code == 200
    assert stack.http.post(es(f"/{stream}/_doc"), json={"@timestamp": "2026-01-01T00:00:00Z"}, auth=viewer,
                           timeout=10).status_code == 403
    # Logstash's user may neither read the logs nor touch lifecycle policies or templates.
    assert stack.http.post(es(f"/{logs}/_search"), json={"size": 1}, auth=writer, timeout=10).status_code == 403
    assert stack.http.put(es("/_ilm/policy/forged"), json={"policy": {"phases": {"hot": {"actions": {}}}}},
                          auth=writer, timeout=10).status_code == 403
    assert stack.http.put(es("/_index_template/forged"), json={"index_patterns": ["forged-*"]},
                          auth=writer, timeout=10).status_code == 403
    # The exporter reads cluster health, and no document.
    assert stack.http.get(es("/_cluster/health"), auth=exporter, timeout=10).status_code == 200
    assert stack.http.post(es(f"/{logs}/_search"), json={"size": 1}, auth=exporter, timeout=10).status_code == 403


# ---------------------------------------------------------------- Kibana


def test_kibana_is_available(stack):
    need(stack, "logs")

    def probe():
        status = ok_json(stack.http.get(stack.url("kibana", "/api/status"), auth=stack.elastic, timeout=10))
        level = status["status"]["overall"]["level"]
        assert level == "available", f"overall level {level}"
        return status

    stack.wait("Kibana /api/status available", probe, ["kibana"])


def test_kibana_has_the_logs_data_view(stack):
    need(stack, "logs")
    title = f"logs-{stack.values['logstash']['data_stream']['dataset']}-*"

    def probe():
        # As the Kibana administrator people log in as (kibana-setup made it as that user).
        views = ok_json(stack.http.get(stack.url("kibana", "/api/data_views"), auth=es_user(stack, "kibana_admin"),
                                       timeout=10))
        titles = [view["title"] for view in views["data_view"]]
        assert title in titles, f"data views: {titles} (kibana-setup runs after up --wait)"
        return titles

    stack.wait(f"Kibana data view {title}", probe, ["kibana"])


# ---------------------------------------------------------------- Jaeger


def test_span_sent_over_otlp_http_is_found_in_jaeger(stack):
    need(stack, "tracing")
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    payload = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "fullstack-probe"}}]},
        "scopeSpans": [{"scope": {"name": "fullstack"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "probe", "kind": 2,
            "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
        }]}],
    }]}

    def send():
        return ok_json(stack.http.post(stack.url("otlp_http", "/v1/traces"), json=payload, timeout=10))

    stack.wait("Jaeger OTLP/HTTP receiver", send, ["jaeger"])

    def probe():
        found = ok_json(stack.http.get(stack.url("jaeger_ui", f"/api/traces/{trace_id}"), timeout=10), 200, 404)
        spans = [span["spanID"] for trace in found.get("data") or [] for span in trace["spans"]]
        assert span_id in spans, f"trace {trace_id}: spans {spans}"
        return spans

    stack.wait(f"trace {trace_id} in Jaeger", probe, ["jaeger"])


ZIPKIN_PROBE = """
import json, sys, time, urllib.request
trace_id, span_id = sys.argv[1], sys.argv[2]
now = int(time.time() * 1e6)
span = [{"traceId": trace_id, "id": span_id, "name": "probe", "timestamp": now - 5000, "duration": 5000,
         "localEndpoint": {"serviceName": "fullstack-zipkin-probe"}}]
request = urllib.request.Request("http://jaeger:9411/api/v2/spans", data=json.dumps(span).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
print(urllib.request.urlopen(request, timeout=10).status)
"""


def test_span_sent_over_zipkin_is_found_in_jaeger(stack):
    """The guide's apps also sent Zipkin spans to jaeger:9411 on their network."""
    need(stack, "tracing")
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)

    def send():
        # From the demo platform's api-gateway, on the app network, as the apps send.
        out = subprocess.run(["docker", "compose", "--env-file", str(stack.root / ".env"), "-f",
                              str(stack.root / "tests" / "platform" / "compose.yml"), "exec", "-T", "api-gateway",
                              "python3", "-c", ZIPKIN_PROBE, trace_id, span_id], capture_output=True, text=True)
        assert out.stdout.strip() == "202", out.stdout + out.stderr
        return True

    stack.wait("Jaeger Zipkin receiver on the app network", send, ["jaeger"])

    def probe():
        found = ok_json(stack.http.get(stack.url("jaeger_ui", f"/api/traces/{trace_id}"), timeout=10), 200, 404)
        spans = [span["spanID"] for trace in found.get("data") or [] for span in trace["spans"]]
        assert span_id in spans, f"trace {trace_id}: spans {spans}"
        return spans

    stack.wait(f"Zipkin trace {trace_id} in Jaeger", probe, ["jaeger"])


# ---------------------------------------------------------------- APM Server


def test_transaction_sent_to_apm_server_is_found_in_elasticsearch(stack):
    need(stack, "apm")
    transaction_id, trace_id = secrets.token_hex(8), secrets.token_hex(16)
    events = [
        {"metadata": {"service": {"name": "fullstack-probe", "environment": stack.values["environment"],
                                  "agent": {"name": "python", "version": "0.0.0"}, "language": {"name": "python"}}}},
        {"transaction": {"id": transaction_id, "trace_id": trace_id, "name": "GET /probe", "type": "request",
                         "duration": 12.5, "timestamp": time.time_ns() // 1000, "result": "HTTP 2xx",
                         "outcome": "success", "sampled": True, "span_count": {"started": 0}}},
    ]
    body = "".join(json.dumps(event) + "\n" for event in events)
    headers = {"Content-Type": "application/x-ndjson",
               "Authorization": f"Bearer {stack.secret(stack.values['apm']['secret_token_secret'])}"}

    def send():
        response = stack.http.post(stack.url("apm_server", "/intake/v2/events"), data=body, headers=headers, timeout=10)
        assert response.status_code == 202, f"intake answered HTTP {response.status_code}: {response.text[:300]}"
        return True

    stack.wait("APM Server intake", send, ["apm-server"])
    query = {"query": {"term": {"transaction.id": transaction_id}}, "fields": ["trace.id", "service.name"],
             "_source": False}

    def probe():
        found = ok_json(stack.http.post(stack.url("elasticsearch", "/traces-apm*/_search"), json=query,
                                        auth=stack.elastic, timeout=10))
        hits = found["hits"]["hits"]
        assert hits, f"transaction {transaction_id} not in traces-apm* yet"
        return hits[0]

    hit = stack.wait(f"transaction {transaction_id} in Elasticsearch", probe, ["apm-server", "elasticsearch"])
    assert hit["fields"]["trace.id"] == [trace_id]
    assert hit["fields"]["service.name"] == ["fullstack-probe"]
