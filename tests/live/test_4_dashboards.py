"""Every Prometheus-backed panel of every dashboard shows data on the running stack.

The live stack runs without Grafana (layers.dashboards is off there: its image cannot
be pulled), so the dashboards are rendered here from the very values the stack runs
with, the dashboards layer switched on, and each query is sent to Prometheus the way
Grafana would send it with "All" selected: $job and $instance match everything, the
interval variables become durations. A panel passes when the query returns series and
at least one finite value over the last minutes: what Grafana draws as something
other than "No data"."""

from __future__ import annotations

import math
import time

import pytest

from bundle.values import merge
from dashboards import prometheus_queries, render_dashboards
from stack import send_traffic, wait_for

pytestmark = pytest.mark.live

# Queries that need no finite value, each with the reason; they must still return series.
MAY_BE_NAN = {
    ("alerts-overview", "Notification latency p95 [A]"):
        "a quantile of notifications sent in the last minute; NaN while none was sent",
}
# Queries not run here at all, each with the reason.
NOT_RUN = {
    "annotation": "the firing-alerts annotation is empty whenever nothing fires, by design",
}


@pytest.fixture(scope="module")
def queries(stack_values, tmp_path_factory):
    values = merge(stack_values, {"layers": {"dashboards": True}})
    dashboards = render_dashboards(values, tmp_path_factory.mktemp("config"))
    assert dashboards, "no dashboards rendered"
    found = [q for d in dashboards.values() for q in prometheus_queries(d) if q.kind not in NOT_RUN]
    assert {q.dashboard for q in found} >= {"system-overview", "application", "postgresql", "redis", "nginx",
                                            "celery", "alerts-overview"}
    return found


@pytest.fixture(scope="module")
def fresh_traffic(traffic):
    send_traffic(rounds=5)
    return True


def test_every_prometheus_panel_and_variable_returns_data(prometheus, queries, fresh_traffic):
    def empty() -> list[str]:
        end = time.time()
        problems = []
        for q in queries:
            series = prometheus.get("/api/v1/query_range", query=q.promql(), start=end - 300, end=end,
                                    step=15)["data"]["result"]
            values = [float(v) for s in series for _, v in s["values"]]
            if not series:
                problems.append(f"{q.dashboard}: {q.where}: no series for {q.promql()}")
            elif (q.dashboard, q.where) not in MAY_BE_NAN and not any(math.isfinite(v) for v in values):
                problems.append(f"{q.dashboard}: {q.where}: only NaN/Inf for {q.promql()}")
        return problems

    def probe() -> bool:
        problems = empty()
        assert not problems, "\n".join([f"{len(problems)} of {len(queries)} queries show no data:", *problems])
        return True

    wait_for("every dashboard query returns data", probe, timeout=120, interval=5,
             services=("prometheus",))
