"""Every PromQL expression the smoke checks send, in one place so that the config level
runs each through promtool against input series (tests/config/test_smoke_queries.py).
Metric names are the exporters' own (the same the alert catalogue reads)."""

from __future__ import annotations

# "In the last hour": the window of the failure and drop counters.
WINDOW = "1h"


def grew(metric: str, by: str, selector: str = "") -> str:
    """The series of a counter that grew within the window, summed by `by`."""
    return f"sum by ({by}) (increase({metric}{selector}[{WINDOW}])) > 0"


def total(metric: str) -> str:
    """How much a counter grew within the window, over every series."""
    return f"sum(increase({metric}[{WINDOW}]))"


def filesystems(job: str) -> str:
    return f'node_filesystem_avail_bytes{{job="{job}"}}'


def logstash_events(job: str, direction: str, window: str) -> str:
    """Events into (`in`) or out of (`out`) each pipeline within `window`."""
    return f'sum by (pipeline) (increase(logstash_stats_pipeline_events_{direction}{{job="{job}"}}[{window}]))'


def logstash_dlq_growth(job: str) -> str:
    """Pipelines whose dead letter queue grew within the window."""
    return (f'sum by (pipeline) (delta(logstash_stats_pipeline_dead_letter_queue_size_in_bytes{{job="{job}"}}'
            f'[{WINDOW}])) > 0')


def otelcol(counter: str, job: str, by: str) -> str:
    """An OpenTelemetry Collector counter of Jaeger v2, within the window. Collectors
    name counters with or without the _total suffix depending on their version."""
    return f'sum by ({by}) (increase({{__name__=~"otelcol_{counter}(_total)?",job="{job}"}}[{WINDOW}]))'
