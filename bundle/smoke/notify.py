"""`make smoke-notify` (python -m bundle.smoke.notify): the end-to-end check that pages
nobody. It sends one synthetic alert that only the smoke route of the rendered
Alertmanager configuration matches (bundle/notifications.py: route), so it reaches the
receiver named in `smoke.notify_receiver` and no other; waits until Alertmanager's
notification counters for that receiver show a successful delivery; then resolves the
alert and, where the receiver sends resolved notifications, waits for that one too.

This is the only part of the smoke tooling that writes: one POST to /api/v2/alerts to
fire, one to resolve. Without the receiver configured it refuses and says how.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
import yaml

from .. import DEFAULT_VALUES, ROOT
from ..checks import check_values
from ..cli import load
from ..errors import InputError
from ..notifications import SMOKE_LABEL
from ..secrets import read_env
from . import FAILED, PASSED, UNUSABLE
from .cli import endpoints
from .compare import matcher
from .http import Budget, Client, NotSetUp, ReadOnlySession, SmokeError

ALERTNAME = "BundleSmokeNotify"
GUIDANCE = """make smoke-notify: no receiver for test notifications is configured (smoke.notify_receiver).
It sends one synthetic alert to a receiver you name for that purpose (a test channel, never
on-call), so set one up in site.yaml, e.g.:

  secrets:
    smoke_webhook_url: {env: SMOKE_WEBHOOK_URL, generate: false, description: test channel webhook}
  alertmanager:
    receivers:
      smoke-test:
        webhook_configs: [{url_secret: smoke_webhook_url, send_resolved: true}]
  smoke:
    notify_receiver: smoke-test

then put the URL in .env (SMOKE_WEBHOOK_URL=...), run `make reload`, and run make smoke-notify again.
render.py adds the route that sends the smoke alert to that receiver and nowhere else."""


def counters(prometheus: Client, receiver: str) -> dict[str, float]:
    """Alertmanager's notification counters for one receiver, summed over its instances
    and integrations, as Prometheus last scraped them."""
    out = {}
    for name in ("notification_requests_total", "notification_requests_failed_total", "notifications_failed_total"):
        body = prometheus.json("/api/v1/query", {"query": f'sum(alertmanager_{name}{{receiver_name="{receiver}"}})'})
        result = body["data"]["result"]
        if not result:
            raise NotSetUp(f"Prometheus has no alertmanager_{name} for receiver {receiver}: Alertmanager must run "
                             "with --enable-feature=receiver-name-in-metrics (compose/core.yml does) and be scraped")
        out[name] = float(result[0]["value"][1])
    out["delivered"] = out["notification_requests_total"] - out["notification_requests_failed_total"]
    return out


def smoke_route(loaded: dict, receiver: str) -> bool:
    """The loaded routing tree starts with the smoke route to `receiver`."""
    routes = (loaded.get("route") or {}).get("routes") or []
    return bool(routes) and routes[0].get("receiver") == receiver and any(
        (matcher(m) or ("",))[0] == SMOKE_LABEL for m in routes[0].get("matchers", []))


def integrations(loaded: dict, receiver: str) -> tuple[int, int]:
    """(integrations of the receiver, those that send resolved notifications)."""
    spec = next(r for r in loaded["receivers"] if r["name"] == receiver)
    configs = [c for key, value in spec.items() if key.endswith("_configs") for c in value]
    return len(configs), sum(bool(c.get("send_resolved")) for c in configs)


def wait(what: str, prometheus: Client, alertmanager: Client, receiver: str, token: str, start: dict,
         needed: int, deadline: float) -> float:
    """Seconds until `needed` more successful deliveries to the receiver are counted;
    SmokeError on a failed delivery, a suppressed alert or the deadline."""
    began = time.monotonic()
    while True:
        now = counters(prometheus, receiver)
        if now["notifications_failed_total"] > start["notifications_failed_total"]:
            raise SmokeError(f"{what}: Alertmanager gave up delivering to {receiver} "
                             f"(alertmanager_notifications_failed_total +"
                             f"{now['notifications_failed_total'] - start['notifications_failed_total']:.0f}); "
                             "its log says why")
        if now["delivered"] - start["delivered"] >= needed:
            return time.monotonic() - began
        alerts = alertmanager.json("/api/v2/alerts", {"filter": f'{SMOKE_LABEL}="{token}"'})
        for alert in alerts:
            status = alert.get("status", {})
            if status.get("state") == "suppressed":
                raise SmokeError(f"{what}: the test alert is held back: silenced by {status.get('silencedBy')}, "
                                 f"inhibited by {status.get('inhibitedBy')}")
        if time.monotonic() > deadline:
            failed = now["notification_requests_failed_total"] - start["notification_requests_failed_total"]
            raise SmokeError(f"{what}: no delivery to {receiver} counted within the time allowed"
                             + (f" ({failed:.0f} attempts failed so far)" if failed else ""))
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make smoke-notify",
        description="Send one synthetic alert to smoke.notify_receiver, wait until it is delivered, resolve it.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE",
                        help="overlay on values.yaml, as for render.py")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                        help="how long to wait for each delivery (default 120)")
    args = parser.parse_args(argv)
    try:
        values, source = load([DEFAULT_VALUES, *args.values])
        check_values(values, source)
        dotenv = read_env(args.env_file) if args.env_file.is_file() else {}
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return UNUSABLE
    receiver = values["smoke"]["notify_receiver"]
    if not receiver:
        print(GUIDANCE, file=sys.stderr)
        return UNUSABLE

    found = endpoints(values, dict(os.environ), dotenv, args.env_file)
    budget = Budget(3 * args.timeout + 30)
    reader = ReadOnlySession()
    alertmanager, prometheus = (Client(found[s], reader, budget) for s in ("alertmanager", "prometheus"))
    try:
        loaded = yaml.safe_load(alertmanager.json("/api/v2/status")["config"]["original"])
        if not smoke_route(loaded, receiver):
            print(f"make smoke-notify: the running Alertmanager has no smoke route to {receiver}: run make reload "
                  "(with the same VALUES), then make smoke-notify again", file=sys.stderr)
            return UNUSABLE
        firing_needed, resolved_needed = integrations(loaded, receiver)
        start = counters(prometheus, receiver)
    except SmokeError as error:
        print(f"make smoke-notify: {error}", file=sys.stderr)
        return UNUSABLE if isinstance(error, NotSetUp) else FAILED

    token = secrets.token_hex(6)
    now = datetime.now(timezone.utc)
    alert = {"labels": {"alertname": ALERTNAME, SMOKE_LABEL: token, "cluster": values["cluster"]},
             "annotations": {"summary": "Test notification from make smoke-notify: no action needed",
                             "description": f"Sent {now.isoformat(timespec='seconds')} to check that alerts reach "
                                            f"{receiver}; resolved right after delivery (run {token})."},
             "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=30)).isoformat()}
    endpoint = found["alertmanager"]
    writer = requests.Session()

    def post(body: dict) -> None:
        response = writer.post(f"{alertmanager.base}/api/v2/alerts", json=[body], auth=endpoint.auth,
                               headers=endpoint.headers, verify=endpoint.verify, timeout=10)
        if response.status_code != 200:
            raise SmokeError(f"Alertmanager refused the test alert: HTTP {response.status_code}: {response.text[:200]}")

    code = PASSED
    try:
        post(alert)
        print(f"sent {ALERTNAME} ({SMOKE_LABEL}={token}) to Alertmanager for receiver {receiver}", flush=True)
        took = wait("firing", prometheus, alertmanager, receiver, token, start, firing_needed,
                    time.monotonic() + args.timeout)
        print(f"delivered to {receiver} after {took:.0f}s (Alertmanager's notification counters)", flush=True)
        start = counters(prometheus, receiver)
    except SmokeError as error:
        print(f"make smoke-notify: FAILED: {error}", file=sys.stderr)
        code = FAILED
    finally:
        try:
            post(dict(alert, endsAt=datetime.now(timezone.utc).isoformat()))
            print(f"resolved {ALERTNAME} ({SMOKE_LABEL}={token})", flush=True)
        except (SmokeError, requests.RequestException) as error:
            print(f"make smoke-notify: could not resolve the test alert ({error}); it ends by itself "
                  "within 30 minutes", file=sys.stderr)
            code = FAILED
    if code == PASSED and resolved_needed:
        try:
            took = wait("resolved", prometheus, alertmanager, receiver, token, start, resolved_needed,
                        time.monotonic() + args.timeout)
            print(f"resolved notification delivered to {receiver} after {took:.0f}s", flush=True)
        except SmokeError as error:
            print(f"make smoke-notify: FAILED: {error}", file=sys.stderr)
            code = FAILED
    if code == PASSED:
        print(f"smoke-notify: passed: {receiver} receives alerts")
    return code


if __name__ == "__main__":
    sys.exit(main())
