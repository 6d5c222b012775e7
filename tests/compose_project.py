"""`docker compose` for a render outside config/ (the tests render into tmp_path)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bundle import ROOT
from bundle.secrets import read_env


def compose_command(output: Path, *env_files: Path) -> tuple[list[str], dict]:
    """`docker compose` (and its environment) for a render into `output` rather than
    config/: COMPOSE_FILE names config/compose.overlay.yml, which for this render is
    output/compose.overlay.yml. The Compose files keep their own directory as the
    project directory, as when scripts/compose.sh runs them."""
    files = read_env(output / "compose.env")["COMPOSE_FILE"].split(":")
    overlay = str(output / "compose.overlay.yml")
    paths = [overlay if f == "config/compose.overlay.yml" else str(ROOT / f) for f in files]
    env = {**os.environ, "COMPOSE_FILE": ":".join(paths)}
    args = ["docker", "compose", "--env-file", str(output / "compose.env")]
    for env_file in env_files:
        args += ["--env-file", str(env_file)]
    return args, env


def compose_config(root: Path, env_dir: Path, host_env: dict | None = None) -> dict:
    """The resolved Compose model (`docker compose config`) of env_dir/config and env_dir/.env;
    host_env: the variables scripts/host-env.sh gives this host (none by default)."""
    if not shutil.which("docker"):
        pytest.fail("docker (with the compose plugin) is needed: see scripts/provision-docker.sh")
    base, env = compose_command(env_dir / "config", env_dir / ".env")
    env.update(host_env or {})
    result = subprocess.run([*base, "config", "--format", "json"], cwd=root, capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    # The model holds the secrets of env_dir/.env (interpolated into environment): keep
    # them out of any failure report.
    text = result.stdout
    for value in read_env(env_dir / ".env").values():
        if len(value) >= 8:
            text = text.replace(json.dumps(value)[1:-1], "<secret>")
    return json.loads(text)
