"""What users rely on: the contract of the bundle's defaults, written by hand.

Sources: the monitoring guide the bundle's users start from (its alert rules, its
Alertmanager configuration, its Prometheus flags, its logging and tracing set-up), and
where README.md and docs/alerting.md promise more or say why a default differs from the
guide ("Where the defaults differ from the monitoring guide"). Nothing here is read from
values.yaml or bundle/alerts.yaml: a changed default fails a contract test on purpose,
and its message names the document to update together with this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALERT_DOC = ("docs/alerting.md (its alert table, and 'Where the defaults differ from the monitoring "
             "guide' for a number that leaves the guide's)")
ROUTING_DOC = "docs/alerting.md, section Routing (and its list of differences from the guide)"
INHIBITION_DOC = "docs/alerting.md, section Inhibition"
PROMETHEUS_DOC = "docs/alerting.md, 'Where the defaults differ from the monitoring guide', and README.md"
SECURITY_DOC = "README.md, section Security defaults"
LOGS_DOC = "README.md (Logstash, JSON lines over TCP) and docs/alerting.md's list of differences"


@dataclass(frozen=True)
class Alert:
    """An alert as the guide (or the docs) define it. `threshold` is in the unit of
    docs/alerting.md's table; `window` is the rate window of the expression, `kind` how
    the window mixes a fault with healthy data (see tests/config/rule_tests.py)."""

    threshold: float | None
    for_: str
    severity: str
    source: str
    window: str | None = None
    kind: str | None = None
    params: dict = field(default_factory=dict)

    def settings(self) -> dict:
        """The settings the generated promtool tests take (`a` in alert_cases.py)."""
        out = {"for": self.for_, "severity": self.severity, **self.params}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    def describe(self) -> str:
        parts = [f"threshold {self.threshold:g}"] if self.threshold is not None else []
        parts += [f"for {self.for_}", f"severity {self.severity}"]
        if self.window:
            parts.append(f"window {self.window}")
        return ", ".join(parts)


GUIDE = "the monitoring guide, Alerting > Prometheus Alert Rules"
ALERTS = {
    # The guide's ten rules. Where docs/alerting.md says the bundle reads a share instead
    # of an absolute rate, or a share of max_connections, the number is the guide's.
    "HighErrorRate": Alert(5, "5m", "critical", GUIDE + " (a share of requests: docs/alerting.md)",
                           window="5m", kind="share"),
    "HighResponseTime": Alert(2, "5m", "warning", GUIDE, window="5m", kind="p95"),
    "ServiceDown": Alert(None, "1m", "critical", GUIDE),
    "PostgresHighConnections": Alert(80, "5m", "warning", GUIDE + " (a share of max_connections: docs/alerting.md)"),
    "DatabaseDiskFull": Alert(10, "5m", "critical", GUIDE + " (percent free; mountpoint /: docs/alerting.md)",
                              params={"mountpoint": "/"}),
    "CeleryQueueBackup": Alert(100, "10m", "warning", GUIDE),
    "HighTaskFailureRate": Alert(10, "5m", "warning", GUIDE + " (a share of runs: docs/alerting.md)",
                                 window="5m", kind="share"),
    "HighCPUUsage": Alert(80, "10m", "warning", GUIDE, window="5m", kind="share"),
    "HighMemoryUsage": Alert(85, "10m", "warning", GUIDE),
    "DiskSpaceLow": Alert(15, "5m", "warning", GUIDE + " (the early warning before DatabaseDiskFull)"),
    # Outages the guide's ServiceDown caught through the exporters' targets, which the
    # bundle reads through each exporter's own `*_up` (docs/alerting.md, ServiceDown row).
    "NginxDown": Alert(None, "1m", "critical", "docs/alerting.md: nginx down as the guide's ServiceDown"),
    "RedisDown": Alert(None, "1m", "critical", "docs/alerting.md: Redis down as the guide's ServiceDown"),
    "PostgresDown": Alert(None, "1m", "critical", "docs/alerting.md: PostgreSQL down as the guide's ServiceDown"),
    "ExporterDown": Alert(None, "2m", "warning", "docs/alerting.md: an exporter down is a blind spot"),
    # Opt-in metrics get an alert for their absence (README, Instrument your apps).
    "CeleryQueueLengthMissing": Alert(None, "10m", "warning", "README: the queue length is an opt-in"),
    # Windows docs/alerting.md states ("within 5 minutes").
    "RedisRejectedConnections": Alert(0, "1m", "warning", "docs/alerting.md", window="5m", kind="increase"),
    "PostgresDeadlocks": Alert(0, "1m", "warning", "docs/alerting.md", window="5m", kind="increase"),
}

# Metrics that exist only when the app opts in (instrumentation/README.md, "Everything
# else is optional"), and the alert that says so when an alert reads one that is absent.
OPT_IN = {"celery_queue_length": "CeleryQueueLengthMissing"}

# --------------------------------------------------------------------------- routing

# The guide's Alertmanager configuration: critical -> on-call email and the critical
# Slack channel; warning -> the warning Slack channel; anything else -> the default email.
ROUTES = [
    ("a critical alert goes to the on-call email and #alerts-critical",
     {"alertname": "ContractProbe", "severity": "critical"}, ["critical"]),
    ("a warning goes to #alerts-warning", {"alertname": "ContractProbe", "severity": "warning"}, ["warning"]),
    ("an info alert goes to the default email", {"alertname": "ContractProbe", "severity": "info"}, ["default"]),
    ("an alert without severity goes to the default email", {"alertname": "ContractProbe"}, ["default"]),
    ("matching is exact: Critical is not critical", {"alertname": "ContractProbe", "severity": "Critical"},
     ["default"]),
]

# receiver -> (email addresses, [(Slack channel, secret of its webhook URL)])
RECEIVERS = {
    "default": (["alerts@example.com"], []),
    "critical": (["oncall@example.com"], [("#alerts-critical", "slack_critical_webhook_url")]),
    "warning": ([], [("#alerts-warning", "slack_warning_webhook_url")]),
}

TIMINGS = {"group_by": ["alertname", "cluster", "service"], "group_wait": "10s", "group_interval": "10s",
           "repeat_interval": "12h"}
RESOLVE_TIMEOUT = "5m"
# Mail is sent with SMTP AUTH, the password read from its Compose secret (README Secrets).
SMTP = {"auth_username": "alertmanager", "auth_password_file": "/run/secrets/smtp_password", "require_tls": True}

# --------------------------------------------------------------------------- inhibition

# docs/alerting.md, Inhibition. Groups of (source, [(target, muted?)]); every group runs
# in its own cluster, so no source of one group can mute a target of another.
TWIN = {"alertname": "ContractTwin", "service": "redis", "instance": "redis-exporter:9121"}
DISK = {"instance": "node-exporter:9100", "device": "/dev/sda1", "mountpoint": "/", "service": "host"}
API = {"instance": "api-gateway:8000", "job": "api-gateway", "service": "api-gateway"}
INHIBITION = [
    ("a critical alert mutes the warning of the same name, service and instance",
     {**TWIN, "severity": "critical"},
     [("its warning twin", {**TWIN, "severity": "warning"}, True),
      ("not on another instance", {**TWIN, "severity": "warning", "instance": "redis-2:9121"}, False),
      ("not for another service", {**TWIN, "severity": "warning", "service": "cache"}, False),
      ("not another alert name", {**TWIN, "severity": "warning", "alertname": "ContractOther"}, False)]),
    ("a warning never mutes a critical",
     {**TWIN, "severity": "warning"},
     [("its critical twin", {**TWIN, "severity": "critical"}, False)]),
    ("a critical in another cluster mutes nothing here",
     {**TWIN, "severity": "critical", "cluster": "elsewhere"},
     [("the warning twin", {**TWIN, "severity": "warning"}, False)]),
    ("DatabaseDiskFull mutes DiskSpaceLow on the same filesystem",
     {**DISK, "alertname": "DatabaseDiskFull", "severity": "critical"},
     [("its early warning", {**DISK, "alertname": "DiskSpaceLow", "severity": "warning"}, True),
      ("not another filesystem", {**DISK, "alertname": "DiskSpaceLow", "severity": "warning",
                                  "mountpoint": "/boot", "device": "/dev/sda2"}, False),
      ("not another host", {**DISK, "alertname": "DiskSpaceLow", "severity": "warning",
                            "instance": "node-2:9100"}, False)]),
    ("ServiceDown mutes the other alerts about its instance",
     {**API, "alertname": "ServiceDown", "severity": "critical"},
     [("a warning about it", {**API, "alertname": "HighResponseTime", "severity": "warning"}, True),
      ("a critical about it", {**API, "alertname": "HighErrorRate", "severity": "critical"}, True),
      ("not about another instance", {**API, "alertname": "HighErrorRate", "severity": "critical",
                                      "instance": "api-2:8000"}, False),
      ("never another ServiceDown", {**API, "alertname": "ServiceDown", "severity": "critical",
                                     "job": "other"}, False)]),
]

# --------------------------------------------------------------------------- Prometheus

PROMETHEUS = {"scrape_interval": "15s", "rule_interval": "30s"}
RETENTION = {"time": "30d", "size": "10GB"}   # the guide's 30d; the size cap: docs/alerting.md

# --------------------------------------------------------------------------- logs and security

# The apps ship one JSON document per line over TCP to Logstash (README). Logstash runs a
# tcp input's `json` codec as json_lines (logstash-core inputs/base.rb
# fix_streaming_codecs), so either name keeps the promise.
LOGSTASH_TCP_CODECS = {"json_lines", "json"}
LOGSTASH_TCP_PORT = 5000
# The guide's filter: a `duration` field becomes a float, so response times aggregate.
LOGSTASH_CONVERT = {"duration": "float"}

# README, Security defaults: Elasticsearch security on; Kibana, Logstash and APM Server
# log in to it as their own users; APM agents need the secret token; Grafana has no
# sign-up and no anonymous access.
SECURITY = {
    "elasticsearch": {"xpack.security.enabled": "true"},
    "grafana": {"GF_USERS_ALLOW_SIGN_UP": "false", "GF_AUTH_ANONYMOUS_ENABLED": "false"},
}
KIBANA_USER = "kibana_system"
LOGSTASH_USER = "logstash_writer"
APM_USER = "apm_server"

# --------------------------------------------------------------------------- dashboards

DASHBOARD_DOC = "docs/dashboards.md"
# The monitoring guide, Dashboards > System Overview: CPU usage is the share of time the
# cores are not idle, memory usage the share of memory not available. (dashboard title,
# panel title, input series as promtool writes them, 15 s apart, the value it must show)
NODE = 'job="node",service="host",instance="node-exporter:9100"'
PANELS = [
    ("System Overview", "CPU busy",
     {f'node_cpu_seconds_total{{{NODE},cpu="{c}",mode="{m}"}}': f"0+{inc}x200"
      for c in (0, 1) for m, inc in (("idle", 3.75), ("user", 9), ("system", 2.25))}, 75),
    ("System Overview", "Memory used",
     {f"node_memory_MemAvailable_bytes{{{NODE}}}": "25+0x200", f"node_memory_MemTotal_bytes{{{NODE}}}": "100+0x200"},
     75),
]

# --------------------------------------------------------------------------- tracing

TRACING_DOC = "values.yaml (jaeger.receivers), compose/tracing.yml and docs/alerting.md's list of differences"
# The monitoring guide's apps send spans to the Jaeger agent port (thrift compact over
# UDP 6831, opentelemetry-exporter-jaeger) and its Jaeger takes Zipkin on 9411; Jaeger v2
# keeps taking both, on the app network. receiver -> {protocol: endpoint}
TRACE_RECEIVERS = {
    "otlp": {"grpc": "0.0.0.0:4317", "http": "0.0.0.0:4318"},
    "jaeger": {"thrift_compact": "0.0.0.0:6831", "thrift_binary": "0.0.0.0:6832", "thrift_http": "0.0.0.0:14268",
               "grpc": "0.0.0.0:14250"},
    "zipkin": {"": "0.0.0.0:9411"},
}
