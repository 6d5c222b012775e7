"""make upgrade: move the running stack to the images (and config) of the values, and
roll back when it does not become healthy.

    python -m bundle.upgrade [--values FILE]...

  1. pull every image of the values (nothing is touched when one cannot be pulled);
  2. render and validate the config (the previous config/ is kept aside);
  3. back up the volumes of the services whose image changes (bundle/backup.py);
  4. scripts/up.sh: Compose recreates what changed, then every service must be healthy;
  5. if not: put the previous config/ back, restore the changed services' volumes from
     the backup of step 3, start the stack on the previous images, exit 1.

Data the changed services wrote between the backup and the rollback (seconds to
minutes) is lost on rollback; the other services keep running throughout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import DEFAULT_VALUES, ROOT, archive, backup, images
from .cli import load
from .errors import InputError
from .output import MANIFEST, Transaction, parse_manifest
from .stack import Stack, StackError

CONFIG = ROOT / "config"
UP = ROOT / "scripts" / "up.sh"


def say(message: str) -> None:
    print(f"upgrade: {message}", file=sys.stderr, flush=True)


def current_config() -> dict[str, str]:
    """The files of the last render, as render.py's manifest lists them."""
    names = parse_manifest((CONFIG / MANIFEST).read_text(encoding="utf-8"), str(CONFIG / MANIFEST))
    return {name: (CONFIG / name).read_text(encoding="utf-8") for name in names}


def put_back(files: dict[str, str]) -> None:
    """config/ as it was, written the way render.py writes it (bundle/output.py)."""
    with Transaction(CONFIG) as tx:
        tx.stage(files)
        tx.commit()


def render(value_files: list[Path]) -> bool:
    args = [arg for path in value_files[1:] for arg in ("--values", str(path))]
    return subprocess.run([sys.executable, str(ROOT / "render.py"), "--require-validators", *args],
                          cwd=ROOT).returncode == 0


def up() -> bool:
    return subprocess.run([str(UP)], cwd=ROOT).returncode == 0


def upgrade(value_files: list[Path], backup_dir: Path) -> int:
    values, _ = load(value_files)
    say("pulling the images of the values")
    pulled = [images.pull(image) for image in images.enabled_images(values)]
    if images.report(pulled, out=sys.stderr):
        say("stopped before changing anything: the images above could not be pulled")
        return 1
    before = Stack()
    previous = {s: c["Image"] for s, c in before.containers().items() if c["State"] == "running"}
    if not previous:
        say("the stack is not running: start it with `make up`")
        return 1
    saved = current_config()
    if not render(value_files):
        return 1
    after = Stack()
    wanted = {s: d["image"] for s, d in after.model["services"].items()}
    changed = sorted(s for s, image in previous.items() if s in wanted and wanted[s] != image)
    for service in changed:
        say(f"{service}: {previous[service]} -> {wanted[service]}")
    if not changed:
        say("no image changes; applying the config")
        return 0 if up() else 1
    with_volumes = sorted({v.service for v in after.volumes()} & set(changed))
    archive_path = None
    if with_volumes:
        say(f"backing up the volumes of {', '.join(with_volumes)}")
        # Left stopped after their copy: up() recreates them on the new images next.
        archive_path = backup.backup(after, backup_dir, only=with_volumes, prefix="pre-upgrade", restart=False)
        say(f"backup: {archive_path}")
    if up():
        say(f"done: {', '.join(changed)} healthy on the new images")
        return 0
    say(f"the stack did not become healthy; rolling back {', '.join(changed)}")
    put_back(saved)
    rollback = Stack()
    rollback.compose("stop", *changed)
    if archive_path:
        backup.restore(rollback, archive_path, only=with_volumes)
    if not up():
        say("ROLLBACK FAILED: the stack is not healthy on the previous images either; see above. "
            f"The data from before the upgrade is in {archive_path}")
        return 2
    running = {s: c["Image"] for s, c in rollback.containers().items() if c["State"] == "running"}
    back = [s for s in changed if running.get(s) == previous[s]]
    say(f"rolled back: {', '.join(f'{s} runs {previous[s]}' for s in back)} again"
        + (f", with its data from {archive_path.name}" if archive_path else "")
        + ". config/ is the previous render; the values still name the new images: fix or revert them "
          "(`make check` shows config/ is stale until you do)")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upgrade the running stack to the images of the values.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("--backup-dir", type=Path, default=backup.DEFAULT_DIR)
    args = parser.parse_args(argv)
    try:
        return upgrade([DEFAULT_VALUES, *args.values], args.backup_dir)
    except InputError as error:
        print("\n".join(error.problems), file=sys.stderr)
        return 1
    except (StackError, archive.ArchiveError) as error:
        say(f"stopped: {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
