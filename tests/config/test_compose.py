"""The Compose files, checked with `docker compose config` for every combination of
layers, and statically for what the stack promises: pinned images, ports on the bind
address, healthchecks, config files mounted where the commands read them, no
credentials in any committed file."""

from __future__ import annotations

import base64
import http.server
import itertools
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from bundle.build import image_ref
from bundle.secrets import read_env
from compose_project import compose_command, compose_config

pytestmark = pytest.mark.config

LAYERS = ["dashboards", "logs", "tracing", "apm"]
# APM Server writes to the logs layer's Elasticsearch.
COMBINATIONS = [dict(zip(LAYERS, combo)) for combo in itertools.product([False, True], repeat=4)
                if not (combo[3] and not combo[1])]
# The opt-in layers beyond one host, all on over every other layer (README "Remote access").
EVERYTHING = {**dict.fromkeys(LAYERS, True), "edge": True, "alertmanager_ha": True, "blackbox": True}
# Images without any tool to run a check with (FROM scratch), documented in compose/core.yml
# and compose/logs.yml.
NO_HEALTHCHECK = {"nginx-exporter", "logstash-exporter"}


@pytest.fixture(scope="module")
def rendered(root, tmp_path_factory):
    """Each combination of layers rendered (with a generated .env), and its resolved Compose model."""
    import sys

    out = {}
    for layers in [*COMBINATIONS, EVERYTHING]:
        name = "+".join(k for k, v in layers.items() if v) or "core"
        work = tmp_path_factory.mktemp(name)
        overlay = work / "layers.yaml"
        overlay.write_text(yaml.safe_dump({"layers": layers}))
        result = subprocess.run([sys.executable, "render.py", "--values", str(overlay), "--output",
                                 str(work / "config"), "--env-file", str(work / ".env")],
                                cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        out[name] = (layers, compose_config(root, work), work / "config")
    return out


def test_every_layer_combination_is_a_valid_compose_project(rendered):
    assert len(rendered) == 13
    expected = {"core": {"prometheus", "alertmanager", "node-exporter", "postgres-exporter",
                         "redis-exporter", "nginx-exporter"},
                "dashboards": {"grafana"}, "tracing": {"jaeger"}, "logs": {"elasticsearch", "logstash", "kibana"},
                "apm": {"apm-server"}, "edge": {"edge"}, "alertmanager_ha": {"alertmanager-2"},
                "blackbox": {"blackbox-exporter"}}
    for name, (layers, model, _) in rendered.items():
        services = set(model["services"])
        assert expected["core"] <= services, name
        for layer in expected.keys() - {"core"}:
            assert (expected[layer] <= services) == layers.get(layer, False), (name, layer)


EVERY_LAYER = "dashboards+logs+tracing+apm+edge+alertmanager_ha+blackbox"


@pytest.fixture(scope="module")
def full(rendered):
    return rendered[EVERY_LAYER][1]


@pytest.fixture(scope="module")
def full_config(rendered) -> Path:
    """Where the every-layer combination was rendered: Compose mounts ../config, which
    stands for this directory in that combination."""
    return rendered[EVERY_LAYER][2]


def long_running(model):
    return {name: s for name, s in model["services"].items() if s.get("restart") != "no"}


def test_images_are_the_pinned_ones_from_values(full, values):
    wanted = {image_ref(values, k) for k in values["images"] if k != "registry"}
    for name, service in full["services"].items():
        assert service["image"] in wanted, (name, service["image"])
        assert not service["image"].endswith(":latest")


def test_compose_files_name_no_image_themselves(root):
    for path in sorted((root / "compose").glob("*.yml")):
        for line in path.read_text().splitlines():
            if re.match(r"\s*image:", line):
                assert re.fullmatch(r"\s*image: \$\{[A-Z_]+_IMAGE:\?[^}]*\}", line), (path.name, line)


def test_every_published_port_is_on_the_bind_address(full, values):
    for name, service in full["services"].items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == values["bind_address"], (name, port)


def test_every_long_running_service_has_a_healthcheck(full):
    for name, service in long_running(full).items():
        if name in NO_HEALTHCHECK:
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


def test_dependencies_wait_for_health_or_completion(full):
    for name, service in full["services"].items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)


def test_state_lives_in_named_volumes_and_services_restart(full):
    for name, service in long_running(full).items():
        assert service["restart"] == "unless-stopped", name
        assert service.get("mem_limit"), name
        assert service["logging"]["options"]["max-size"], name
    volumes = {v["target"]: v["source"] for s in full["services"].values() for v in s.get("volumes", [])
               if v["type"] == "volume"}
    for path in ["/prometheus", "/alertmanager", "/var/lib/grafana", "/usr/share/elasticsearch/data",
                 "/usr/share/logstash/data", "/badger"]:
        assert path in volumes, path


def test_config_files_are_mounted_where_the_commands_read_them(full, full_config, root):
    """Every bind-mounted config path exists, and every /etc/... path a command or
    environment names resolves to a rendered file through those mounts."""
    checked = 0
    for name, service in full["services"].items():
        binds = [(Path(v["source"]), v["target"]) for v in service.get("volumes", []) if v["type"] == "bind"]
        mounts = {target: full_config / source.relative_to(root / "config") for source, target in binds
                  if source.is_relative_to(root / "config")}
        for source in mounts.values():
            assert source.exists(), (name, source)
        words = " ".join(service.get("command") or []) + " " + " ".join(
            str(v) for v in (service.get("environment") or {}).values())
        for path in re.findall(r"(/(?:etc|usr/share/\w+/(?:config|pipeline))/[\w./-]+\.(?:yml|yaml|conf|sh))", words):
            hits = [src / Path(path).relative_to(tgt) for tgt, src in mounts.items()
                    if path == tgt or path.startswith(tgt.rstrip("/") + "/")]
            hits += [src for tgt, src in mounts.items() if path == tgt]
            assert any(h.is_file() for h in hits), (name, path)
            checked += 1
    assert checked >= 3


SECRETISH = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|APIKEY|API_KEY", re.I)


def test_no_credentials_in_committed_files(root, values):
    """Secret-looking settings in the Compose files only ever reference .env or a secret file."""
    for path in sorted((root / "compose").glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        for name, service in (data.get("services") or {}).items():
            env = service.get("environment") or {}
            items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
            for key, value in items:
                if SECRETISH.search(key):
                    assert re.fullmatch(r"\$\{[A-Z_]+[^}]*\}|/run/secrets/\w+", str(value)), (path.name, name, key)
    example = (root / ".env.example").read_text()
    assert not re.search(r"(?m)^[A-Z_]+=.+$", example), ".env.example must hold no values"
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.split()
    assert ".env" not in tracked


def test_compose_config_of_every_layer_combination_shows_no_secret(root, rendered):
    """`docker compose config` prints the whole model: secrets reach the services as files,
    so not one value of .env may be in it (and so none is in the containers' Env or Cmd)."""
    for name, (_, _, config) in rendered.items():
        secrets = [v for v in read_env(config.parent / ".env").values() if len(v) >= 8]
        assert len(secrets) >= 3, name
        base, env = compose_command(config, config.parent / ".env")
        for profile in ([], ["--profile", "post-up"]):
            out = subprocess.run([*base, *profile, "config"], cwd=root, capture_output=True, text=True, env=env)
            assert out.returncode == 0, out.stderr
            leaked = [v[:4] + "..." for v in secrets if v in out.stdout]
            assert not leaked, (name, profile, leaked)


def test_services_without_a_file_option_get_their_secrets_through_the_wrapper(full, root):
    """Each VAR=FILE of compose/bin/with-secrets names a secret the service mounts, and the
    wrapper itself is mounted where the command runs it."""
    wrapped = 0
    for name, service in full["services"].items():
        argv = (service.get("entrypoint") or []) + (service.get("command") or [])
        if "/usr/local/bin/with-secrets" not in argv:
            continue
        wrapped += 1
        mounts = {v["target"]: v["source"] for v in service.get("volumes", [])}
        assert mounts["/usr/local/bin/with-secrets"] == str(root / "compose/bin/with-secrets"), name
        start = argv.index("/usr/local/bin/with-secrets") + 1
        pairs = argv[start:argv.index("--", start)]
        assert pairs, name
        targets = {secret["target"] for secret in service.get("secrets", [])}
        for pair in pairs:
            var, path = pair.split("=", 1)
            assert path in targets, (name, pair)
        assert not any(k.endswith(("PASSWORD", "TOKEN", "KEY")) for k in service.get("environment") or {}), name
    # Logstash, Kibana, APM Server and the elasticsearch exporter (README "Secrets").
    assert wrapped == 4


def test_the_wrapper_exports_secret_files_and_runs_the_command(root, tmp_path):
    """compose/bin/with-secrets under the POSIX sh of this machine (dash) and busybox, the
    shells of the images it runs in."""
    secret = tmp_path / "pw"
    secret.write_text("p w $HOME `id` '\"\n\n")
    shells = [sh for sh in (["sh"], ["busybox", "sh"]) if shutil.which(sh[0])]
    for sh in shells:
        out = subprocess.run([*sh, str(root / "compose/bin/with-secrets"), f"PW={secret}", "--",
                              "sh", "-c", 'printf "%s|%s" "$PW" "$1"', "x", "arg one"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (sh, out.stderr)
        assert out.stdout == "p w $HOME `id` '\"|arg one", sh
        missing = subprocess.run([*sh, str(root / "compose/bin/with-secrets"), f"PW={tmp_path}/none", "--", "true"],
                                 capture_output=True, text=True)
        assert missing.returncode == 1 and "missing or unreadable" in missing.stderr, sh
        bad = subprocess.run([*sh, str(root / "compose/bin/with-secrets"), "PW", "--", "true"],
                             capture_output=True, text=True)
        assert bad.returncode == 64, sh
    assert shells


def test_git_ignores_every_file_that_holds_secrets(root):
    """.env, the secret files render.py writes, a temporary copy of .env an interrupted
    write leaves, and backups of .env; not the documented example."""
    paths = [".env", ".secrets/smtp_password", "..env.a1b2c3", ".env.bak", ".env.local"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths, ".env.example"], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert ignored == paths


def test_no_value_of_the_local_env_appears_in_config_or_compose(root):
    """The secrets this checkout actually uses (.env, when present) are nowhere in the
    files Compose and the services read."""
    env = root / ".env"
    if not env.exists():
        pytest.skip("no .env here yet: make render creates it")
    secrets = [v for v in read_env(env).values() if len(v) >= 8]
    assert secrets
    for path in [*(root / "config").rglob("*"), *(root / "compose").glob("*.yml")]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            leaked = [s[:4] + "..." for s in secrets if s in text]
            assert not leaked, (str(path.relative_to(root)), leaked)


# Who must receive each secret of the defaults (README "Secrets", .env.example): the
# services whose values name it, and the setup job that sets the Elasticsearch users'
# passwords. Written out here, not derived from bundle/layers.yaml.
SECRET_CONSUMERS = {
    # alertmanager-2: the second Alertmanager of the alertmanager_ha layer.
    "smtp_password": {"alertmanager", "alertmanager-2"},
    "slack_critical_webhook_url": {"alertmanager", "alertmanager-2"},
    "slack_warning_webhook_url": {"alertmanager", "alertmanager-2"},
    "postgres_exporter_password": {"postgres-exporter"},
    # redis_exporter gets it only inside the map of FORMATTED below.
    "redis_password": set(),
    "grafana_admin_password": {"grafana"},
    "grafana_secret_key": {"grafana"},
    "grafana_reader_password": {"grafana", "elasticsearch-setup"},
    # The bootstrap password, and the setup job: nothing else logs in as `elastic`.
    "elastic_password": {"elasticsearch", "elasticsearch-setup"},
    "kibana_system_password": {"kibana", "elasticsearch-setup"},
    "kibana_encryption_key": {"kibana"},
    "kibana_security_key": {"kibana"},
    "kibana_reporting_key": {"kibana"},
    # The people's users, made by the setup job; kibana-setup works as the Kibana admin.
    "logs_viewer_password": {"elasticsearch-setup"},
    "kibana_admin_password": {"elasticsearch-setup", "kibana-setup"},
    "logstash_writer_password": {"logstash", "elasticsearch-setup"},
    "elasticsearch_exporter_password": {"elasticsearch-exporter", "elasticsearch-setup"},
    "apm_server_password": {"apm-server", "elasticsearch-setup"},
    "apm_secret_token": {"apm-server"},
    "edge_admin_password": {"edge"},
    "edge_agent_password": {"edge"},
    # The login of pull-mode hosts' exporters (values `agent`).
    "pull_password": {"prometheus"},
    # Prometheus' and Alertmanager's own login: nobody's while web_tls is off (the
    # default); tests/unit/test_web_tls.py has its users with web_tls on.
    "web_password": set(),
}
# Files in a program's own format made from a secret (README "Secrets"): redis_exporter's
# --redis.password-file, a map that names the configured Redis only.
FORMATTED = {"redis_password_map": {"redis-exporter"}}


def secret_receivers(model: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, service in model["services"].items():
        for secret in service.get("secrets", []):
            found.setdefault(secret["source"], set()).add(name)
    return found


def test_every_secret_reaches_exactly_the_services_that_use_it(full, values, root):
    assert set(SECRET_CONSUMERS) == set(values["secrets"])
    # kibana-setup runs in the post-up profile, outside the default model.
    wanted = {k: v - {"kibana-setup"} for k, v in {**SECRET_CONSUMERS, **FORMATTED}.items() if v}
    assert wanted == secret_receivers(full)
    for secret, spec in full["secrets"].items():
        # A file render.py writes next to .env, never a value from the environment
        # (Compose refuses those in read_only services).
        assert spec == {"name": f"observability_{secret}", "file": str(root / ".secrets" / secret)}, secret


def test_a_layer_that_is_off_gets_no_secret_and_no_service(rendered):
    layers, model, _ = rendered["core"]
    assert set(secret_receivers(model)) == {"smtp_password", "slack_critical_webhook_url", "slack_warning_webhook_url",
                                           "postgres_exporter_password", "redis_password_map", "pull_password"}
    _, model, _ = rendered["dashboards"]
    assert secret_receivers(model)["grafana_reader_password"] == {"grafana"}   # no elasticsearch-setup


def test_a_new_receiver_needs_only_values_and_env(root, run_render, tmp_path):
    """README: adding a receiver touches values (or site.yaml) and .env, nothing else."""
    overlay = {"secrets": {"pager_url": {"env": "PAGER_URL", "generate": False, "description": "pager"}},
               "alertmanager": {"receivers": {"pager": {"webhook_configs": [{"url_secret": "pager_url"}]}},
                                "route": {"routes": [{"matchers": ['team="billing"'], "receiver": "pager"}]}}}
    first = run_render(overlay)
    assert first.code == 0, first.stderr
    assert "PAGER_URL=" in first.env_file.read_text()          # .env gains the variable
    assert "PAGER_URL=" in (tmp_path / ".env.example").read_text()
    first.env_file.write_text(first.env_file.read_text().replace("PAGER_URL=", "PAGER_URL=https://pager.example.com/x"))
    assert run_render(overlay).code == 0
    base, env = compose_command(first.output, first.env_file)
    model = json.loads(subprocess.run([*base, "config", "--format", "json"], cwd=root, capture_output=True,
                                      text=True, env=env, check=True).stdout)
    assert "alertmanager" in secret_receivers(model)["pager_url"]
    am = first.yaml("alertmanager/alertmanager.yml")
    pager = next(r for r in am["receivers"] if r["name"] == "pager")
    assert pager["webhook_configs"][0]["url_file"] == "/run/secrets/pager_url"


# README "Hardening": the exceptions to the shared settings (config/compose.overlay.yml:
# no capability, no new privileges, a PID limit, a read-only root). Written from the README table.
CAPABILITIES = {"jaeger-volume-init": {"CHOWN", "DAC_READ_SEARCH"}, "edge": {"NET_BIND_SERVICE"}}
PIDS = {"elasticsearch": 4096, "logstash": 1024}
WRITABLE_ROOT = {"grafana", "elasticsearch", "logstash", "kibana", "apm-server"}


def test_every_service_is_hardened_unless_the_readme_says_why(rendered):
    for combination, (_, model, _) in rendered.items():
        for name, service in model["services"].items():
            where = (combination, name)
            assert service.get("cap_drop") == ["ALL"], where
            assert set(service.get("cap_add") or []) == CAPABILITIES.get(name, set()), where
            assert "no-new-privileges:true" in service.get("security_opt", []), where
            assert service.get("pids_limit") == PIDS.get(name, 256), where
            # `docker compose config` leaves out read_only: false (the default).
            assert bool(service.get("read_only")) is (name not in WRITABLE_ROOT), where
            assert service["logging"]["options"]["max-size"], where


# ---------------------------------------------------------------- healthchecks
# The checks that parse an answer run here, as Docker runs them (bash -c, with Compose's
# $$ turned into $), against a server that answers as the service does when healthy and
# when not (bodies shaped as in the services' API documentation).

class Answers(http.server.BaseHTTPRequestHandler):
    routes: dict = {}
    password = ""

    def do_GET(self):
        status, body = self.routes.get(self.path.split("?")[0], (404, "{}"))
        if self.password and self.headers.get("Authorization") != "Basic " + base64.b64encode(
                f"elastic:{self.password}".encode()).decode():
            status, body = 401, '{"error":"missing authentication credentials"}'
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def run_check(full, service: str, port: int, routes: dict, password: str = "") -> int:
    test = full["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"], test
    handler = type("Handler", (Answers,), {"routes": routes, "password": password})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # `docker compose config` prints $ escaped as $$, as the Compose file has it.
        # The check's address: loopback, or the service's stack-only alias.
        address = r"(?:127\.0\.0\.1|" + re.escape(service) + r"\.stack)"
        script = re.sub(address + "([:/])" + str(port), rf"127.0.0.1\g<1>{server.server_address[1]}",
                        test[3].replace("$$", "$"))
        return subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                              timeout=20).returncode
    finally:
        server.shutdown()
        server.server_close()


HEALTH_REPORT = ('{"host":"logstash","version":"9.5.7","status":"%s","pipeline":{"workers":2},'
                 '"indicators":{"pipelines":{"status":"%s","indicators":{"main":{"status":"%s"}}}}}')


@pytest.mark.parametrize("top, inner, healthy", [("green", "green", True), ("yellow", "yellow", True),
                                                 ("red", "green", False), ("unknown", "green", False),
                                                 ("green", "red", True)])
def test_the_logstash_check_reads_the_top_status_of_the_health_report(full, top, inner, healthy):
    body = HEALTH_REPORT % (top, inner, inner)
    assert (run_check(full, "logstash", 9600, {"/_health_report": (200, body)}) == 0) == healthy


def test_the_kibana_check_wants_available(full):
    ok = '{"status":{"overall":{"level":"available"}}}'
    degraded = '{"status":{"overall":{"level":"degraded"}}}'
    assert run_check(full, "kibana", 5601, {"/api/status": (200, ok)}) == 0
    assert run_check(full, "kibana", 5601, {"/api/status": (200, degraded)}) != 0
    assert run_check(full, "kibana", 5601, {"/api/status": (503, '{"status":{"overall":{"level":"unavailable"}}}')}) != 0


def test_the_apm_server_check_speaks_http_over_bash_alone(full):
    assert run_check(full, "apm-server", 8200, {"/": (200, '{"version":"9.5.7"}')}) == 0
    assert run_check(full, "apm-server", 8200, {"/": (503, '{"error":"not ready"}')}) != 0
    assert run_check(full, "apm-server", 8200, {}) != 0


def test_the_elasticsearch_check_wants_security_on_and_sends_no_password(full):
    """Up with security on: an anonymous request is refused with 401 (the stub refuses
    every request without elastic's password, so a check that sent one would fail)."""
    info = {"/": (200, '{"name":"es","tagline":"You Know, for Search"}')}
    assert run_check(full, "elasticsearch", 9200, info, password="pw-1") == 0
    assert run_check(full, "elasticsearch", 9200, info) != 0, "security off must not count as healthy"
    assert run_check(full, "elasticsearch", 9200, {"/": (503, '{"error":"starting"}')}) != 0


# README "Security defaults" (Grafana), written from Grafana's configuration reference:
# https://grafana.com/docs/grafana/latest/setup-grafana/configure-grafana/
GRAFANA_HARDENING = {
    "GF_USERS_ALLOW_SIGN_UP": "false",
    "GF_USERS_ALLOW_ORG_CREATE": "false",
    "GF_AUTH_ANONYMOUS_ENABLED": "false",
    "GF_SNAPSHOTS_ENABLED": "false",
    "GF_SNAPSHOTS_EXTERNAL_ENABLED": "false",
    "GF_PUBLIC_DASHBOARDS_ENABLED": "false",
    "GF_PLUGINS_PREINSTALL_DISABLED": "true",
    "GF_PLUGINS_PREINSTALL_AUTO_UPDATE": "false",
    "GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED": "true",
    "GF_PLUGINS_PLUGIN_ADMIN_ENABLED": "false",
    "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
    "GF_SECURITY_SECRET_KEY__FILE": "/run/secrets/grafana_secret_key",
    "GF_SECURITY_ADMIN_PASSWORD__FILE": "/run/secrets/grafana_admin_password",
}


def test_grafana_runs_with_the_hardening_the_readme_promises(full):
    environment = full["services"]["grafana"]["environment"]
    assert {key: environment.get(key) for key in GRAFANA_HARDENING} == GRAFANA_HARDENING


@pytest.mark.parametrize("root_url, secure", [("", "false"), ("http://grafana.example.com/", "false"),
                                              ("https://grafana.example.com/", "true")])
def test_grafana_cookies_are_secure_exactly_over_https(run_render, root_url, secure):
    """A Secure cookie over plain http would make signing in impossible; over https it is
    what keeps the session cookie off the wire."""
    result = run_render({"layers": {"dashboards": True}, "grafana": {"root_url": root_url}})
    assert result.code == 0, result.stderr
    assert f"GRAFANA_COOKIE_SECURE='{secure}'" in result.text("compose.env").splitlines()
