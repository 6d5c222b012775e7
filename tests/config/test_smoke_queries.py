"""The PromQL make smoke sends (bundle/smoke/queries.py), evaluated by the real promtool
against input series: growth within the last hour counts, a restart does not, a dead
letter queue that grows counts and one that is emptied does not, Jaeger's counters are
found under either of the names collectors give them. The expected results are written
from PromQL's documented semantics (increase handles counter resets; delta is for gauges)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from bundle.smoke.queries import grew, logstash_dlq_growth, logstash_events, otelcol

pytestmark = pytest.mark.config

FAILED = "alertmanager_notifications_failed_total"


def case(name: str, series: dict[str, str], expr: str, expected: dict[str, float]) -> dict:
    """At 60m, on one-minute samples: `expr` gives exactly `expected` ({labels: value})."""
    return {"name": name, "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "promql_expr_test": [{"expr": expr, "eval_time": "60m",
                                  "exp_samples": [{"labels": labels, "value": value}
                                                  for labels, value in expected.items()]}]}


CASES = [
    case("a failure within the hour counts, a counter that did not move does not",
         {f'{FAILED}{{instance="am:9093",integration="email",receiver_name="ops-email"}}': "0x30 1x30",
          f'{FAILED}{{instance="am:9093",integration="slack",receiver_name="oncall-slack"}}': "3x60"},
         f"count by (receiver_name) ({grew(FAILED, 'instance, integration, receiver_name')})",
         {'{receiver_name="ops-email"}': 1}),
    case("a restart (counter back to 0) is no failure; a failure after it is",
         {f'{FAILED}{{instance="am:9093",integration="email",receiver_name="a"}}': "7x30 0x30",
          f'{FAILED}{{instance="am:9093",integration="email",receiver_name="b"}}': "7x30 0x15 1x15"},
         f"count by (receiver_name) ({grew(FAILED, 'instance, integration, receiver_name')})",
         {'{receiver_name="b"}': 1}),
    case("failures older than the hour are not counted",
         {f'{FAILED}{{instance="am:9093",integration="email",receiver_name="a"}}': "0 5x60"},
         f"count({grew(FAILED, 'instance, integration, receiver_name')}) or vector(0)",
         {"{}": 0}),
    case("events out of each pipeline within the window",
         {'logstash_stats_pipeline_events_out{job="logstash",instance="x:9198",pipeline="main"}': "0+10x60",
          'logstash_stats_pipeline_events_out{job="logstash",instance="x:9198",pipeline="stalled"}': "500x60",
          'logstash_stats_pipeline_events_out{job="elsewhere",instance="y:9198",pipeline="main"}': "0+10x60"},
         f"({logstash_events('logstash', 'out', '15m')}) > bool 0",
         {'{pipeline="main"}': 1, '{pipeline="stalled"}': 0}),
    case("a dead letter queue that grew counts, one that was emptied or kept its size does not",
         {'logstash_stats_pipeline_dead_letter_queue_size_in_bytes{job="logstash",pipeline="grew"}': "0x40 4096x20",
          'logstash_stats_pipeline_dead_letter_queue_size_in_bytes{job="logstash",pipeline="emptied"}': "4096x40 0x20",
          'logstash_stats_pipeline_dead_letter_queue_size_in_bytes{job="logstash",pipeline="kept"}': "100x60"},
         f"count by (pipeline) ({logstash_dlq_growth('logstash')})",
         {'{pipeline="grew"}': 1}),
    case("Jaeger's refused spans under either counter name, of its own job only",
         {'otelcol_receiver_refused_spans_total{job="jaeger",receiver="otlp",transport="grpc"}': "0x30 2x30",
          'otelcol_receiver_refused_spans{job="jaeger",receiver="otlp",transport="http"}': "0x30 3x30",
          'otelcol_receiver_refused_spans_total{job="other",receiver="otlp",transport="grpc"}': "0x30 9x30"},
         f"({otelcol('receiver_refused_spans', 'jaeger', 'receiver, transport')}) > bool 0",
         {'{receiver="otlp",transport="grpc"}': 1, '{receiver="otlp",transport="http"}': 1}),
]


@pytest.mark.parametrize("test", CASES, ids=[c["name"] for c in CASES])
def test_smoke_query_with_promtool(test, tool, tmp_path):
    path = tmp_path / "smoke_queries_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": [test]}))
    result = subprocess.run([tool("promtool"), "test", "rules", path.name], cwd=tmp_path, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tool, tmp_path):
    wrong = case("wrong", {f'{FAILED}{{receiver_name="a"}}': "0x60"},
                 f"count({grew(FAILED, 'receiver_name')}) or vector(0)", {"{}": 1})
    path = tmp_path / "wrong_test.yml"
    path.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": [wrong]}))
    result = subprocess.run([tool("promtool"), "test", "rules", path.name], cwd=tmp_path, capture_output=True)
    assert result.returncode != 0
