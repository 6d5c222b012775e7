"""Fixtures for the live level: the values the stack was rendered with, HTTP clients for
its services, the notification sink and traffic on the demo platform; and the guard that
keeps the live level off any stack that is not a test stack."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Callable

import pytest
import requests

from bundle import DEFAULT_VALUES
from bundle.cli import load
from stack import ROOT, SINK, Api, containers, send_traffic


REFUSAL = """make test-live refuses this stack: it is not a test stack.
The live level tests the bundle, not your stack: it restarts Prometheus and Alertmanager (a
gap in monitoring, notifications in flight delayed), reloads them with a changed external
label and back (every firing alert notified again, twice), stops services of the platform
and sends test alerts to the receivers. It runs only next to the demo platform
(tests/platform/up.sh; its notification sink did not answer at {sink}: {why}), or on a stack
you declare disposable with LIVE_TEST_STACK=1.
To check a running stack, production included, use `make smoke`: read-only."""


def not_a_test_stack() -> str | None:
    """Why the running stack is not a test stack, or None when it is one: the demo
    platform's sink answers, or LIVE_TEST_STACK=1 declares the stack disposable."""
    if os.environ.get("LIVE_TEST_STACK") == "1":
        return None
    try:
        response = requests.get(f"{SINK}/health", timeout=3)
        if response.status_code == 200 and response.text == "ok":
            return None
        why = f"HTTP {response.status_code}"
    except requests.RequestException as exc:
        why = type(exc).__name__
    return REFUSAL.format(sink=SINK, why=why)


def pytest_collection_finish(session):
    """Before any live test runs (after -m and -k have chosen the tests)."""
    if any(item.get_closest_marker("live") for item in session.items):
        refusal = not_a_test_stack()
        if refusal:
            pytest.exit(refusal, returncode=4)


@pytest.fixture(scope="session")
def overlays() -> list[Path]:
    """The VALUES the stack was rendered with (the Makefile exports BUNDLE_VALUES)."""
    return [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]


@pytest.fixture(scope="session")
def stack_values(overlays) -> dict:
    values, _ = load([DEFAULT_VALUES, *overlays])
    return values


@pytest.fixture(scope="session")
def running(stack_values) -> list[dict]:
    found = [c for c in containers() if c["State"] == "running"]
    if not found:
        pytest.fail("the stack is not running: start it with `make up` (same VALUES as here)")
    return found


@pytest.fixture(scope="session")
def urls(stack_values, running) -> dict[str, str]:
    host, ports = stack_values["bind_address"], stack_values["ports"]
    return {name: f"http://{host}:{port}" for name, port in ports.items()}


@pytest.fixture(scope="session")
def prometheus(urls) -> Api:
    return Api(urls["prometheus"])


@pytest.fixture(scope="session")
def alertmanager(urls) -> Api:
    return Api(urls["alertmanager"])


@pytest.fixture(scope="session")
def demo_platform(running) -> bool:
    """The demo platform (tests/platform) with its notification sink. Tests that inject
    faults into it or read its sink skip without it (on your own platform), unless
    LIVE_REQUIRE_PLATFORM=1 (as in this project's CI) makes its absence a failure."""
    try:
        requests.get(f"{SINK}/health", timeout=5).raise_for_status()
        return True
    except requests.RequestException:
        message = "the demo platform is not running (tests/platform/env.sh, make up, tests/platform/up.sh)"
        if os.environ.get("LIVE_REQUIRE_PLATFORM") == "1":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def sink(demo_platform) -> Callable[[], list[dict]]:
    """Notifications the demo platform's sink has recorded so far."""
    def records() -> list[dict]:
        response = requests.get(f"{SINK}/records", timeout=10)
        response.raise_for_status()
        return response.json()

    return records


@pytest.fixture(scope="session")
def traffic(demo_platform):
    """Requests through nginx and Celery tasks on the demo platform, so that every series
    the rules read exists (labelled counters appear only once incremented)."""
    send_traffic(rounds=3)
    return True
