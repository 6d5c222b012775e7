"""render.py's reading of values and .env against the real programs: Compose for .env
and compose.env, promtool (Prometheus' duration parser), amtool (Go's time.Duration and
the notification templates), `docker compose config` for the rendered stack."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bundle.secrets import parse_env
from compose_project import compose_command
from inprocess import render, rendered_copy, snapshot

pytestmark = pytest.mark.config


def docker_compose() -> str:
    docker = shutil.which("docker")
    if not docker:
        pytest.fail("docker (with the compose plugin) is needed: see scripts/provision-docker.sh")
    return docker


def compose_values(tmp_path: Path, lines: list[str]) -> dict[str, str]:
    """What Compose makes of each KEY=... line of an env file: the value it interpolates."""
    env = tmp_path / "probe.env"
    env.write_text("\n".join(lines) + "\n")
    keys = [line.split("=", 1)[0].removeprefix("export ").strip() for line in lines]
    compose = tmp_path / "compose.yml"
    compose.write_text(yaml.safe_dump({"services": {"probe": {
        "image": "busybox:1", "environment": {key: "${%s}" % key for key in keys}}}}))
    result = subprocess.run([docker_compose(), "compose", "-f", str(compose), "--env-file", str(env), "config",
                             "--format", "json"], capture_output=True, text=True, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr
    # `config` writes every literal $ as $$.
    return {k: v.replace("$$", "$") for k, v in json.loads(result.stdout)["services"]["probe"]["environment"].items()}


ENV_LINES = [
    "A=plain",
    "B=with spaces # and a comment",
    "C='single $HOME ${HOME} \\n # kept'",
    "D='it\\'s'",
    'E="double \\$HOME $$ \\"q\\" \\\\ back"',
    'F="tab\\tnew\\nline"',
    "export G=exported",
    "H=a#b",
    "I=",
    "J='a\\\\'",
    "K = spaced",
    'L="ends with backslash \\\\"',
]


def test_render_reads_env_values_as_compose_does(tmp_path):
    ours, problems = parse_env("\n".join(ENV_LINES) + "\n", "probe.env")
    assert problems == []
    theirs = compose_values(tmp_path, ENV_LINES)
    assert {key: value for key, (value, _) in ours.items()} == theirs


@pytest.mark.parametrize("line", ["A=pg$HOME pass", 'A="x $HOME"', "A=${HOME}", 'A="${HOME:-x}"'])
def test_what_render_refuses_in_env_compose_would_indeed_expand_or_alter(tmp_path, line):
    _, problems = parse_env(line + "\n", "probe.env")
    assert problems
    raw = line.split("=", 1)[1].strip('"')
    assert compose_values(tmp_path, [line])["A"] != raw or "$" not in raw


def test_compose_env_values_reach_compose_exactly(tmp_path):
    """to_env quotes every value so that Compose reads it back unchanged."""
    url = "http://nginx:8080/it's\\st$ub${HOME}$$\"q"
    work = rendered_copy(tmp_path, {"exporters": {"nginx": {"stub_status_url": url}}})
    base, env = compose_command(work / "config", work / ".env")
    result = subprocess.run([*base, "config", "--format", "json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    model = json.loads(result.stdout)
    command = model["services"]["nginx-exporter"]["command"]
    assert [c.replace("$$", "$") for c in command if c.startswith("--nginx.")] == [f"--nginx.scrape-uri={url}"]


def test_the_reviewed_settings_win_over_env_and_the_shell(tmp_path):
    """scripts/compose.sh reads config/compose.env last and drops its variables (and any
    COMPOSE_*) from the environment: a BIND_ADDRESS or an image in .env, or settings
    exported in the shell, change nothing (render.py refuses such .env lines, and any
    COMPOSE_* there, too; here they are added behind its back)."""
    root = Path(__file__).resolve().parents[2]
    work = rendered_copy(tmp_path)
    (work / "scripts").mkdir()
    for script in ("compose.sh", "host-env.sh"):
        shutil.copy2(root / "scripts" / script, work / "scripts" / script)
    (work / "compose").symlink_to(root / "compose")
    with (work / ".env").open("a") as env:
        env.write("BIND_ADDRESS=0.0.0.0\nPROMETHEUS_IMAGE=prom/prometheus:latest\n")
    shell = {"PATH": "/usr/bin:/bin:/usr/local/bin", "BIND_ADDRESS": "0.0.0.0", "PROMETHEUS_PORT": "1",
             "COMPOSE_PROFILES": "post-up", "COMPOSE_FILE": "compose/core.yml"}
    result = subprocess.run([str(work / "scripts" / "compose.sh"), "config", "--format", "json"],
                            capture_output=True, text=True, env=shell)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["prometheus"]["ports"][0]["host_ip"] == "127.0.0.1"
    assert services["prometheus"]["ports"][0]["published"] == "9090"
    assert not services["prometheus"]["image"].endswith(":latest")
    names = set(services)
    assert "grafana" in names and "kibana-setup" not in names, names


@pytest.mark.parametrize("duration", ["15d", "1m30s", "1y2w3d", "90s", "0", "30s1m", "1.5h", "10", "1d12h",
                                      "2h1d", "1us", "5ms", ""])
def test_the_duration_rule_is_prometheus_own(tmp_path, tool, duration):
    """The schema's duration and promtool (prometheus/common model.ParseDuration, which
    the retention flag uses too) agree on every form."""
    from bundle.schema import schema
    import re

    pattern = schema()["$defs"]["duration"]["pattern"]
    ours = re.search(pattern, duration) is not None
    config = tmp_path / "p.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": duration, "scrape_timeout": "0"}}))
    theirs = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True).returncode == 0
    assert ours == theirs, (duration, ours, theirs)


@pytest.mark.parametrize("duration", ["168h", "90m", "1.5h", "1h30m", "30s1m", "7d", "1w", "10", "5µs", "0"])
def test_the_go_duration_rule_is_go_own(tmp_path, tool, duration):
    """jaeger.retention is a Go time.Duration; so is an Alertmanager webhook `timeout`,
    which amtool parses with the same time.ParseDuration."""
    from bundle.schema import schema
    import re

    pattern = schema()["$defs"]["go_duration"]["pattern"]
    ours = re.search(pattern, duration) is not None
    config = tmp_path / "am.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "r"}, "receivers": [
        {"name": "r", "webhook_configs": [{"url": "http://x/", "timeout": duration}]}]}))
    theirs = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True).returncode == 0
    # "0" is a Go duration but no retention: the schema refuses it, and render.py asks for > 0.
    assert ours == (theirs and duration != "0"), (duration, ours, theirs)


def test_a_notification_text_alertmanager_cannot_render_is_refused(tmp_path, tool):
    work = rendered_copy(tmp_path)
    before = snapshot(work / "config")
    overlay = ("alertmanager:\n  receivers:\n    critical:\n      slack_configs:\n"
               "        - api_url_secret: slack_critical_webhook_url\n          title: '{{ .Broken'\n"
               "    default:\n      email_configs:\n        - to: ops@example.com\n"
               "          headers: {Subject: '{{ .CommonLabels.x | nosuchfunction }}'}\n")
    result = render(work, overlay, extra=["--require-validators"])
    assert result.code == 1, result.stderr
    assert [line.split(": ", 2)[1] for line in result.problems] == [
        "alertmanager.receivers.critical.slack_configs[0].title",
        "alertmanager.receivers.default.email_configs[0].headers.Subject"]
    assert all("Alertmanager cannot render this notification text" in line for line in result.problems)
    assert result.problems[0].split(": ")[0].endswith("overlay-0.yaml:6")
    assert snapshot(work / "config") == before
    # amtool check-config alone lets the broken title through:
    config = tmp_path / "am"
    shutil.copytree(work / "config" / "alertmanager", config)
    am = yaml.safe_load((config / "alertmanager.yml").read_text())
    am["receivers"][1]["slack_configs"][0]["title"] = "{{ .Broken"
    (config / "alertmanager.yml").write_text(yaml.safe_dump(am))
    assert subprocess.run([tool("amtool"), "check-config", "alertmanager.yml"], cwd=config,
                          capture_output=True).returncode == 0


def test_check_runs_docker_compose_config_on_the_rendered_stack(tmp_path, monkeypatch):
    """A stack Compose refuses fails `render.py --check` (make check) with one line: here a
    Compose file with a host port Compose cannot read."""
    import bundle.validate

    docker_compose()
    root = Path(__file__).resolve().parents[2]
    fake_root = tmp_path / "checkout"
    shutil.copytree(root / "compose", fake_root / "compose")
    (fake_root / ".tools").symlink_to(root / ".tools")
    core = fake_root / "compose" / "core.yml"
    core.write_text(core.read_text().replace("${PROMETHEUS_PORT:?}:9090", "${PROMETHEUS_PORT:?}.0:9090"))
    monkeypatch.setattr(bundle.validate, "ROOT", fake_root)
    work = rendered_copy(tmp_path / "work")
    result = render(work, extra=["--check"])
    assert result.code == 1
    assert len(result.problems) == 1, result.stderr
    assert result.problems[0].startswith("config/compose.env: docker compose config refuses the stack")
    assert "9090.0" in result.problems[0]


@pytest.mark.parametrize("repository, registry", [
    ("prom/prometheus", ""), ("docker.elastic.co/elasticsearch/elasticsearch", ""), ("prom/x__y", ""),
    ("prom/x---y", "mirror.example.com:5000/"), ("x", "localhost/"), ("x", "Mirror.example.com/team/"),
    ("prom/-x", ""), ("Prom/x", ""), ("prom/x._y", ""), ("x", "a..b/"), ("x", "-a.com/"), ("x", "a.com/_t/"),
])
def test_the_image_rule_is_docker_own(repository, registry):
    """The schema's repository and registry patterns against Docker's own reference
    parser (`docker image inspect` answers "invalid reference format" before it looks)."""
    import re

    from bundle.schema import schema

    defs = schema()["properties"]["images"]["properties"]["registry"]["pattern"], \
        schema()["$defs"]["image"]["properties"]["repository"]["pattern"]
    ours = re.search(defs[0], registry) is not None and re.search(defs[1], repository) is not None
    result = subprocess.run([docker_compose(), "image", "inspect", f"{registry}{repository}:v1"],
                            capture_output=True, text=True)
    theirs = "invalid reference format" not in result.stderr and "--help" not in result.stderr
    assert ours == theirs, (registry + repository, result.stderr)
