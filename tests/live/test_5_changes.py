"""Every change reaches the running stack on the documented command (README "Changing a
secret or a setting"): a secret changed in .env, as a user changes it, is in use by its
consumers after `make up`, which recreates those consumers and nothing else; `make
status` and `make check` name what is stale before; a changed Prometheus setting is
reloaded by `make up`, without a recreate."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from bundle.secrets import read_env
from stack import ROOT, SINK, platform, probe_token, wait_for

pytestmark = pytest.mark.live

ENV = ROOT / ".env"
PROJECT_LABEL = "com.docker.compose.project"


def make(target: str, overlays, *extra) -> subprocess.CompletedProcess:
    """make TARGET with the stack's VALUES (site.yaml is the Makefile's own), plus extras."""
    files = [str(p.relative_to(ROOT)) for p in overlays if p.name != "site.yaml"] + [str(e) for e in extra]
    return subprocess.run(["make", target, f"VALUES={' '.join(shlex.quote(f) for f in files)}"],
                          cwd=ROOT, capture_output=True, text=True)


def ids() -> dict[str, str]:
    """service -> id of its container."""
    project = read_env(ROOT / "config" / "compose.env")["COMPOSE_PROJECT_NAME"]
    out = subprocess.run(["docker", "ps", "--all", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}",
                          "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}'],
                         capture_output=True, text=True, check=True).stdout
    return {service: cid for cid, service in (line.split() for line in out.splitlines())}


def edit_env(changes: dict[str, str]) -> None:
    """Change .env's lines as a user does in an editor."""
    text = ENV.read_text()
    for var, value in changes.items():
        text, count = re.subn(rf"(?m)^{var}=.*$", lambda _: f"{var}={value}", text)
        assert count == 1, var
    ENV.write_text(text)


def apply(overlays, expected: set[str], *extra) -> str:
    """`make up`; exactly `expected` must have been recreated, and it must say so."""
    before = ids()
    result = make("up", overlays, *extra)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    after = ids()
    recreated = {s for s in before if s in after and before[s] != after[s]}
    assert recreated == expected, output
    said = (f"make up: recreated {len(expected)} service(s): {', '.join(sorted(expected))}" if expected
            else "make up: recreated 0 services")
    assert said in output, output
    return output


def metric(service: str, port: int, name: str) -> float | None:
    """A sample of the service's own /metrics, read inside its container: on loopback, or
    on the stack-only alias where that is its one listen address (compose/core.yml)."""
    container = subprocess.run(["scripts/compose.sh", "ps", "--quiet", service], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    for host in ("127.0.0.1", f"{service}.stack"):
        text = subprocess.run(["docker", "exec", container, "wget", "-q", "-O", "-", f"http://{host}:{port}/metrics"],
                              capture_output=True, text=True).stdout
        if text:
            break
    found = re.search(rf"(?m)^{name} (\S+)$", text)
    return float(found.group(1)) if found else None


def user_secrets(stack_values, service: str) -> list[str]:
    """The secrets the user fills in (not generated) that a service receives."""
    from bundle.secrets import consumers

    used = consumers(stack_values)
    return [name for name, spec in stack_values["secrets"].items()
            if not spec["generate"] and service in used.get(name, [])]


def probe(alertmanager, stack_values, severity: str, token: str) -> dict:
    alert = {"labels": {"alertname": f"ChangeProbe{severity.title()}{token}", "severity": severity,
                        "cluster": stack_values["cluster"], "service": "live-tests", "instance": "probe"},
             "annotations": {"summary": f"change probe {token}", "description": "sent by the live tests"}}
    alertmanager.post("/api/v2/alerts", [alert])
    return alert


def test_notification_secrets_reach_alertmanager_alone(stack_values, overlays, sink, alertmanager):
    """Webhook URLs and the SMTP password: a notification reaches the new webhook and not
    the old one, and the mail goes through the SMTP login with the new password."""
    names = user_secrets(stack_values, "alertmanager")
    env = read_env(ENV)
    token = uuid.uuid4().hex[:8]
    originals, changes, new_paths, old_paths, smtp = {}, {}, {}, {}, None
    for name in names:
        var = stack_values["secrets"][name]["env"]
        originals[var] = env[var]
        if env[var].startswith("http://sink:8080/"):       # a webhook (tests/platform/env.sh)
            changes[var] = f"{env[var]}-{token}"
            old_paths[name], new_paths[name] = env[var][len("http://sink:8080"):], changes[var][len("http://sink:8080"):]
        else:
            smtp = var                                        # the SMTP password
            changes[var] = f"smtp-{token}"
    assert new_paths and smtp, f"expected webhook URLs and the SMTP password among {names}"

    alerts = []
    try:
        edit_env(changes)
        status = make("status", overlays)
        assert status.returncode != 0, status.stdout + status.stderr
        for name in names:
            assert re.search(rf"make status: alertmanager: stale: .*secret {name} changed", status.stdout), status.stdout
        # The other side first: the SMTP account (the demo sink takes SMTP_PASSWORD from .env).
        subprocess.run(["tests/platform/up.sh"], cwd=ROOT, check=True, capture_output=True)
        output = apply(overlays, {"alertmanager"})
        for name in names:
            assert f"secret {name} changed" in output, output

        requests.delete(f"{SINK}/records", timeout=10).raise_for_status()
        alerts = [probe(alertmanager, stack_values, s, token) for s in ("critical", "warning")]

        # make smoke-notify's receiver gets its own alert alone, never these probes.
        smoke_receiver = stack_values["alertmanager"]["receivers"].get(stack_values["smoke"]["notify_receiver"], {})
        smoke_only = {config.get("url_secret") for config in smoke_receiver.get("webhook_configs", [])}
        reached = {name: path for name, path in new_paths.items() if name not in smoke_only}

        def delivered():
            records = sink()
            ours = [r for r in records if token in str(r["body"])]
            missing = [n for n, path in reached.items() if not any(r["path"] == path for r in ours)]
            mails = [r for r in ours if r["kind"] == "email"]
            return (not missing and mails) and ours

        ours = wait_for("the probes at the new webhooks and by mail", delivered, timeout=60,
                        services=("alertmanager",))
        assert not [r for r in ours if r["path"] in old_paths.values()], "a notification went to an old URL"
        assert not [r for r in sink() if r["kind"] == "smtp-auth-refused"], "the sink refused the SMTP login"
    finally:
        for alert in alerts:
            alertmanager.post("/api/v2/alerts", [dict(alert, endsAt=datetime.now(timezone.utc).isoformat())])
        edit_env(originals)
        subprocess.run(["tests/platform/up.sh"], cwd=ROOT, check=True, capture_output=True)
        restored = make("up", overlays)
        assert restored.returncode == 0, restored.stdout + restored.stderr


def silence(alertmanager, minutes: int, **labels) -> str:
    now = datetime.now(timezone.utc)
    return alertmanager.post("/api/v2/silences", {
        "matchers": [{"name": k, "value": v, "isRegex": True, "isEqual": True} for k, v in labels.items()],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=minutes)).isoformat(),
        "createdBy": "live-tests", "comment": "the Redis password is being changed"})["silenceID"]


def test_exporter_passwords_reach_their_exporters_alone(stack_values, overlays, demo_platform, alertmanager,
                                                        prometheus):
    """postgres_exporter logs in with the new password once its database sessions are
    ended; redis_exporter authenticates with the new one. Each is changed on the database
    first (README), then in .env."""
    pg = stack_values["exporters"]["postgres"]
    pg_var = stack_values["secrets"][pg["password_secret"]]["env"]
    redis_var = stack_values["secrets"][stack_values["exporters"]["redis"]["password_secret"]]["env"]
    assert set(user_secrets(stack_values, "postgres-exporter")) == {pg["password_secret"]}
    env = read_env(ENV)
    originals = {pg_var: env[pg_var], redis_var: env[redis_var]}
    token = uuid.uuid4().hex
    new = {pg_var: f"pg{token[:16]}", redis_var: f"redis{token[16:]}"}

    def psql(sql: str) -> str:
        return platform("exec", "-T", "postgres", "psql", "-U", "postgres", "-tAc", sql).stdout.strip()

    def set_redis_password(password: str) -> None:
        platform("exec", "-T", "redis", "redis-cli", "CONFIG", "SET", "requirepass", password)

    def restore_redis_password() -> None:
        # Whether or not the new password was set: if it was not, the AUTH fails and Redis
        # still has the platform's own password.
        platform("exec", "-T", "redis", "redis-cli", "-a", new[redis_var], "--no-auth-warning",
                 "CONFIG", "SET", "requirepass", originals[redis_var])

    def quote(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    # The demo platform's clients keep the old password: keep RedisDown quiet while
    # Redis asks for another one.
    quiet = silence(alertmanager, 15, alertname="Redis.*")
    try:
        psql(f"ALTER ROLE {pg['user']} PASSWORD {quote(new[pg_var])}")
        set_redis_password(new[redis_var])
        edit_env(new)
        status = make("status", overlays)
        assert status.returncode != 0, status.stdout + status.stderr
        for service, name in (("postgres-exporter", pg["password_secret"]),
                              ("redis-exporter", stack_values["exporters"]["redis"]["password_secret"])):
            assert re.search(rf"make status: {service}: stale: secret {name} changed", status.stdout), status.stdout
        apply(overlays, {"postgres-exporter", "redis-exporter"})

        ended = psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = {quote(pg['user'])}")
        print(f"ended {ended} session(s) of {pg['user']}")
        wait_for("postgres_exporter logged in again (pg_up 1)", lambda: metric("postgres-exporter", 9187, "pg_up") == 1,
                 timeout=30, services=("postgres-exporter",))
        assert int(psql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = {quote(pg['user'])}")) >= 1
        wait_for("redis_exporter authenticated (redis_up 1)", lambda: metric("redis-exporter", 9121, "redis_up") == 1,
                 timeout=30, services=("redis-exporter",))
    finally:
        psql(f"ALTER ROLE {pg['user']} PASSWORD {quote(originals[pg_var])}")
        restore_redis_password()
        edit_env(originals)
        restored = make("up", overlays)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        wait_for("redis_exporter back to Redis with its first password",
                 lambda: metric("redis-exporter", 9121, "redis_up") == 1, timeout=30, services=("redis-exporter",))
        wait_for("RedisDown no longer active in Alertmanager", lambda: not [
            a for a in alertmanager.get("/api/v2/alerts", active="true")
            if a["labels"]["alertname"].startswith("Redis")], timeout=60)
        requests.delete(f"{alertmanager.base}/api/v2/silence/{quiet}", timeout=10).raise_for_status()


def test_a_changed_prometheus_setting_is_reloaded_by_make_up(stack_values, overlays, prometheus, tmp_path):
    """make status and make check name Prometheus as stale after a render; make up
    reloads it without recreating anything."""
    token = probe_token()
    change = tmp_path / "change.yaml"
    change.write_text(yaml.safe_dump({"prometheus": {"external_labels": {"change_probe": token}}}))
    time.sleep(1.1)  # the reload timestamp counts whole seconds
    try:
        rendered = make("render", overlays, change)
        assert rendered.returncode == 0, rendered.stderr
        for target in ("status", "check"):
            result = make(target, overlays, change)
            assert result.returncode != 0, result.stdout + result.stderr
            assert f"make {target}: prometheus: stale: config/prometheus/prometheus.yml changed after its last reload" \
                in result.stdout, result.stdout
        output = apply(overlays, set(), change)
        assert "make up: reloading prometheus" in output, output
        assert f"change_probe: {token}" in prometheus.get("/api/v1/status/config")["data"]["yaml"]
        assert make("status", overlays, change).returncode == 0
    finally:
        time.sleep(1.1)
        restored = make("up", overlays)
        assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "change_probe" not in prometheus.get("/api/v1/status/config")["data"]["yaml"]
