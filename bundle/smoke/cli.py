"""`make smoke` (python -m bundle.smoke): run the read-only checks, print one line per
check, optionally write JUnit XML and JSON, exit 0 only when every check passed.

Which stack: the local one by default (the addresses of `bind_address` and `ports`, the
credentials in .env), or a remote one when SMOKE_PROMETHEUS_URL (or any SMOKE_*_URL) is
set: then every address and credential comes from the environment, as CI secrets do.
The values (values.yaml, site.yaml, VALUES) say what the stack should be either way.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .. import DEFAULT_VALUES, ROOT, hosts
from ..checks import check_values
from ..cli import load
from ..errors import InputError
from ..secrets import read_env
from . import FAILED, PASSED, UNUSABLE
from . import layer_checks  # noqa: F401  (registers the layers' checks after the core's)
from .checks import CHECKS, Check, Context, Fail, Skip
from .expect import Expected
from .http import Budget, Client, Endpoint, ReadOnlySession, SmokeError
from .report import Report, Result, line, summary, to_json, write_junit

# The environment variable part of each service: SMOKE_<PART>_URL and its credentials.
ENV = {"prometheus": "PROMETHEUS", "alertmanager": "ALERTMANAGER", "grafana": "GRAFANA",
       "elasticsearch": "ELASTICSEARCH", "kibana": "KIBANA", "jaeger": "JAEGER", "apm-server": "APM_SERVER"}
# Services behind the bundle's authenticating edge: SMOKE_USERNAME / SMOKE_PASSWORD apply
# to them unless SMOKE_<PART>_USERNAME / _PASSWORD are set. Grafana and Elasticsearch keep
# their own logins, Kibana's status needs none, APM Server takes its secret token.
EDGE = ("prometheus", "alertmanager", "jaeger")
# The run's deadline: below the 60 s the README promises, whatever the services do.
DEADLINE = 55.0


def is_remote(environ: dict) -> bool:
    return any(environ.get(f"SMOKE_{part}_URL") for part in ENV.values())


def local_secret(values: dict, dotenv: dict, name: str) -> str | None:
    spec = values["secrets"].get(name)
    return dotenv.get(spec["env"]) or None if spec else None


def endpoints(values: dict, environ: dict, dotenv: dict, env_file: Path) -> dict[str, Endpoint]:
    remote = is_remote(environ)
    # The services' own ports (the edge's address is for remote users: SMOKE_*_URL); with
    # web_tls, Prometheus and Alertmanager over TLS from the local CA, with their login.
    verify: bool | str = environ.get("SMOKE_CA_FILE") or (True if remote else hosts.direct_trust(values, env_file))
    out = {}
    for service, part in ENV.items():
        url = environ.get(f"SMOKE_{part}_URL")
        if not url and not remote:
            url = hosts.direct_url(values, service).rstrip("/")
        user = environ.get(f"SMOKE_{part}_USERNAME") or (environ.get("SMOKE_USERNAME") if service in EDGE else None)
        password = environ.get(f"SMOKE_{part}_PASSWORD") or (environ.get("SMOKE_PASSWORD") if service in EDGE else None)
        if not remote and not user:
            login = hosts.direct_login(values, dotenv) if service in hosts.WEB_TLS_SERVICES else None
            if login:
                user, password = login
            elif service == "grafana":
                user = values["grafana"]["admin_user"]
                password = local_secret(values, dotenv, values["grafana"]["admin_password_secret"])
            elif service == "elasticsearch":
                # The exporter's own user: `monitor` privileges only, enough for cluster
                # health and data stream stats.
                user = values["elasticsearch"]["exporter"]["username"]
                password = local_secret(values, dotenv, values["elasticsearch"]["exporter"]["password_secret"])
        headers = {}
        token = environ.get("SMOKE_GRAFANA_TOKEN") if service == "grafana" else None
        if service == "apm-server":
            token = environ.get("SMOKE_APM_SECRET_TOKEN") or (
                None if remote else local_secret(values, dotenv, values["apm"]["secret_token_secret"]))
        if token:
            headers["Authorization"] = f"Bearer {token}"
            if service == "grafana":  # a token instead of the admin login
                user = password = None
        out[service] = Endpoint(name=service, url=url, auth=(user, password or "") if user else None,
                                headers=headers, verify=verify,
                                missing=f"set SMOKE_{part}_URL, or --skip {service.split('-')[0]}")
    return out


def selected(values: dict, skip: list[str]) -> tuple[list[Check], list[Check]]:
    """(checks to run, checks skipped by --skip) for the layers the values enable."""
    expected = Expected(values)
    relevant = [c for c in CHECKS if expected.layer(c.layer)]
    skipped = [c for c in relevant if any(c.id == s or c.id.startswith(s.rstrip(".") + ".") for s in skip)]
    return [c for c in relevant if c not in skipped], skipped


def run(checks: list[Check], skipped: list[Check], ctx: Context, report: Report, out) -> None:
    for item in checks + skipped:
        start = time.monotonic()
        details: list[str] = []
        if item in skipped:
            status, message = "skip", "skipped with --skip"
        else:
            try:
                status, message = "pass", item.run(ctx)
            except Fail as failure:
                status, message, details = "fail", failure.message, failure.details
            except Skip as skip:
                status, message = "skip", str(skip)
            except SmokeError as error:
                status, message = "fail", str(error)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
                # An answer not shaped as the service documents it: say so, never a traceback.
                status, message = "fail", f"unexpected answer ({type(error).__name__}: {error})"
        result = Result(item.id, item.title, status, message, details, time.monotonic() - start)
        report.results.append(result)
        print(line(result), file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make smoke", description="Read-only checks of a running stack (README: Check a running stack).")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE",
                        help="overlay on values.yaml, as for render.py (the Makefile passes site.yaml and VALUES)")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write the report as JUnit XML to FILE")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON on stdout (the check lines go to stderr)")
    parser.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        help="skip a check by id, or every check of a service (e.g. grafana); repeatable")
    parser.add_argument("--list", action="store_true", help="list the checks the values enable and exit")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", metavar="FILE",
                        help="secrets of the local stack (default: .env)")
    args = parser.parse_args(argv)
    try:
        values, source = load([DEFAULT_VALUES, *args.values])
        check_values(values, source)
        dotenv = read_env(args.env_file) if args.env_file.is_file() else {}
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return UNUSABLE
    checks, skipped = selected(values, args.skip)
    if args.list:
        for item in checks + skipped:
            print(f"{item.id:<28} {item.title}")
        return PASSED
    unknown = [s for s in args.skip if not any(c.id == s or c.id.startswith(s.rstrip(".") + ".") for c in CHECKS)]
    if unknown:
        parser.error(f"--skip {', '.join(unknown)}: no such check (make smoke SMOKE_ARGS=--list shows them)")

    started = time.monotonic()
    budget = Budget(DEADLINE)
    found = endpoints(values, dict(os.environ), dotenv, args.env_file)
    session = ReadOnlySession()
    clients = {name: Client(endpoint, session, budget) for name, endpoint in found.items()}
    ctx = Context(Expected(values), clients, local=not is_remote(os.environ))
    report = Report(mode="local" if ctx.local else "remote",
                    endpoints={name: e.url for name, e in found.items()})
    out = sys.stderr if args.json else sys.stdout
    try:
        run(checks, skipped, ctx, report, out)
    except InputError as error:  # the rendered expectations themselves (a template) failed
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return UNUSABLE
    report.seconds = time.monotonic() - started
    code = PASSED if report.passed else FAILED
    print(summary(report), file=out)
    if args.junit:
        write_junit(report, args.junit)
    if args.json:
        sys.stdout.write(to_json(report, code))
    return code
