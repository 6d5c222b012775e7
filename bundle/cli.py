"""render.py: values.yaml (+ overlays) -> the output directory, validated, or nothing.

Every failure is one line per problem on stderr and exit 1 (2 for a command line that
cannot work); a signal stops it with 128 + the signal's number, the output directory as
it was or, when the signal came during the swap, with the swap completed first.
RENDER_TRACEBACK=1 shows the traceback of an internal error instead of its one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import DEFAULT_VALUES, ROOT, build, layers, pki
from .checks import check_values
from .errors import InputError, UsageError
from .output import (Interrupted, Transaction, differences, install_signal_handlers, restore_signal_handlers,
                     shared_lock, write_tree)
from .secrets import (SECRETS_DIR, env_example, plan_secrets, read_env, write_private, write_public,
                      write_secret_files)
from .validate import validate_tree
from .values import Source, display, load_values

LAYER_DEFAULTS = "bundle/layers.yaml"


def load(value_files: list[Path]) -> tuple[dict, Source]:
    """values.yaml and the overlays, merged over what the layers bring (their scrape jobs)."""
    return load_values(value_files, base=(LAYER_DEFAULTS, layers.defaults()))


def example_path(env_file: Path) -> Path:
    """.env -> .env.example, next to it."""
    return env_file.with_name(env_file.name + ".example")


def check(files: dict[str, str], values: dict, source: Source, output: Path, env_file: Path, example: str,
          require_validators: bool) -> int:
    """--check: validate a fresh render in a scratch directory and compare it with `output`."""
    with tempfile.TemporaryDirectory(prefix="render-check-") as scratch:
        write_tree(files, Path(scratch))
        validate_tree(Path(scratch), values, require_validators, source, compose=True)
    with shared_lock(output):
        stale = differences(files, output)
    current = example_path(env_file)
    try:
        same = current.read_text(encoding="utf-8") == example
    except (OSError, UnicodeDecodeError):
        same = False
    if not same:
        stale.append(f"{display(current)}: differs from a fresh render")
    for line in stale:
        print(line, file=sys.stderr)
    if stale:
        print("render.py: the output is stale; run `make render`", file=sys.stderr)
    return 1 if stale else 0


def render(value_files: list[Path], output: Path, check_only: bool, env_file: Path,
           require_validators: bool) -> int:
    if check_only:
        values, source = load(value_files)
        check_values(values, source)
        files = build.files(values, source)
        return check(files, values, source, output, env_file, env_example(values), require_validators)
    # Locked first: a swap an interrupted render left is completed even when this
    # render's own input turns out to be invalid.
    with Transaction(output) as tx:
        values, source = load(value_files)
        check_values(values, source)
        files = build.files(values, source)
        example = env_example(values)
        env_text = plan_secrets(values, env_file, files.get("compose.env", ""))
        staged = tx.stage(files)
        validate_tree(staged, values, require_validators, source)

        def write_env_files() -> None:
            current = example_path(env_file)
            try:
                same = current.read_text(encoding="utf-8") == example
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                write_public(current, example)
            if env_text is not None:
                write_private(env_file, env_text)
                print(f"render.py: wrote generated secrets to {display(env_file)}", file=sys.stderr)
            # The files Compose mounts as /run/secrets/<name>, from .env as it now is.
            for warning in write_secret_files(values, read_env(env_file), env_file.parent / SECRETS_DIR):
                print(warning, file=sys.stderr)
            # The TLS material the running stack mounts from private/ (bundle/pki.py).
            pki.ensure(values, pki.private_dir(env_file))

        try:
            tx.commit(after=write_env_files)
        except Interrupted as stop:
            stop.committed = tx.committed
            raise
    return 0


def main(argv: list[str] | None = None) -> int:
    previous = install_signal_handlers()
    try:
        return run(argv)
    finally:
        restore_signal_handlers(previous)


def run(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description="Render values.yaml into every configuration file the stack needs.")
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE",
                        help="overlay on values.yaml (repeatable; later files win, maps merge deeply)")
    parser.add_argument("--output", type=Path, default=ROOT / "config", metavar="DIR",
                        help="where to render (default: config/): an empty directory or one render.py wrote")
    parser.add_argument("--check", action="store_true",
                        help="render to a scratch directory and exit 1 if DIR (or .env.example) differs")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env", metavar="FILE",
                        help="secrets file, created with random values when missing (default: .env); "
                             "FILE.example is written next to it")
    parser.add_argument("--require-validators", action="store_true",
                        help="fail, rather than warn, when promtool or amtool cannot be run "
                             "(neither in .tools/bin nor on PATH nor through Docker)")
    output = "the output directory"
    try:
        args = parser.parse_args(argv)
        try:
            out = args.output.resolve()
            env_file = Path(os.path.abspath(args.env_file))
            output = display(out)
        except (OSError, ValueError, RuntimeError) as error:
            raise UsageError([f"render.py: --output {args.output}: not a usable path ({error})"]) from None
        return render([DEFAULT_VALUES, *args.values], out, args.check, env_file, args.require_validators)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return error.exit_code
    except Interrupted as stop:
        state = ("the swap had completed, so it holds the new render" if getattr(stop, "committed", False)
                 else "left as it was")
        print(f"render.py: stopped by {stop}; {output}: {state}", file=sys.stderr)
        return 128 + stop.signum
    except (RecursionError, MemoryError) as error:
        print(f"render.py: the input is too large or too deeply nested to process ({type(error).__name__}); "
              f"{output} was left as it was", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        if os.environ.get("RENDER_TRACEBACK") == "1":
            raise
        print(f"render.py: internal error ({type(error).__name__}: {error}); {output} was left as it was. "
              f"Please report it with the values that caused it (RENDER_TRACEBACK=1 shows where)",
              file=sys.stderr)
        return 1
