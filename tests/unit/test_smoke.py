"""make smoke without a stack: the checks of the layers that cannot run here (Grafana,
Elasticsearch, Logstash, Kibana, Jaeger, APM Server) against a loopback HTTP server that
answers as each service's documentation says it does; the read-only guard; the JUnit and
JSON reports as CI systems read them; the exit codes; smoke-notify's refusal.

The answers are written from the upstream API documentation linked at each fake, not
from the checks' code: these prove the checks read documented answers right, not that
the services answer so (the full stack's own probes, tests/fullstack, run where the
images can be pulled)."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from junitparser import Failure, JUnitXml, Skipped

from bundle.checks import check_values
from bundle.errors import InputError
from bundle.notifications import route
from bundle.smoke import cli, layer_checks, notify  # noqa: F401  (registers the checks)
from bundle.smoke.checks import CHECKS, Context, Fail, Skip
from bundle.smoke.expect import Expected
from bundle.smoke.http import Budget, Client, Endpoint, ReadOnlySession, SmokeError, Unreachable
from bundle.smoke.queries import grew, logstash_dlq_growth, logstash_events, otelcol, total
from bundle.smoke.report import Report, Result, junit, to_json
from bundle.values import Source, merge

pytestmark = pytest.mark.unit


class Fake:
    """A loopback HTTP server: path -> (status, JSON body) or a function of the query."""

    def __init__(self):
        self.routes: dict = {}
        self.seen: list[tuple[str, str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.seen.append((self.command, url.path, dict(self.headers)))
                answer = fake.routes.get(url.path, (404, {"message": "Not found"}))
                status, body = answer(query) if callable(answer) else answer
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def fake():
    server = Fake()
    yield server
    server.server.shutdown()


def context(values: dict, fake: Fake, **headers) -> Context:
    budget, session = Budget(30), ReadOnlySession()
    clients = {name: Client(Endpoint(name, f"{fake.url}/{name}", headers=headers.get(name, {})), session, budget)
               for name in ("prometheus", "alertmanager", "grafana", "elasticsearch", "kibana", "jaeger", "apm-server")}
    return Context(Expected(values), clients, local=False)


def run(check_id: str, ctx: Context) -> tuple[str, str]:
    """(status, message) of one check, as the runner reports it."""
    check = next(c for c in CHECKS if c.id == check_id)
    try:
        return "pass", check.run(ctx)
    except Fail as failure:
        return "fail", failure.message
    except Skip as skip:
        return "skip", str(skip)
    except SmokeError as error:
        return "fail", str(error)


def prometheus_answers(fake: Fake, results: dict[str, list]) -> None:
    """/api/v1/query answering each expression of `results` with its vector (the query
    API's documented shape); any other expression is refused with HTTP 400, so a check
    asking something unforeseen fails the test."""
    # https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
    def answer(query):
        expr = query.get("query")
        if expr not in results:
            return 400, {"status": "error", "errorType": "bad_data", "error": f"unexpected query {expr}"}
        vector = [{"metric": labels, "value": [time.time(), str(value)]} for labels, value in results[expr]]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": vector}}
    fake.routes["/prometheus/api/v1/query"] = answer


def test_prometheus_notifications_count_the_central_prometheus_only(values, fake):
    """With remote agents (values hosts), their Prometheus' own metrics reach the central
    one: an agent sends no alerts and discovers no Alertmanager, which is no failure."""
    central = {"job": "prometheus", "instance": "localhost:9090"}
    agent = {"job": "prometheus-agent", "instance": "host-a"}
    discovered = "prometheus_notifications_alertmanagers_discovered"
    answers = {grew("prometheus_notifications_errors_total", "instance, alertmanager"): [],
               grew("prometheus_notifications_dropped_total", "instance"): [],
               total("prometheus_notifications_sent_total"): [({}, 12)],
               # Unfiltered, the agents' series too; by job, the central's alone.
               discovered: [(central, 2), (agent, 0)],
               discovered + '{job="prometheus"}': [(central, 2)]}
    prometheus_answers(fake, answers)
    assert run("prometheus.notifications", context(values, fake)) == (
        "pass", "2 Alertmanager(s) discovered, 12 alerts sent in the last hour, none failed or dropped")
    answers[discovered + '{job="prometheus"}'] = [(central, 0)]
    status, message = run("prometheus.notifications", context(values, fake))
    assert status == "fail" and "discovered no Alertmanager" in message, message


# ---------------------------------------------------------------- Grafana


def test_grafana_health(values, fake):
    # https://grafana.com/docs/grafana/latest/developers/http_api/other/#health-api
    fake.routes["/grafana/api/health"] = (200, {"commit": "abc", "database": "ok", "version": "13.2.1"})
    assert run("grafana.health", context(values, fake)) == ("pass", "Grafana 13.2.1 is up, database ok")
    fake.routes["/grafana/api/health"] = (503, {"database": "failing"})
    assert run("grafana.health", context(values, fake))[0] == "fail"


def datasource_health(fake, values, **answers):
    """Every provisioned datasource answers OK unless `answers` says otherwise."""
    found = values["grafana"]["datasources"]
    # The long-term stores' datasources sit one level down, by their name in Grafana.
    specs = {**{key: spec for key, spec in found.items() if key != "longterm"},
             **{f"longterm {name}": spec for name, spec in found["longterm"].items()}}
    for key, spec in specs.items():
        path = f"/grafana/api/datasources/uid/{spec['uid']}/health"
        fake.routes[path] = answers.get(key, (200, {"status": "OK", "message": "Data source is working"}))


def test_grafana_datasources_pass_when_each_answers_ok(values, fake):
    datasource_health(fake, values)
    status, message = run("grafana.datasources", context(values, fake))
    assert status == "pass" and "4 datasources healthy" in message, message


def test_grafana_datasource_broken_fails_naming_it(values, fake):
    # A backend plugin's failed check: HTTP 400 {"status": "ERROR", "message": ...}
    # (Grafana pkg/api/datasources.go, checkDatasourceHealth).
    datasource_health(fake, values, elasticsearch=(400, {
        "status": "ERROR", "message": "Unable to connect with Elasticsearch. Please check the server logs"}))
    status, message = run("grafana.datasources", context(values, fake))
    assert status == "fail", message
    assert "elasticsearch (elasticsearch-logs): ERROR: Unable to connect with Elasticsearch" in message


def test_grafana_alertmanager_datasource_is_read_through_the_proxy(values, fake):
    # No backend health check for the alertmanager type: HTTP 404; the proxy then.
    uid = values["grafana"]["datasources"]["alertmanager"]["uid"]
    datasource_health(fake, values, alertmanager=(404, {"message": "Not found"}))
    fake.routes[f"/grafana/api/datasources/proxy/uid/{uid}/api/v2/status"] = (200, {"cluster": {"status": "ready"}})
    assert run("grafana.datasources", context(values, fake))[0] == "pass"
    fake.routes[f"/grafana/api/datasources/proxy/uid/{uid}/api/v2/status"] = (502, "Bad Gateway")
    status, message = run("grafana.datasources", context(values, fake))
    assert status == "fail" and "HTTP 502" in message, message


def test_grafana_credentials_that_may_not_query_fail_with_the_permission_needed(values, fake):
    datasource_health(fake, values, prometheus=(403, {"message": "Access denied to datasource"}))
    status, message = run("grafana.datasources", context(values, fake))
    assert status == "fail" and "Viewer" in message, message


def test_grafana_datasources_of_layers_that_are_off_are_not_expected(values, fake):
    off = merge(values, {"layers": {"logs": False, "tracing": False, "apm": False}})
    datasource_health(fake, off)
    status, message = run("grafana.datasources", context(off, fake))
    assert status == "pass" and "2 datasources healthy: prometheus, alertmanager" in message


# ---------------------------------------------------------------- Elasticsearch, Kibana


def cluster_health(status: str, nodes: int, unassigned: int = 0) -> dict:
    # https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-cluster-health
    return {"cluster_name": "docker-cluster", "status": status, "timed_out": False, "number_of_nodes": nodes,
            "number_of_data_nodes": nodes, "active_primary_shards": 10, "active_shards": 10,
            "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned,
            "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0, "active_shards_percent_as_number": 100.0}


@pytest.mark.parametrize("status, nodes, outcome", [
    ("green", 1, "pass"), ("yellow", 1, "pass"), ("yellow", 3, "fail"), ("red", 1, "fail"), ("red", 3, "fail")])
def test_elasticsearch_health(values, fake, status, nodes, outcome):
    fake.routes["/elasticsearch/_cluster/health"] = (200, cluster_health(status, nodes, 0 if status == "green" else 4))
    assert run("elasticsearch.health", context(values, fake))[0] == outcome


def data_stream_stats(stream: str, newest_ms: int) -> dict:
    # https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-indices-data-streams-stats-1
    return {"_shards": {"total": 2, "successful": 1, "failed": 0}, "data_stream_count": 1, "backing_indices": 1,
            "total_store_size_bytes": 7000, "data_streams": [
                {"data_stream": stream, "backing_indices": 1, "store_size_bytes": 7000,
                 "maximum_timestamp": newest_ms}]}


def test_elasticsearch_logs_fresh_within_the_values_limit(values, fake):
    stream = "logs-platform-default"
    path = f"/elasticsearch/_data_stream/{stream}/_stats"
    fake.routes[path] = (200, data_stream_stats(stream, int((time.time() - 60) * 1000)))
    assert run("elasticsearch.logs_fresh", context(values, fake))[0] == "pass"
    fake.routes[path] = (200, data_stream_stats(stream, int((time.time() - 3600) * 1000)))
    status, message = run("elasticsearch.logs_fresh", context(values, fake))
    assert status == "fail" and "60 min old (smoke.logs_max_age 15m)" in message, message
    longer = merge(values, {"smoke": {"logs_max_age": "2h"}})
    assert run("elasticsearch.logs_fresh", context(longer, fake))[0] == "pass"


def test_elasticsearch_logs_stream_missing_fails(values, fake):
    fake.routes["/elasticsearch/_data_stream/logs-platform-default/_stats"] = (404, {
        "error": {"type": "index_not_found_exception", "reason": "no such index [logs-platform-default]"},
        "status": 404})
    status, message = run("elasticsearch.logs_fresh", context(values, fake))
    assert status == "fail" and "does not exist" in message


def test_kibana_status(values, fake):
    # Unauthenticated /api/status: the overall level only; 503 while not available.
    fake.routes["/kibana/api/status"] = (200, {"status": {"overall": {"level": "available"}}})
    assert run("kibana.status", context(values, fake))[0] == "pass"
    fake.routes["/kibana/api/status"] = (503, {"status": {"overall": {"level": "unavailable"}}})
    assert run("kibana.status", context(values, fake)) == ("fail", "Kibana's overall status is unavailable")


# ---------------------------------------------------------------- Logstash (through Prometheus)


def logstash(fake, out: dict, came: dict, dlq: dict) -> None:
    prometheus_answers(fake, {
        logstash_events("logstash", "out", "15m"): [({"pipeline": p}, v) for p, v in out.items()],
        logstash_events("logstash", "in", "15m"): [({"pipeline": p}, v) for p, v in came.items()],
        logstash_dlq_growth("logstash"): [({"pipeline": p}, v) for p, v in dlq.items()],
    })


def test_logstash_events_flowing(values, fake):
    logstash(fake, out={"main": 1200}, came={"main": 1200}, dlq={})
    status, message = run("logstash.pipelines", context(values, fake))
    assert status == "pass" and "1200 events out in 15m" in message


@pytest.mark.parametrize("out, came, dlq, expected", [
    ({"main": 0}, {"main": 300}, {}, "stalled"),
    ({"main": 0}, {"main": 0}, {}, "none came in"),
    ({"main": 50}, {"main": 50}, {"main": 4096}, "dead letter queue grew by 4096 bytes"),
    ({}, {}, {}, "reports no pipeline"),
])
def test_logstash_fails_on_its_conditions(values, fake, out, came, dlq, expected):
    logstash(fake, out, came, dlq)
    status, message = run("logstash.pipelines", context(values, fake))
    assert status == "fail" and expected in message, message


# ---------------------------------------------------------------- Jaeger


def test_jaeger_query_api(values, fake):
    # Jaeger query's HTTP API (the UI's): {"data": [service names], "total": n}.
    fake.routes["/jaeger/api/services"] = (200, {"data": ["api-gateway", "jaeger"], "total": 2,
                                                 "limit": 0, "offset": 0, "errors": None})
    status, message = run("jaeger.query", context(values, fake))
    assert status == "pass" and "2 services" in message


def jaeger(fake, refused: float, failed: float, accepted: float) -> None:
    prometheus_answers(fake, {
        otelcol("receiver_refused_spans", "jaeger", "receiver, transport"):
            [({"receiver": "otlp", "transport": "grpc"}, refused)],
        otelcol("exporter_send_failed_spans", "jaeger", "exporter"): [({"exporter": "jaeger_storage_exporter"}, failed)],
        otelcol("receiver_accepted_spans", "jaeger", "receiver"): [({"receiver": "otlp"}, accepted)],
    })


def test_jaeger_spans(values, fake):
    jaeger(fake, refused=0, failed=0, accepted=5000)
    assert run("jaeger.spans", context(values, fake)) == (
        "pass", "5000 spans accepted in the last hour, none refused or failed")
    jaeger(fake, refused=12, failed=0, accepted=5000)
    assert "refused 12 spans" in run("jaeger.spans", context(values, fake))[1]
    jaeger(fake, refused=0, failed=30, accepted=5000)
    assert "failed to store 30 spans" in run("jaeger.spans", context(values, fake))[1]


# ---------------------------------------------------------------- APM Server


def test_apm_server_ready_to_publish(values, fake):
    # GET / with the secret token: build information and publish_ready.
    token = {"apm-server": {"Authorization": "Bearer s3cret"}}
    fake.routes["/apm-server/"] = (200, {"build_date": "2026-01-01T00:00:00Z", "build_sha": "abc",
                                         "publish_ready": True, "version": "9.5.6"})
    assert run("apm.ready", context(values, fake, **token))[0] == "pass"
    assert fake.seen[-1][2]["Authorization"] == "Bearer s3cret"
    fake.routes["/apm-server/"] = (200, {"build_date": "x", "build_sha": "abc", "publish_ready": False,
                                         "version": "9.5.6"})
    status, message = run("apm.ready", context(values, fake, **token))
    assert status == "fail" and "not ready to publish" in message
    fake.routes["/apm-server/"] = (401, {"error": "authentication failed: missing or invalid secret token"})
    assert "refused the secret token" in run("apm.ready", context(values, fake, **token))[1]
    assert "no APM secret token" in run("apm.ready", context(values, fake))[1]


# ---------------------------------------------------------------- read-only, unreachable


def test_the_session_refuses_every_method_but_get_before_sending(fake):
    session = ReadOnlySession()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        with pytest.raises(PermissionError):
            session.request(method, fake.url + "/api/v2/silences")
    session.get(fake.url + "/-/healthy", timeout=5)
    assert [(m, p) for m, p, _ in fake.seen] == [("GET", "/-/healthy")]


def test_smoke_code_sends_nothing_but_gets():
    """No module of the smoke checks calls a writing method; notify.py is the one exception."""
    from pathlib import Path

    import bundle.smoke as package
    for path in Path(package.__file__).parent.glob("*.py"):
        if path.name == "notify.py":
            continue
        text = path.read_text()
        for verb in (".post(", ".put(", ".delete(", ".patch(", '"POST"', '"PUT"', '"DELETE"'):
            assert verb not in text.replace('("GET", "HEAD")', ""), (path.name, verb)


def test_a_service_that_does_not_answer_is_asked_once():
    budget = Budget(30)
    client = Client(Endpoint("prometheus", "http://127.0.0.1:9"), ReadOnlySession(), budget)
    with pytest.raises(Unreachable) as first:
        client.get("/-/healthy")
    started = time.monotonic()
    with pytest.raises(Unreachable) as second:
        client.get("/api/v1/rules")
    assert str(second.value) == str(first.value) and "did not answer" in str(first.value)
    assert time.monotonic() - started < 0.1


# ---------------------------------------------------------------- reports and exit codes


def sample_report() -> Report:
    report = Report(mode="remote", endpoints={"prometheus": "https://prom.example.com"})
    report.results = [
        Result("prometheus.targets", "every scrape target of the values is up", "pass", "9 of 9 targets up", [], 0.05),
        Result("prometheus.rules", "every rule healthy", "fail", "1 problems in rule evaluation",
               ["rule X (group custom): err: vector cannot contain metrics with the same labelset"], 0.01),
        Result("stack.containers", "every service running", "skip", "remote stack: not visible", [], 0.0),
    ]
    report.seconds = 0.2
    return report


def test_junit_report_is_read_as_ci_systems_read_it(tmp_path):
    path = tmp_path / "smoke.xml"
    path.write_bytes(junit(sample_report()))
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["smoke"]
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (3, 1, 1, 0)
    cases = {case.name: case for case in suite}
    assert cases["prometheus.targets"].is_passed
    failure = [r for r in cases["prometheus.rules"].result if isinstance(r, Failure)]
    assert failure and failure[0].message == "1 problems in rule evaluation"
    assert "same labelset" in failure[0].text
    assert any(isinstance(r, Skipped) for r in cases["stack.containers"].result)
    assert cases["prometheus.rules"].classname == "smoke.prometheus"


def test_json_report_has_the_documented_shape():
    data = json.loads(to_json(sample_report(), 1))
    assert data["passed"] is False and data["exit_code"] == 1 and data["mode"] == "remote"
    assert data["summary"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert [c["status"] for c in data["checks"]] == ["pass", "fail", "skip"]
    assert set(data["checks"][1]) == {"id", "title", "status", "message", "details", "seconds"}


def smoke_main(monkeypatch, capsys, *args, env: dict | None = None) -> tuple[int, str, str]:
    """`python -m bundle.smoke ARGS` in this process, with only `env` as SMOKE_* variables."""
    for name in [n for n in os.environ if n.startswith("SMOKE_")]:
        monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    try:
        code = cli.main(list(args))
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_a_remote_stack_that_does_not_answer_fails_every_check_with_its_reason(monkeypatch, capsys, tmp_path):
    """No stack: exit 1, each check says what did not answer or what to set; the JSON on
    stdout and the JUnit file parse."""
    env = {"SMOKE_PROMETHEUS_URL": "http://127.0.0.1:9", "SMOKE_ALERTMANAGER_URL": "http://127.0.0.1:9"}
    code, out, err = smoke_main(monkeypatch, capsys, "--json", "--junit", str(tmp_path / "s.xml"), env=env)
    assert code == 1, err
    report = json.loads(out)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["stack.containers"]["status"] == "skip"
    assert "did not answer" in checks["prometheus.targets"]["message"]
    assert "set SMOKE_GRAFANA_URL, or --skip grafana" in checks["grafana.health"]["message"]
    assert len(err.strip().splitlines()) == len(checks) + 1  # one line per check + summary
    assert JUnitXml.fromfile(str(tmp_path / "s.xml"))


def test_skipped_checks_do_not_fail_the_run(monkeypatch, capsys):
    skip = [a for s in ("stack", "prometheus", "alertmanager", "alerts", "grafana", "elasticsearch", "logstash",
                        "kibana", "jaeger", "apm") for a in ("--skip", s)]
    code, out, _ = smoke_main(monkeypatch, capsys, *skip, env={"SMOKE_PROMETHEUS_URL": "http://127.0.0.1:9"})
    assert code == 0, out
    assert "0 passed, 0 failed, 22 skipped" in out


def test_usage_and_values_errors_exit_2_with_one_line(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("smoke:\n  logs_max_age: 15 minutes\n")
    code, _, err = smoke_main(monkeypatch, capsys, "--values", str(bad))
    assert code == 2 and "smoke.logs_max_age: expected a duration" in err, err
    assert len(err.strip().splitlines()) == 1
    code, _, err = smoke_main(monkeypatch, capsys, "--skip", "grafna")
    assert code == 2 and "no such check" in err


def test_list_names_the_checks_of_the_enabled_layers(monkeypatch, capsys, tmp_path):
    core = tmp_path / "core.yaml"
    core.write_text("layers: {dashboards: false, logs: false, tracing: false, apm: false}\n")
    _, listed, _ = smoke_main(monkeypatch, capsys, "--list", "--values", str(core))
    assert "prometheus.targets" in listed and "grafana" not in listed
    assert "grafana.datasources" in smoke_main(monkeypatch, capsys, "--list")[1]


# ---------------------------------------------------------------- endpoints


def test_local_endpoints_come_from_the_values_and_env_file(values):
    dotenv = {"GRAFANA_ADMIN_PASSWORD": "g", "ELASTICSEARCH_EXPORTER_PASSWORD": "e", "APM_SECRET_TOKEN": "t"}
    found = cli.endpoints(values, {}, dotenv, Path("/srv/bundle/.env"))
    assert found["prometheus"].url == "http://127.0.0.1:9090" and found["prometheus"].auth is None
    assert found["prometheus"].verify is True
    assert found["grafana"].url == "http://127.0.0.1:3000" and found["grafana"].auth == ("admin", "g")
    assert found["elasticsearch"].auth == ("elasticsearch_exporter", "e")
    assert found["jaeger"].url == "http://127.0.0.1:16686"
    assert found["apm-server"].headers == {"Authorization": "Bearer t"}


def test_local_endpoints_with_web_tls_use_https_the_local_ca_and_the_login(values):
    """README "Remote access": with web_tls, make smoke reaches Prometheus and Alertmanager
    over TLS, trusting private/trust/ca.crt next to .env, with WEB_PASSWORD."""
    values = {**values, "bind_address": "0.0.0.0", "web_tls": {**values["web_tls"], "enabled": True}}
    found = cli.endpoints(values, {}, {"WEB_PASSWORD": "w", "GRAFANA_ADMIN_PASSWORD": "g"}, Path("/srv/bundle/.env"))
    assert found["prometheus"].url == "https://127.0.0.1:9090" and found["prometheus"].auth == ("admin", "w")
    assert found["alertmanager"].url == "https://127.0.0.1:9093" and found["alertmanager"].auth == ("admin", "w")
    assert found["prometheus"].verify == "/srv/bundle/private/trust/ca.crt"
    assert found["grafana"].url == "http://127.0.0.1:3000" and found["grafana"].auth == ("admin", "g")


def test_remote_endpoints_come_from_the_environment_only(values):
    environ = {"SMOKE_PROMETHEUS_URL": "https://prom.example.com", "SMOKE_ALERTMANAGER_URL": "https://am.example.com",
               "SMOKE_USERNAME": "ci", "SMOKE_PASSWORD": "pw", "SMOKE_GRAFANA_URL": "https://grafana.example.com",
               "SMOKE_GRAFANA_TOKEN": "glsa_x", "SMOKE_CA_FILE": "/etc/ca.pem"}
    found = cli.endpoints(values, environ, {"GRAFANA_ADMIN_PASSWORD": "never-used"}, Path("/srv/bundle/.env"))
    assert found["prometheus"].auth == ("ci", "pw") and found["alertmanager"].auth == ("ci", "pw")
    assert found["prometheus"].verify == "/etc/ca.pem"
    assert found["grafana"].auth is None and found["grafana"].headers == {"Authorization": "Bearer glsa_x"}
    assert found["elasticsearch"].url is None and found["elasticsearch"].auth is None
    assert found["apm-server"].headers == {}


# ---------------------------------------------------------------- smoke-notify


def test_smoke_notify_refuses_without_its_receiver_and_says_how(capsys):
    assert notify.main([]) == 2
    err = capsys.readouterr().err
    assert "smoke.notify_receiver" in err and "make reload" in err and "notify_receiver: smoke-test" in err


def values_with(values: dict, overlay: dict) -> dict:
    return merge(values, overlay)


def refusals(values: dict) -> list[str]:
    try:
        check_values(values, Source())
    except InputError as error:
        return error.problems
    return []


def test_smoke_notify_refuses_a_receiver_real_alerts_reach(values):
    [problem] = refusals(values_with(values, {"smoke": {"notify_receiver": "warning"}}))
    assert "receiver 'warning' also gets real alerts (alertmanager.route.routes[1].receiver)" in problem
    [problem] = refusals(values_with(values, {"smoke": {"notify_receiver": "nobody"}}))
    assert "receiver 'nobody' is not defined under alertmanager.receivers" in problem


def test_the_smoke_route_sends_the_smoke_alert_to_its_receiver_alone(values):
    mine = values_with(values, {
        "secrets": {"test_url": {"env": "TEST_URL", "generate": False, "description": "test channel"}},
        "alertmanager": {"receivers": {"tests": {"webhook_configs": [{"url_secret": "test_url"}]}}},
        "smoke": {"notify_receiver": "tests"},
    })
    assert refusals(mine) == []
    routes = route(mine)["routes"]
    assert routes[0]["receiver"] == "tests" and routes[0]["matchers"] == ['smoke_notify=~".+"']
    assert routes[0]["continue"] is False
    assert [r["receiver"] for r in routes[1:]] == [r["receiver"] for r in values["alertmanager"]["route"]["routes"]]
    assert route(values) == values["alertmanager"]["route"]


def test_jobs_allowed_down_must_exist(values):
    [problem] = refusals(values_with(values, {"smoke": {"targets_may_be_down": {"flowr": "typo"}}}))
    assert "smoke.targets_may_be_down.flowr: 'flowr' is not a scrape job" in problem
