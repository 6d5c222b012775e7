"""make mutate: apply each mutation of tests/mutations.yaml to a scratch copy of the
repository, regenerate and render as a developer would, run the fast test levels, and
print the mutants no test killed.

A mutant is killed when `make generate` or render.py refuses it, or a test fails. A
survivor is a change to something users rely on that no fast test notices. With a stack
running (`make up` with the live values and the demo platform) and MUTATE_LIVE=1, each
survivor of the fast levels is also put on the stack (make up from the scratch copy) and
the live level run against it; the stack is put back from this checkout afterwards.

  python tests/mutate.py [ID ...]     (all mutants, or those named)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "mutations.yaml"
FAST = ["-m", "unit or config or contract", "-x", "-q", "-p", "no:cacheprovider",
        "tests/contract", "tests/unit", "tests/config"]


def copy_tree(target: Path) -> None:
    """The tracked files of this checkout (as they are on disk), plus links to its
    virtualenvs and tools."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).exists():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for link in (".venv", ".tools", "instrumentation/.venv"):
        if (ROOT / link).exists():
            (target / link).symlink_to(ROOT / link)


def run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return output.strip().splitlines()[-1] if output.strip() else "?"


def stack_running() -> bool:
    out = run([str(ROOT / "scripts" / "compose.sh"), "ps", "-q"], ROOT)
    return out.returncode == 0 and bool(out.stdout.strip())


def live_verdict(scratch: Path, python: str) -> tuple[bool, str]:
    """Put the mutant on the running stack, run the live level, put the stack back."""
    values = os.environ.get("BUNDLE_VALUES", "")
    make = ["make", f"VALUES={values}"]
    try:
        up = run([*make, "up"], scratch)
        if up.returncode != 0:
            return True, "make up refused it"
        live = run([python, "-m", "pytest", "-m", "live", "-x", "-q", "-p", "no:cacheprovider"], scratch,
                   dict(os.environ, BUNDLE_VALUES=values, LIVE_REQUIRE_PLATFORM="1"))
        return live.returncode != 0, first_failure(live.stdout)
    finally:
        run([*make, "up"], ROOT)


def stale(mutants: list[dict]) -> list[str]:
    """One line per mutant whose `find` does not occur exactly once in its file."""
    problems = []
    for mutant in mutants:
        count = (ROOT / mutant["file"]).read_text(encoding="utf-8").count(mutant["find"])
        if count != 1:
            problems.append(f"tests/mutations.yaml: {mutant['id']}: `find` occurs {count} times in "
                            f"{mutant['file']}; expected exactly once (the catalogue is stale)")
    return problems


def mutate(mutant: dict, scratch: Path) -> tuple[bool, str]:
    """(killed, by what) for one mutant, on a scratch copy it restores afterwards."""
    path = scratch / mutant["file"]
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(mutant["find"], mutant["replace"]), encoding="utf-8")
    python = str(ROOT / ".venv" / "bin" / "python")
    env = dict(os.environ, BUNDLE_VALUES="")
    try:
        if mutant.get("level") == "instrumentation":
            # Its unit tests (make test-instrumentation runs the integration ones too).
            result = run([str(ROOT / "instrumentation" / ".venv" / "bin" / "python"), "-m", "pytest", "-x", "-q",
                          "-p", "no:cacheprovider", "-m", "not integration"], scratch / "instrumentation")
            return result.returncode != 0, first_failure(result.stdout)
        generate = run([python, "-m", "bundle.generate"], scratch, env)
        if generate.returncode != 0:
            return True, "make generate refused it: " + generate.stderr.strip().splitlines()[-1]
        render = run([python, "render.py"], scratch, env)
        if render.returncode != 0:
            return True, "render.py refused it: " + render.stderr.strip().splitlines()[-1]
        result = run([python, "-m", "pytest", *FAST], scratch, env)
        if result.returncode != 0:
            return True, first_failure(result.stdout)
        if os.environ.get("MUTATE_LIVE") == "1" and stack_running():
            return live_verdict(scratch, python)
        return False, "the fast levels pass" + (" (no live run: MUTATE_LIVE=1 and a running stack add it)"
                                                if mutant.get("live") else "")
    finally:
        path.write_text(original, encoding="utf-8")


def main(argv: list[str]) -> int:
    mutants = yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))
    ids = [m["id"] for m in mutants]
    if len(set(ids)) != len(ids):
        raise SystemExit("tests/mutations.yaml: duplicate ids")
    chosen = [m for m in mutants if not argv or m["id"] in argv]
    # Before the first mutant, not half an hour into the run.
    problems = stale(chosen)
    if problems:
        raise SystemExit("\n".join(problems))
    survivors = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        copy_tree(Path(scratch))
        for i, mutant in enumerate(chosen, 1):
            t = time.monotonic()
            killed, why = mutate(mutant, Path(scratch))
            verdict = "killed" if killed else "SURVIVED"
            print(f"[{i}/{len(chosen)}] {mutant['id']}: {verdict} ({time.monotonic() - t:.0f}s) {why}", flush=True)
            if not killed:
                survivors.append(mutant)
    killed = len(chosen) - len(survivors)
    print(f"\nmutants: {len(chosen)}, killed: {killed}, survived: {len(survivors)}, "
          f"score: {killed / len(chosen):.0%} ({time.monotonic() - started:.0f}s)")
    for mutant in survivors:
        print(f"  survivor {mutant['id']}: {mutant['file']}: {mutant['why']}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
