"""Fixtures of the multi-host tests: the scenario of tests/multihost/scenario.py (the
central stack with tests/values/multihost.yaml, simulated hosts, a long-term store) must
be up. Addresses, names and logins come from the values and .env it runs with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "live"))
sys.path.insert(0, str(HERE))

from bundle import hosts  # noqa: E402
from bundle.secrets import read_env  # noqa: E402
from scenario import central, scenario_values  # noqa: E402
from stack import Api  # noqa: E402
from stack import containers  # noqa: E402


@pytest.fixture(scope="session")
def mh_values() -> dict:
    values = scenario_values()
    if not values["hosts"] or not values["layers"]["edge"]:
        pytest.fail("VALUES has no hosts or no edge: run with tests/values/multihost.yaml (make test-multihost)")
    return values


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return read_env(ROOT / ".env")


@pytest.fixture(scope="session")
def scenario(mh_values) -> dict:
    """The running scenario: fails at once when it is not up."""
    running = {c["Service"] for c in containers() if c["State"] == "running"}
    if "edge" not in running:
        pytest.fail("the central stack runs no edge: make up and tests/multihost/scenario.py up "
                    "with the same VALUES (see .ci/run)")
    return mh_values


@pytest.fixture(scope="session")
def ca_file() -> str:
    return str(ROOT / "private" / "trust" / "ca.crt")


@pytest.fixture(scope="session")
def edge_url(scenario) -> str:
    """The edge as the tests reach it: 127.0.0.1 (a name of its certificate)."""
    return f"https://127.0.0.1:{scenario['ports']['edge']}"


@pytest.fixture(scope="session")
def admin(scenario, env):
    return (scenario["edge"]["admin_user"], env[scenario["secrets"][scenario["edge"]["admin_password_secret"]]["env"]])


@pytest.fixture(scope="session")
def agent_login(scenario, env):
    return (scenario["edge"]["agent_user"], env[scenario["secrets"][scenario["edge"]["agent_password_secret"]]["env"]])


@pytest.fixture(scope="session")
def direct(scenario):
    """A session for Prometheus' and Alertmanager's own ports: with web_tls, trusting
    the local CA and sending their login."""
    return central(scenario)[1]


@pytest.fixture(scope="session")
def prom(scenario, direct) -> Api:
    """The central Prometheus on its own published port."""
    return Api(hosts.direct_url(scenario, "prometheus").rstrip("/"), direct)


@pytest.fixture(scope="session")
def overlays() -> list[Path]:
    from scenario import overlays as files

    return files()


@pytest.fixture(scope="session")
def alertmanagers(scenario, direct) -> dict[str, Api]:
    """Both Alertmanagers on their own published ports, by service name."""
    return {name: Api(hosts.direct_url(scenario, name).rstrip("/"), direct) for name in ("alertmanager", "alertmanager-2")}


@pytest.fixture(scope="session")
def sink_ready(scenario) -> bool:
    """The demo platform's notification sink (the scenario needs the demo platform)."""
    from stack import SINK

    requests.get(f"{SINK}/health", timeout=5).raise_for_status()
    return True
