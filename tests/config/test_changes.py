"""A change reaches exactly the services it concerns (README "Changing a secret or a
setting"): a changed secret moves the fingerprint of its consumers and of no other
service, a changed value of a service that reads its config at start moves that
service's alone, and a change Prometheus, Alertmanager or Grafana's dashboards reload by
themselves moves none. Checked on Compose's own view: `docker compose config` with the
fingerprints of .stack/fingerprints.yml, whose labels enter the hash `up` compares."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bundle.drift import LABEL, Checkout, labels, parse_label, write_overlay
from bundle.secrets import read_env
from test_compose import FORMATTED, SECRET_CONSUMERS

pytestmark = pytest.mark.config

ALL_LAYERS = {"layers": {"dashboards": True, "tracing": True, "logs": True, "apm": True, "edge": True,
                         "alertmanager_ha": True, "blackbox": True}}

# A value of each service that reads its configuration only at start, and the service
# (README table "Changing a secret or a setting").
START_ONLY = {
    "kibana": {"ports": {"kibana": 5602}},
    "apm-server": {"apm": {"rum": True}},
    "jaeger": {"jaeger": {"retention": "72h"}},
    "grafana": {"grafana": {"datasources": {"prometheus": {"name": "Metrics"}}}},
    "logstash": {"logstash": {"queue_max_bytes": "2gb"}},
    "elasticsearch-setup": {"elasticsearch": {"retention_days": 14}},
    "edge": {"edge": {"admin_user": "operator"}},
}
# Behind the edge, Kibana's settings name only the edge's URL (a change of it moves the
# edge's certificate too): its case runs without the edge, before and after.
START_ONLY_BASE = {"kibana": {"layers": {"edge": False}}}
# Values whose files the services reload by themselves: no service is recreated.
RELOADED = {
    "prometheus rules": {"alerts": {"HighCPUUsage": {"threshold": 91}}},
    "alertmanager routing": {"alertmanager": {"route": {"repeat_interval": "3h"}}},
}


class Stack:
    """One checkout: the Compose files (which mount ../config), a render with all layers
    on, its .env and its .stack/ state."""

    def __init__(self, root: Path, work: Path):
        self.root, self.work = root, work
        self.checkout = Checkout(root=work, config=work / "config", env_file=work / ".env")

    def render(self, *overlays: dict) -> None:
        args = [sys.executable, "render.py", "--output", str(self.checkout.config),
                "--env-file", str(self.checkout.env_file)]
        for i, overlay in enumerate((ALL_LAYERS, *overlays)):
            path = self.work / f"overlay-{i}.yaml"
            path.write_text(yaml.safe_dump(overlay))
            args += ["--values", str(path)]
        # What is checked here is which files change, not whether the services accept them.
        env = {**os.environ, "PROMTOOL": "/bin/true", "AMTOOL": "/bin/true"}
        result = subprocess.run(args, cwd=self.root, capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr

    def set_env(self, var: str, value: str) -> None:
        text = self.checkout.env_file.read_text()
        self.checkout.env_file.write_text(re.sub(rf"(?m)^{var}=.*$", f"{var}={value}", text))

    def labels(self) -> dict[str, dict[str, str]]:
        """service -> {input: hash} as `docker compose config` shows the labels."""
        write_overlay(self.checkout)
        result = self.checkout.compose("config", "--format", "json", with_overlay=True)
        assert result.returncode == 0, result.stderr
        model = json.loads(result.stdout)
        return {name: parse_label((service.get("labels") or {}).get(LABEL)) for name, service in model["services"].items()}

    def hashes(self) -> dict[str, str]:
        write_overlay(self.checkout)
        result = self.checkout.compose("config", "--hash", "*", with_overlay=True)
        assert result.returncode == 0, result.stderr
        return dict(line.split(" ", 1) for line in result.stdout.splitlines())


def moved(before: dict, after: dict) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


@pytest.fixture(scope="module")
def base(root, tmp_path_factory) -> tuple[Stack, dict]:
    """A render with every layer on, and its fingerprints as Compose shows them."""
    work = tmp_path_factory.mktemp("base")
    shutil.copytree(root / "compose", work / "compose")
    stack = Stack(root, work)
    stack.render()
    return stack, stack.labels()


@pytest.fixture
def stack(base, tmp_path) -> Stack:
    """A copy of the base checkout (same salt) to change."""
    shutil.copytree(base[0].work, tmp_path / "copy")
    return Stack(base[0].root, tmp_path / "copy")


def test_every_service_is_fingerprinted_with_hashes_only(base):
    stack, labels = base
    assert set(labels) >= {"prometheus", "alertmanager", "grafana", "kibana", "logstash", "elasticsearch"}
    text = stack.checkout.overlay.read_text()
    for value in read_env(stack.checkout.env_file).values():
        if len(value) >= 8:
            assert value not in text
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for inputs in labels.values() for h in inputs.values())
    # Prometheus, Alertmanager and Grafana's dashboards re-read their files: not fingerprinted.
    assert not any(name.startswith("file:config/prometheus/") for name in labels["prometheus"])
    assert not any(name.startswith("file:config/alertmanager/") for name in labels["alertmanager"])
    assert not any(name.startswith("file:config/grafana/dashboards/") for name in labels["grafana"])
    assert "file:config/kibana/kibana.yml" in labels["kibana"]
    assert stack.checkout.state.stat().st_mode & 0o077 == 0


def test_a_changed_secret_moves_exactly_its_consumers(stack, values):
    """Each secret in turn, on Compose's resolved model (which a secret's value does not
    change)."""
    model = stack.checkout.model()
    before = {name: parse_label(value) for name, value in labels(stack.checkout, model).items()}
    assert set(SECRET_CONSUMERS) == set(values["secrets"])
    original = stack.checkout.env_file.read_text()
    for secret in sorted(SECRET_CONSUMERS):
        stack.checkout.env_file.write_text(original)
        stack.set_env(values["secrets"][secret]["env"], f"changed-{secret}-value")
        after = {name: parse_label(value) for name, value in labels(stack.checkout, model).items()}
        # kibana-setup runs with `compose run` (post-up profile): a new container every time.
        # A file in a program's own format moves with the secret it is made of.
        made_of = {"redis_password": FORMATTED["redis_password_map"]}.get(secret, set())
        assert moved(before, after) == (SECRET_CONSUMERS[secret] | made_of) - {"kibana-setup"}, secret


def test_a_moved_fingerprint_moves_the_hash_compose_compares(base, stack, values):
    """The labels enter the configuration hash `up` compares: a changed secret moves the
    hash of its consumers and of no other service."""
    hashes = stack.hashes()
    stack.set_env(values["secrets"]["grafana_reader_password"]["env"], "another-reader-password")
    assert moved(hashes, stack.hashes()) == {"grafana", "elasticsearch-setup"}


@pytest.mark.parametrize("service", sorted(START_ONLY))
def test_a_changed_value_of_a_start_only_service_moves_it_alone(base, stack, service):
    labels_before = base[1]
    if service in START_ONLY_BASE:
        stack.render(START_ONLY_BASE[service])
        labels_before = stack.labels()
    stack.render(START_ONLY_BASE.get(service, {}), START_ONLY[service])
    after = stack.labels()
    assert moved(labels_before, after) == {service}
    changed = {name for name in after[service] if after[service][name] != labels_before[service].get(name)}
    assert changed and all(name.startswith("file:config/") for name in changed), changed


@pytest.mark.parametrize("change", sorted(RELOADED))
def test_a_change_the_services_reload_moves_no_fingerprint(base, stack, change):
    before = {p.relative_to(stack.work): p.read_bytes() for p in stack.checkout.config.rglob("*") if p.is_file()}
    stack.render(RELOADED[change])
    after = {p.relative_to(stack.work): p.read_bytes() for p in stack.checkout.config.rglob("*") if p.is_file()}
    assert before != after  # the change did reach config/
    assert moved(base[1], stack.labels()) == set()


def test_another_checkout_with_the_same_secrets_gets_other_fingerprints(base, stack):
    shutil.rmtree(stack.checkout.state)
    mine, theirs = base[1], stack.labels()
    assert all(mine[s] != theirs[s] for s in mine if mine[s])


def readme_table(root: Path, header: str) -> list[list[str]]:
    lines = (root / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_says_what_recreates_each_service(root, base, values):
    """README's table of services names exactly the inputs make up compares."""
    labels = base[1]
    described = set()
    for cells in readme_table(root, "| service | a change of these recreates it"):
        services = re.findall(r"`([a-z0-9-]+)`", cells[0])
        tokens = re.findall(r"`([^`]+)`", cells[1])
        secrets = {f"secret:{t}" for t in tokens if t in values["secrets"]}
        paths = [t for t in tokens if t.startswith(("config/", "compose/", "private/"))]
        for service in services:
            described.add(service)
            if service not in labels:   # kibana-setup: `compose run`, a new container each time
                assert "runs anew each time" in cells[1], service
                continue
            got = set(labels[service])
            assert {n for n in got if n.startswith("secret:")} == secrets, service
            files = {n.removeprefix("file:") for n in got if n.startswith("file:")}
            assert all(any(f == p or f.startswith(p) for p in paths) for f in files), (service, files, paths)
            assert all(any(f == p or f.startswith(p) for f in files) for p in paths), (service, files, paths)
    assert set(labels) <= described, set(labels) - described
