"""render.py run inside the test process (bundle.cli.main), for tests that run it many
times or replace a function to inject a fault; and a snapshot of a directory."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from bundle.cli import main


@dataclass
class Outcome:
    code: int
    stderr: str

    @property
    def problems(self) -> list[str]:
        """stderr without warnings."""
        return [line for line in self.stderr.splitlines() if not line.startswith("render.py: warning")]


def render(work: Path, *overlays, output: Path | None = None, extra: list[str] = ()) -> Outcome:
    """render.py --values <each overlay> --output work/config --env-file work/.env;
    an overlay is a path, a dict (dumped as YAML) or str (the file's text)."""
    args = []
    for i, overlay in enumerate(overlays):
        if not isinstance(overlay, Path):
            path = work / f"overlay-{i}.yaml"
            path.write_text(overlay if isinstance(overlay, str) else yaml.safe_dump(overlay, sort_keys=False),
                            encoding="utf-8")
            overlay = path
        args += ["--values", str(overlay)]
    args += ["--output", str(output or work / "config"), "--env-file", str(work / ".env"), *extra]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args)
    return Outcome(code, err.getvalue())


def snapshot(tree: Path) -> dict[str, tuple]:
    """Every entry under `tree`: a file's bytes, mode and mtime, a directory's mode."""
    out = {}
    if not tree.exists():
        return out
    for path in sorted(tree.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(tree))
        if stat.S_ISDIR(info.st_mode):
            out[name] = ("dir", stat.S_IMODE(info.st_mode))
        elif stat.S_ISLNK(info.st_mode):
            out[name] = ("link", os.readlink(path))
        else:
            out[name] = (path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_mtime_ns)
    return out


def contents(tree: Path) -> dict[str, bytes]:
    """Every file's bytes, by path under `tree`."""
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


_RENDERS: dict[str, Path] = {}


def rendered_copy(work: Path, overlay: dict | None = None) -> Path:
    """work/config, work/.env and work/.env.example as a render of the defaults (+ overlay)
    gives them: rendered once per test session, then copied (modes and times kept)."""
    key = yaml.safe_dump(overlay) if overlay else ""
    if key not in _RENDERS:
        base = Path(tempfile.mkdtemp(prefix="render-cache-"))
        atexit.register(shutil.rmtree, base, True)
        result = render(base, *([overlay] if overlay else []))
        assert result.code == 0, result.stderr
        _RENDERS[key] = base
    base = _RENDERS[key]
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(base / "config", work / "config", symlinks=True)
    for name in (".env", ".env.example"):
        shutil.copy2(base / name, work / name)
    return work
