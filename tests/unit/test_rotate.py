"""`make rotate` and the credentials services keep in their own state (README "Changing
a secret or a setting"), against stand-in Elasticsearch and Grafana HTTP servers on
loopback: elastic's password is changed with the current one before .env, an
interruption at any step is finished by running it again, and Grafana's admin password
is set with Grafana's CLI when Grafana refuses .env's value."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bundle.secrets import read_env

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """A stand-in for the login and password endpoints of Elasticsearch and Grafana."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.delay_change = 0.0      # seconds between taking a new password and answering
        self.drop_change = False     # take the new password, then close without an answer
        self.password_file: Path | None = None   # where the stand-in Grafana CLI writes one
        self.calls: list[tuple[str, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def authorized(self) -> bool:
                if service.password_file and service.password_file.exists():
                    service.password = service.password_file.read_text().rstrip("\n")
                header = self.headers.get("Authorization", "")
                expected = base64.b64encode(f"{service.user}:{service.password}".encode()).decode()
                return header == f"Basic {expected}"

            def do_GET(self):
                service.calls.append(("GET", self.path))
                self.reply(200 if self.authorized() else 401)

            def do_POST(self):
                service.calls.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not self.authorized():
                    return self.reply(401)
                service.password = body["password"]
                if service.drop_change:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                time.sleep(service.delay_change)
                self.reply(200)

            def reply(self, code: int):
                data = b'{"ok":true}' if code == 200 else b'{"error":"unauthorized"}'
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


LAYERS = {"layers": {"dashboards": True, "tracing": False, "logs": True, "apm": False}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """One render with Grafana and Elasticsearch on, and its .env."""
    work = tmp_path_factory.mktemp("render")
    (work / "layers.yaml").write_text(yaml.safe_dump(LAYERS))
    result = subprocess.run([sys.executable, "render.py", "--values", str(work / "layers.yaml"), "--output",
                             str(work / "config"), "--env-file", str(work / ".env")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def checkout(tmp_path, rendered):
    """A copy of the render, with stand-ins for Elasticsearch and Grafana where
    config/compose.env says they listen."""
    shutil.copytree(rendered / "config", tmp_path / "config")
    for name in (".env", "layers.yaml"):
        shutil.copy2(rendered / name, tmp_path / name)
    env = read_env(tmp_path / ".env")
    es = Service("elastic", env["ELASTIC_PASSWORD"])
    grafana = Service("admin", env["GRAFANA_ADMIN_PASSWORD"])
    compose_env = tmp_path / "config" / "compose.env"
    text = compose_env.read_text()
    text = text.replace("ELASTICSEARCH_PORT='9200'", f"ELASTICSEARCH_PORT='{es.port}'")
    text = text.replace("GRAFANA_PORT='3000'", f"GRAFANA_PORT='{grafana.port}'")
    compose_env.write_text(text)
    yield tmp_path, es, grafana
    es.server.shutdown()
    grafana.server.shutdown()


def rotate(work: Path, step: str, secret: str, value: str | None = None, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if k != "ROTATE_VALUE"}
    if value is not None:
        env["ROTATE_VALUE"] = value
    command = [sys.executable, "-m", "bundle.rotate", "--values", str(work / "layers.yaml"),
               "--output", str(work / "config"), "--env-file", str(work / ".env"), step, secret]
    if not wait:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def env_value(work: Path, var: str) -> str:
    return read_env(work / ".env")[var]


def test_elastic_is_changed_with_the_current_password_then_env(checkout):
    work, es, _ = checkout
    old = env_value(work, "ELASTIC_PASSWORD")
    other_lines = [line for line in (work / ".env").read_text().splitlines() if not line.startswith("ELASTIC_PASSWORD=")]
    result = rotate(work, "start", "elastic_password", "new elastic pw #1")
    assert result.returncode == 0, result.stderr
    assert es.password == "new elastic pw #1" != old
    assert env_value(work, "ELASTIC_PASSWORD") == "new elastic pw #1"
    assert [line for line in (work / ".env").read_text().splitlines()
            if not line.startswith("ELASTIC_PASSWORD=")] == other_lines
    assert ("POST", "/_security/user/elastic/_password") in es.calls
    assert (work / ".env").stat().st_mode & 0o077 == 0
    pending = work / ".stack" / "rotate" / "elastic_password"
    assert pending.exists() and pending.stat().st_mode & 0o077 == 0
    assert rotate(work, "finish", "elastic_password").returncode == 0
    assert not pending.exists()
    assert "new elastic pw" not in result.stdout + result.stderr


def test_a_generated_value_when_none_is_given(checkout):
    work, es, _ = checkout
    old = env_value(work, "ELASTIC_PASSWORD")
    assert rotate(work, "start", "elastic_password").returncode == 0
    new = env_value(work, "ELASTIC_PASSWORD")
    assert new != old and len(new) >= 32 and es.password == new


def test_an_answer_lost_after_elasticsearch_took_the_password_is_finished_by_a_rerun(checkout):
    work, es, _ = checkout
    old = env_value(work, "ELASTIC_PASSWORD")
    es.drop_change = True
    first = rotate(work, "start", "elastic_password")
    assert first.returncode == 1
    assert "Elasticsearch did not take the new password of elastic" in first.stderr
    assert env_value(work, "ELASTIC_PASSWORD") == old          # .env untouched...
    pending = (work / ".stack" / "rotate" / "elastic_password").read_text()
    assert es.password == pending                              # ...the accepted one is kept
    es.drop_change = False
    second = rotate(work, "start", "elastic_password")
    assert second.returncode == 0, second.stderr
    assert "finishing the interrupted rotation" in second.stdout
    assert env_value(work, "ELASTIC_PASSWORD") == es.password == pending


def test_killed_while_elasticsearch_changes_the_password_then_run_again(checkout):
    work, es, _ = checkout
    es.delay_change = 3
    process = rotate(work, "start", "elastic_password", wait=False)
    deadline = time.monotonic() + 20
    while ("POST", "/_security/user/elastic/_password") not in es.calls and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    es.delay_change = 0
    pending = (work / ".stack" / "rotate" / "elastic_password").read_text()
    assert es.password == pending != env_value(work, "ELASTIC_PASSWORD")
    again = rotate(work, "start", "elastic_password")
    assert again.returncode == 0, again.stderr
    assert env_value(work, "ELASTIC_PASSWORD") == es.password == pending


@pytest.mark.parametrize("kill_after", [0.3, 1.0])
def test_killed_at_any_moment_the_password_elasticsearch_accepts_is_never_lost(checkout, kill_after):
    """Wherever the kill lands, the accepted password is .env's or the pending one, and a
    rerun ends with .env holding it."""
    work, es, _ = checkout
    process = rotate(work, "start", "elastic_password", "the-new-one", wait=False)
    time.sleep(kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    pending = work / ".stack" / "rotate" / "elastic_password"
    kept = {env_value(work, "ELASTIC_PASSWORD")} | ({pending.read_text()} if pending.exists() else set())
    assert es.password in kept
    again = rotate(work, "start", "elastic_password", "the-new-one")
    assert again.returncode == 0, again.stderr
    assert env_value(work, "ELASTIC_PASSWORD") == es.password == "the-new-one"


def test_an_other_value_while_a_rotation_is_pending_is_refused(checkout):
    work, es, _ = checkout
    es.drop_change = True
    rotate(work, "start", "elastic_password", "first-value")
    result = rotate(work, "start", "elastic_password", "second-value")
    assert result.returncode == 1
    assert result.stderr.strip() == ("SECRET=elastic_password: an interrupted rotation to another value is pending; "
                                     "finish it first with `make rotate SECRET=elastic_password` (no VALUE)")
    assert es.password == "first-value"


def test_a_password_elasticsearch_does_not_know_changes_nothing(checkout):
    work, es, _ = checkout
    es.password = "something else"
    before = (work / ".env").read_text()
    result = rotate(work, "start", "elastic_password", "new")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("ELASTIC_PASSWORD: Elasticsearch accepts neither the value in .env nor")
    assert (work / ".env").read_text() == before


def test_elasticsearch_down_changes_nothing(checkout):
    work, es, _ = checkout
    es.server.shutdown()
    es.server.server_close()
    before = (work / ".env").read_text()
    result = rotate(work, "start", "elastic_password", "new")
    assert result.returncode == 1
    assert "Elasticsearch does not answer; start the stack (make up)" in result.stderr
    assert (work / ".env").read_text() == before


@pytest.mark.parametrize("value", ["it's a #value with $HOME", 'double "quotes" and \\n', "plain-value_1.2", " spaced "])
def test_any_value_reads_back_from_env_as_compose_reads_it(value):
    from bundle.rotate import env_line
    from bundle.secrets import parse_env

    env, problems = parse_env(env_line("SMTP_PASSWORD", value), ".env")
    assert not problems and env["SMTP_PASSWORD"][0] == value


def test_a_quoted_value_is_written_to_env(checkout):
    work, _, _ = checkout
    assert rotate(work, "start", "smtp_password", "it's a #value").returncode == 0
    assert env_value(work, "SMTP_PASSWORD") == "it's a #value"


def test_a_secret_no_service_keeps_goes_to_env_and_make_up(checkout):
    work, es, _ = checkout
    result = rotate(work, "start", "slack_warning_webhook_url", "https://hooks.example.com/new one")
    assert result.returncode == 0, result.stderr
    assert env_value(work, "SLACK_WARNING_WEBHOOK_URL") == "https://hooks.example.com/new one"
    assert "consumers of slack_warning_webhook_url: alertmanager" in result.stdout
    assert es.calls == []


@pytest.mark.parametrize("secret, value, message", [
    ("slack_warning_webhook_url", None, "SECRET=slack_warning_webhook_url: SLACK_WARNING_WEBHOOK_URL comes from outside the bundle"),
    ("nope", "x", "SECRET=nope: no such secret in values `secrets`"),
    ("slack_warning_webhook_url", "ends in a backslash\\", "VALUE: SLACK_WARNING_WEBHOOK_URL cannot be written to .env as given"),
])
def test_refused_before_anything_changes(checkout, secret, value, message):
    work, es, _ = checkout
    before = (work / ".env").read_text()
    result = rotate(work, "start", secret, value)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert (work / ".env").read_text() == before
    assert not (work / ".stack" / "rotate" / secret).exists()


# ---------------------------------------------------------------- Grafana's admin password


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A `docker` that records its arguments and what `exec -i` got on stdin, as Grafana's
    CLI inside the container would take the new password."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    log, stdin = tmp_path / "docker-args.jsonl", tmp_path / "cli-password"
    script = bindir / "docker"
    script.write_text(f"""#!{sys.executable}
import json, sys
open({str(log)!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["exec", "-i"]:
    open({str(stdin)!r}, "w").write(sys.stdin.read())
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return log, stdin


def test_make_up_sets_grafanas_admin_password_with_its_cli(checkout, fake_docker):
    from bundle import credentials
    from bundle.cli import load
    from bundle.drift import Checkout, Container

    work, _, grafana = checkout
    log, cli_password = fake_docker
    grafana.password_file = cli_password
    grafana.password = "the password Grafana was first started with"
    values, _ = load([ROOT / "values.yaml", work / "layers.yaml"])
    here = Checkout(config=work / "config", env_file=work / ".env")
    running = {"grafana": Container("grafana-id", "grafana", True, 0, {})}

    assert credentials.rejected(here, running, before_up=True, values=values) == []  # make up can apply it
    assert credentials.apply(here, running, values=values) == []
    assert grafana.password == env_value(work, "GRAFANA_ADMIN_PASSWORD")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0][:3] == ["exec", "-i", "grafana-id"]
    assert "reset-admin-password --password-from-stdin" in calls[0][-1]
    assert not any(grafana.password in arg for call in calls for arg in call)
    # Accepted now: nothing more to do.
    log.unlink()
    assert credentials.apply(here, running, values=values) == []
    assert not log.exists()


def test_a_grafana_that_still_refuses_is_named_in_one_line(checkout, fake_docker):
    from bundle import credentials
    from bundle.cli import load
    from bundle.drift import Checkout, Container

    work, _, grafana = checkout
    grafana.password = "kept by Grafana"   # the stand-in CLI writes nowhere Grafana reads
    values, _ = load([ROOT / "values.yaml", work / "layers.yaml"])
    here = Checkout(config=work / "config", env_file=work / ".env")
    running = {"grafana": Container("grafana-id", "grafana", True, 0, {})}
    assert credentials.apply(here, running, values=values) == [
        "GRAFANA_ADMIN_PASSWORD: Grafana still rejects the value in .env for its admin user after "
        "`grafana cli admin reset-admin-password`"]


def test_an_elastic_password_elasticsearch_rejects_stops_make_up_first(checkout):
    from bundle import credentials
    from bundle.cli import load
    from bundle.drift import Checkout, Container

    work, es, _ = checkout
    es.password = "what Elasticsearch keeps"
    values, _ = load([ROOT / "values.yaml", work / "layers.yaml"])
    here = Checkout(config=work / "config", env_file=work / ".env")
    running = {"elasticsearch": Container("es-id", "elasticsearch", True, 0, {})}
    assert credentials.rejected(here, running, before_up=True, values=values) == [
        "ELASTIC_PASSWORD: Elasticsearch rejects the value in .env for its user elastic (it keeps its own copy): "
        "put the previous value back in .env, then run `make rotate SECRET=elastic_password VALUE=<new value>`"]
    assert credentials.rejected(here, {}, before_up=True, values=values) == []   # not running: nothing to ask
