"""The rendered configuration, checked by the services' own tools (promtool, amtool)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from bundle.versions import validator_version


pytestmark = pytest.mark.config


def test_validators_are_a_version_the_stack_is_proven_with(tool, values):
    """Debian's of versions.yaml (make tools, the stand-ins), or those of the pinned images."""
    def version(exe):
        out = subprocess.run([exe, "--version"], capture_output=True, text=True)
        return (out.stdout + out.stderr).split("version ")[1].split()[0].split("+")[0]

    assert version(tool("promtool")) in (validator_version("promtool"), values["images"]["prometheus"]["tag"].lstrip("v"))
    assert version(tool("amtool")) in (validator_version("amtool"), values["images"]["alertmanager"]["tag"].lstrip("v"))


def test_config_is_fresh_for_the_values_in_use(root):
    """config/ is exactly what values.yaml (plus the VALUES overlays `make` was given)
    renders to; with no overlays this is the committed config (`make check`)."""
    overlays = [arg for path in shlex.split(os.environ.get("BUNDLE_VALUES", "")) for arg in ("--values", path)]
    result = subprocess.run([sys.executable, "render.py", "--check", "--require-validators", *overlays],
                            cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_promtool_accepts_the_prometheus_config_and_its_rules(root, tool):
    result = subprocess.run([tool("promtool"), "check", "config", "prometheus/prometheus.yml"],
                            cwd=root / "config", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rule files found" in result.stdout


def test_promtool_accepts_every_rule_file(root, tool):
    files = sorted(str(p) for p in (root / "config" / "prometheus" / "rules").glob("*.yml"))
    assert files
    result = subprocess.run([tool("promtool"), "check", "rules", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config(root, tool):
    result = subprocess.run([tool("amtool"), "check-config", "alertmanager/alertmanager.yml"],
                            cwd=root / "config", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_refuses_what_promtool_refuses_and_keeps_the_old_config(run_render, tool):
    good = run_render()
    assert good.code == 0
    before = good.text("prometheus/prometheus.yml")
    # Valid for the schema, invalid for Prometheus: a timeout longer than the interval.
    result = run_render({"prometheus": {"scrape_interval": "5s", "scrape_timeout": "10s"}}, extra=["--require-validators"])
    assert result.code == 1
    assert "config/prometheus/prometheus.yml: promtool check config failed" in result.stderr
    assert "scrape timeout greater than scrape interval" in result.stderr
    assert good.text("prometheus/prometheus.yml") == before


def test_render_refuses_what_amtool_refuses(run_render, tool):
    # A label matcher Alertmanager cannot parse although it looks like one.
    result = run_render({"alertmanager": {"inhibit_rules": [
        {"source_matchers": ['severity=~"("'], "target_matchers": ['severity="warning"']}]}},
        extra=["--require-validators"])
    assert result.code == 1
    assert "config/alertmanager/alertmanager.yml: amtool check-config failed" in result.stderr


def test_the_site_example_renders_and_the_validators_accept_it(run_render, root):
    """site.example.yaml, the file the README starts users from, is short and valid."""
    example = root / "site.example.yaml"
    assert len(example.read_text().splitlines()) <= 40
    result = run_render(example, extra=["--require-validators"])
    assert result.code == 0, result.stderr
    jobs = {j["job_name"] for j in result.yaml("prometheus/prometheus.yml")["scrape_configs"]}
    assert "billing" in jobs and "flower" not in jobs and "node" in jobs
