"""`docker compose` for a render outside config/ (the tests render into tmp_path)."""

from __future__ import annotations

import os
from pathlib import Path

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
