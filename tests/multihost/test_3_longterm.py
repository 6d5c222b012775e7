"""remote_write to a long-term store (VictoriaMetrics from Debian as the receiver): it
holds the same series and values as Prometheus for a known counter, with only the
metrics `keep` names, written with the login from .env."""

from __future__ import annotations

import re
import time

import pytest
import requests

from scenario import LONGTERM_URL
from stack import wait_for

pytestmark = pytest.mark.multihost

COUNTER = 'prometheus_http_requests_total{job="prometheus"}'


@pytest.fixture(scope="module")
def longterm(scenario, env):
    entry = scenario["prometheus"]["remote_write"][0]
    auth = (entry["basic_auth"]["username"], env[scenario["secrets"][entry["basic_auth"]["password_secret"]]["env"]])

    def query(expr: str, at: float) -> list:
        response = requests.get(f"{LONGTERM_URL}/api/v1/query", params={"query": expr, "time": at},
                                auth=auth, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]

    return query


def by_labels(result: list, **extra: str) -> dict:
    return {tuple(sorted({**r["metric"], **extra}.items())): r["value"][1] for r in result}


def test_the_store_refuses_writes_without_the_login():
    assert requests.post(f"{LONGTERM_URL}/api/v1/write", data=b"", timeout=10).status_code == 401


def test_the_long_term_store_holds_the_same_series_as_prometheus(scenario, prom, longterm):
    """Same label sets (plus Prometheus' external labels, which remote write adds to
    every series it sends) and the same values at the same moment."""
    external = {"cluster": scenario["cluster"], "environment": scenario["environment"],
                **scenario["prometheus"]["external_labels"]}
    at = time.time() - 20
    wait_for("the counter in the long-term store", lambda: longterm(COUNTER, at), timeout=60)
    ours, theirs = by_labels(prom.query(COUNTER, time=at), **external), by_labels(longterm(COUNTER, at))
    assert ours and ours == theirs


def test_only_what_keep_names_is_sent(scenario, longterm):
    keep = scenario["prometheus"]["remote_write"][0]["keep"]
    names = {r["metric"]["__name__"] for r in longterm('count by (__name__) ({__name__=~".+"})', time.time() - 5)}
    assert names and all(re.fullmatch(keep, name) for name in names), names
    assert "node_memory_MemTotal_bytes" not in names
