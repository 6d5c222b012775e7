"""The central stack stopped for 60 seconds, then started: the agents send what they
took meanwhile from their write-ahead logs, and no sample is lost. Runs last: it stops
everything."""

from __future__ import annotations

import pytest

from scenario import LOSS_COUNTERS, central, outage
from stack import seconds

pytestmark = pytest.mark.multihost

OUTAGE_SECONDS = 60


def test_no_sample_is_lost_while_the_central_stack_is_down(scenario, record_property):
    agents = [name for name, host in scenario["hosts"].items() if host["mode"] == "agent"]
    assert agents
    interval = seconds(scenario["agent"]["scrape_interval"])
    result = outage(central(scenario), scenario["ports"]["edge"], agents, interval, OUTAGE_SECONDS)
    print(f"outage {result['outage_seconds']:.0f}s: catch-up {result['catch_up_seconds']}, "
          f"samples lost {result['samples_lost']}, dropped at the agents {result['agent_dropped']}")
    for name in agents:
        record_property(f"catch_up_seconds_{name}", round(result["catch_up_seconds"].get(name, -1), 1))
    assert set(result["catch_up_seconds"]) == set(agents), result
    assert result["samples_lost"] == dict.fromkeys(agents, 0), result
    # The agents' own counters of what they gave up on (LOSS_COUNTERS) did not move.
    assert result["agent_dropped"] == dict.fromkeys(agents, 0.0), (LOSS_COUNTERS, result)
