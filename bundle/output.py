"""Writing a rendered tree into the output directory, file by file."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path


def write_tree(files: dict[str, str], target: Path) -> None:
    for name, text in files.items():
        out = target / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


def tree_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def stale_files(fresh: Path, current: Path) -> list[str]:
    new, old = tree_files(fresh), tree_files(current)
    changed = [f for f in new & old if not filecmp.cmp(fresh / f, current / f, shallow=False)]
    return sorted(
        [f"{f}: missing" for f in new - old]
        + [f"{f}: not produced by the templates" for f in old - new]
        + [f"{f}: differs from a fresh render" for f in changed]
    )


def install_tree(fresh: Path, output: Path) -> None:
    """Make `output` hold exactly the files of `fresh`.

    Directories are kept and each changed file is replaced atomically (os.replace) rather
    than swapping whole directories, because running containers bind-mount these
    directories and would keep seeing a renamed-away copy.
    """
    if not output.exists():
        os.replace(fresh, output)
        return
    new, old = tree_files(fresh), tree_files(output)
    for name in sorted(new):
        target = output / name
        if target.exists() and filecmp.cmp(fresh / name, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fresh / name, target)
    for name in sorted(old - new):
        (output / name).unlink()
    for directory in sorted((p for p in output.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    shutil.rmtree(fresh)


def render_tree(values: dict, target: Path) -> Path:
    """Every file of the values written into `target` (no validators, no .env): what
    the tests inspect."""
    from .build import files

    write_tree(files(values), target)
    return target
