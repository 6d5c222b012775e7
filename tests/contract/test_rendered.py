"""The contract (guide.py) against the configuration values.yaml alone renders: what a
user gets before changing anything. The real promtool, amtool and Alertmanager judge it."""

from __future__ import annotations

import re

import pytest
import yaml

import contract
import guide
from compose_project import compose_config
from bundle import ROOT

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def config(defaults):
    return defaults / "config"


@pytest.fixture(scope="module")
def rules(config):
    return contract.rendered_rules(config / "prometheus" / "rules")


@pytest.fixture(scope="module")
def alertmanager_config(config):
    return yaml.safe_load((config / "alertmanager" / "alertmanager.yml").read_text())


@pytest.mark.parametrize("name", sorted(guide.ALERTS))
def test_alert_is_the_guides(name, rules, tool, tmp_path):
    assert name in rules, contract.deliberate(f"{name} is not rendered by default.", guide.ALERT_DOC)
    contract.check_alert(name, rules[name], tool("promtool"), tmp_path)


def test_an_alert_that_reads_an_opt_in_metric_has_an_absence_alert(rules):
    contract.check_opt_in(rules)


def test_each_severity_reaches_the_guides_receivers(tool, config):
    contract.check_routing(tool("amtool"), config / "alertmanager")


def test_the_receivers_are_the_guides(alertmanager_config):
    contract.check_receivers(alertmanager_config)


def test_grouping_and_timings_are_the_guides(alertmanager_config):
    contract.check_timings(alertmanager_config)


def test_mail_is_sent_with_smtp_auth_from_the_secret(alertmanager_config, compose_model):
    contract.check_smtp_auth(alertmanager_config)
    secrets = [s["source"] for s in compose_model["services"]["alertmanager"].get("secrets", [])]
    assert "smtp_password" in secrets, contract.deliberate(
        "Alertmanager does not receive the smtp_password secret its smtp_auth_password_file reads.",
        guide.SECURITY_DOC)


def test_every_inhibit_rule_behaves_as_documented_in_the_real_alertmanager(local_alertmanager):
    contract.check_inhibition(local_alertmanager)


def test_rules_are_evaluated_every_30s_and_targets_scraped_every_15s(config):
    prometheus = yaml.safe_load((config / "prometheus" / "prometheus.yml").read_text())
    default = prometheus["global"]["evaluation_interval"]
    intervals = {}
    for path in sorted((config / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"] or []:
            intervals[f"{path.name}:{group['name']}"] = contract.seconds(group.get("interval", default))
    contract.check_rule_intervals(intervals)
    contract.check_scrape_interval(prometheus["global"]["scrape_interval"])
    slower = [j["job_name"] for j in prometheus["scrape_configs"] if "scrape_interval" in j
              and j["job_name"] in ("prometheus", "node", "postgres", "redis", "api-gateway", "nginx")]
    assert not slower, contract.deliberate(f"the guide's jobs scraped at another interval: {slower}",
                                           guide.PROMETHEUS_DOC)


@pytest.fixture(scope="module")
def compose_model(defaults):
    return compose_config(ROOT, defaults)


def flag(command: list[str], name: str) -> str:
    found = [c.split("=", 1)[1] for c in command if c.startswith(f"--{name}=")]
    assert len(found) == 1, (name, command)
    return found[0]


def test_prometheus_keeps_30_days(compose_model):
    command = compose_model["services"]["prometheus"]["command"]
    contract.check_retention(flag(command, "storage.tsdb.retention.time"), flag(command, "storage.tsdb.retention.size"))


def test_elasticsearch_security_is_on_and_grafana_closed(compose_model):
    for service, env in guide.SECURITY.items():
        got = {k: compose_model["services"][service]["environment"].get(k) for k in env}
        assert got == env, contract.deliberate(f"{service}: {got}, documented {env}", guide.SECURITY_DOC)


def test_kibana_logstash_and_apm_server_log_in_to_elasticsearch(config):
    kibana = yaml.safe_load((config / "kibana" / "kibana.yml").read_text())
    assert kibana["elasticsearch.username"] == guide.KIBANA_USER and kibana["elasticsearch.password"].startswith("${"), \
        contract.deliberate("Kibana does not log in as kibana_system with its secret.", guide.SECURITY_DOC)
    apm = yaml.safe_load((config / "apm-server" / "apm-server.yml").read_text())
    output = apm["output.elasticsearch"]
    assert output["username"] == guide.APM_USER and output["password"].startswith("${"), \
        contract.deliberate("APM Server does not write as its own user.", guide.SECURITY_DOC)
    assert apm["apm-server"]["auth"]["secret_token"].startswith("${"), \
        contract.deliberate("APM Server takes events without the secret token.", guide.SECURITY_DOC)
    pipeline = (config / "logstash" / "pipeline" / "logstash.conf").read_text()
    output = pipeline[pipeline.index("output {"):]
    assert re.search(rf'user => "{guide.LOGSTASH_USER}"', output) and re.search(r'password => "\$\{[A-Z_]+\}"', output), \
        contract.deliberate("Logstash does not write to Elasticsearch as its own user.", guide.SECURITY_DOC)


def test_logstash_reads_json_lines_over_tcp(config):
    pipeline = (config / "logstash" / "pipeline" / "logstash.conf").read_text()
    inputs = pipeline[pipeline.index("input {"):pipeline.index("filter {")]
    tcp = re.search(r"tcp \{(.*?)\n  \}", inputs, re.S)
    assert tcp, contract.deliberate("no tcp input for the apps' JSON lines.", guide.LOGS_DOC)
    port = re.search(r"port => (\d+)", tcp.group(1))
    codec = re.search(r"codec => (\w+)", tcp.group(1))
    assert port and int(port.group(1)) == guide.LOGSTASH_TCP_PORT and codec and \
        codec.group(1) in guide.LOGSTASH_TCP_CODECS, contract.deliberate(
            f"the tcp input is not JSON lines on {guide.LOGSTASH_TCP_PORT}: {tcp.group(1).strip()}", guide.LOGS_DOC)
    filters = pipeline[pipeline.index("filter {"):pipeline.index("output {")]
    for field, kind in guide.LOGSTASH_CONVERT.items():
        guarded = re.search(rf'if \[{field}\] \{{\s*mutate \{{ convert => \{{ "{field}" => "{kind}" \}} \}}', filters)
        assert guarded, contract.deliberate(f"the pipeline does not make `{field}` a {kind}", guide.LOGS_DOC)


@pytest.mark.parametrize("dashboard,panel,series,value", guide.PANELS, ids=[f"{d}: {p}" for d, p, _, _ in guide.PANELS])
def test_dashboard_panels_show_what_the_guide_shows(dashboard, panel, series, value, config, tool, tmp_path):
    import json

    from dashboards import prometheus_queries

    found = [json.loads(p.read_text()) for p in (config / "grafana" / "dashboards").rglob("*.json")]
    board = [d for d in found if d["title"] == dashboard]
    assert board, contract.deliberate(f"no dashboard {dashboard!r}", guide.DASHBOARD_DOC)
    queries = [q for q in prometheus_queries(board[0]) if q.where.startswith(f"{panel} [")]
    assert queries, contract.deliberate(f"{dashboard} has no panel {panel!r}", guide.DASHBOARD_DOC)
    for query in queries:
        contract.check_query(f"{dashboard}: {panel}", query.promql(), series, value, tool("promtool"), tmp_path,
                             guide.DASHBOARD_DOC)


def test_jaeger_takes_the_span_protocols_the_guides_apps_send(config, compose_model):
    jaeger = yaml.safe_load((config / "jaeger" / "config.yml").read_text())
    receivers = jaeger["receivers"]
    got = {name: ({p: c["endpoint"] for p, c in receivers[name]["protocols"].items()} if "protocols" in receivers[name]
                  else {"": receivers[name]["endpoint"]}) for name in receivers}
    assert got == guide.TRACE_RECEIVERS, contract.deliberate(f"Jaeger receivers {got}", guide.TRACING_DOC)
    pipeline = jaeger["service"]["pipelines"]["traces"]["receivers"]
    assert sorted(pipeline) == sorted(guide.TRACE_RECEIVERS), contract.deliberate(
        f"the traces pipeline reads {pipeline}", guide.TRACING_DOC)
    networks = set(compose_model["services"]["jaeger"]["networks"])
    assert len(networks) == 2, contract.deliberate(f"Jaeger is not on the apps' network: {networks}", guide.TRACING_DOC)
