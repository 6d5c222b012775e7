"""render.py: values.yaml (+ overlays) -> the output directory, validated, or nothing."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from . import DEFAULT_VALUES, ROOT, build, layers
from .checks import check_values
from .errors import InputError
from .output import install_tree, stale_files, write_tree
from .secrets import env_example, plan_secrets, write_private
from .validate import validate_tree
from .values import Source, display, load_values

LAYER_DEFAULTS = "bundle/layers.yaml"


def load(value_files: list[Path]) -> tuple[dict, Source]:
    """values.yaml and the overlays, merged over what the layers bring (their scrape jobs)."""
    return load_values(value_files, base=(LAYER_DEFAULTS, layers.defaults()))


def example_path(env_file: Path) -> Path:
    """.env -> .env.example, next to it."""
    return env_file.with_name(env_file.name + ".example")


def render(value_files: list[Path], output: Path, check: bool, env_file: Path,
           require_validators: bool) -> int:
    values, source = load(value_files)
    check_values(values, source)
    env_text = None if check else plan_secrets(values, env_file)
    example = env_example(values)
    files = build.files(values)
    output.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.new-"))
    try:
        write_tree(files, fresh)
        validate_tree(fresh, values, require_validators)
        if check:
            stale = stale_files(fresh, output)
            current = example_path(env_file)
            if not current.exists() or current.read_text(encoding="utf-8") != example:
                stale.append(f"{display(current)}: differs from a fresh render")
            for problem in stale:
                print(problem if problem.startswith(display(current)) else f"{display(output)}/{problem}",
                      file=sys.stderr)
            if stale:
                print("render.py: the output is stale; run `make render`", file=sys.stderr)
            return 1 if stale else 0
        install_tree(fresh, output)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    if example_path(env_file).parent.exists():
        current = example_path(env_file)
        if not current.exists() or current.read_text(encoding="utf-8") != example:
            current.write_text(example, encoding="utf-8")
    if env_text is not None:
        write_private(env_file, env_text)
        print(f"render.py: wrote generated secrets to {display(env_file)}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render values.yaml into every configuration file the stack needs.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE",
                        help="overlay on values.yaml (repeatable; later files win, maps merge deeply)")
    parser.add_argument("--output", type=Path, default=ROOT / "config", metavar="DIR",
                        help="where to render (default: config/)")
    parser.add_argument("--check", action="store_true",
                        help="render to a scratch directory and exit 1 if DIR (or .env.example) differs")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", metavar="FILE",
                        help="secrets file, created with random values when missing (default: .env); "
                             "FILE.example is written next to it")
    parser.add_argument("--require-validators", action="store_true",
                        help="fail, rather than warn, when promtool or amtool cannot be run "
                             "(neither in .tools/bin nor on PATH nor through Docker)")
    args = parser.parse_args(argv)
    try:
        return render([DEFAULT_VALUES, *args.values], args.output.resolve(), args.check,
                      args.env_file, args.require_validators)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
