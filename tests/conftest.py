"""Shared fixtures: the project's own values, and a renderer that works in tmp_path."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bundle import DEFAULT_VALUES  # noqa: E402
from bundle.cli import load  # noqa: E402
from bundle.validate import find_tool  # noqa: E402


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def values() -> dict:
    """The defaults from values.yaml, as render.py loads them: tests compare against these."""
    data, _ = load([DEFAULT_VALUES])
    return data


@pytest.fixture(scope="session")
def tool():
    """The path of a validator (promtool, amtool): .tools/bin (make tools) or PATH."""
    def find(name: str) -> str:
        exe = find_tool(name)
        if exe is None:
            pytest.fail(f"{name} not found: run `make tools`")
        return exe

    return find


@dataclass
class Result:
    code: int
    stderr: str
    output: Path
    env_file: Path

    def text(self, name: str) -> str:
        return (self.output / name).read_text(encoding="utf-8")

    def yaml(self, name: str):
        return yaml.safe_load(self.text(name))


@pytest.fixture
def run_render(tmp_path: Path):
    """Run render.py as a user would; overlays are given as dicts or paths."""
    counter = iter(range(1000))

    def run(*overlays, output: Path | None = None, check: bool = False, extra: list[str] = ()) -> Result:
        args = [sys.executable, str(ROOT / "render.py")]
        for overlay in overlays:
            if isinstance(overlay, dict):
                path = tmp_path / f"overlay-{next(counter)}.yaml"
                path.write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
                overlay = path
            args += ["--values", str(overlay)]
        out = output or tmp_path / "config"
        env_file = tmp_path / ".env"
        args += ["--output", str(out), "--env-file", str(env_file)]
        if check:
            args.append("--check")
        proc = subprocess.run([*args, *extra], capture_output=True, text=True, cwd=tmp_path)
        return Result(proc.returncode, proc.stderr, out, env_file)

    return run

