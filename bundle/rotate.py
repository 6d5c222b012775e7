"""`make rotate SECRET=name [VALUE=...]`: change a secret in .env and in every service
that uses it, in an order no interruption can break.

  start   The new value (VALUE; else the pending value of an interrupted rotation; else,
          for a secret the bundle generates, a fresh random one) is written first to
          .stack/rotate/<secret> (mode 0600). A service that keeps the secret in its own
          state and needs the current value to change it (bundle/credentials.py, kind
          `elastic`) is changed to it, logged in with the value .env holds, and must then
          accept it. Only then is .env rewritten.
  (make)  render.py and scripts/up.sh: the secret's consumers are recreated
          (bundle/drift.py) and Grafana's admin password is set (bundle/credentials.py).
  finish  Once that succeeded, the pending file goes.

Interrupted at any step, `make rotate SECRET=name` again finishes the same rotation: the
pending value is reused, a service that already took it is not changed again, and .env
never holds a value that no service accepts while the one it held still works.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets as random_secrets
import sys
from pathlib import Path

from . import DEFAULT_VALUES, ROOT
from .credentials import KINDS, Elastic, pending_file, stored
from .drift import Checkout, write_atomic
from .errors import InputError
from .secrets import consumers, parse_env, read_env, write_private


SAFE = re.compile(r"[A-Za-z0-9_./:@+=,%~-]*")


def env_line(var: str, value: str) -> str:
    """VAR=value as .env must hold it for Compose (bundle/secrets.py parse_env reads it
    as Compose does) to give back `value` unchanged: bare when that is safe, else in
    single quotes with \\' for a quote."""
    if "\n" in value or "\r" in value:
        raise InputError([f"VALUE: {var} cannot hold a line break"])
    candidates = [f"{var}={value}"] if SAFE.fullmatch(value) else []
    candidates.append(f"{var}='" + value.replace("'", "\\'") + "'")
    for line in candidates:
        env, problems = parse_env(line, ".env")
        if not problems and env[var][0] == value:
            return line
    raise InputError([f"VALUE: {var} cannot be written to .env as given (a backslash before a quote or at "
                      f"the end); choose another value"])


def set_env(env_file: Path, var: str, value: str) -> None:
    line = env_line(var, value)
    text = env_file.read_text(encoding="utf-8")
    lines = text.splitlines()
    for i, current in enumerate(lines):
        if current.split("=", 1)[0].strip() == var:
            lines[i] = line
            break
    else:
        lines.append(line)
    write_private(env_file, "\n".join(lines) + "\n")


def start(values: dict, checkout: Checkout, secret: str, value: str | None) -> int:
    declared = values["secrets"]
    if secret not in declared:
        raise InputError([f"SECRET={secret}: no such secret in values `secrets` "
                          f"(declared: {', '.join(declared)})"])
    spec = declared[secret]
    var = spec["env"]
    pending = pending_file(checkout.state, secret)
    if pending.exists():
        waiting = pending.read_text(encoding="utf-8")
        if value is not None and value != waiting:
            raise InputError([f"SECRET={secret}: an interrupted rotation to another value is pending; finish it "
                              f"first with `make rotate SECRET={secret}` (no VALUE)"])
        value = waiting
        print(f"make rotate: finishing the interrupted rotation of {secret}")
    elif value is None:
        if not spec["generate"]:
            raise InputError([f"SECRET={secret}: {var} comes from outside the bundle ({spec['description']}); "
                              f"change it there, then give it as VALUE=..."])
        value = random_secrets.token_urlsafe(32)
    if not value and not spec.get("optional"):
        raise InputError([f"VALUE: {var} may not be empty ({spec['description']})"])
    env_line(var, value)  # refuse what .env cannot carry before anything changes
    write_atomic(pending, value, 0o600)

    current = read_env(checkout.env_file).get(var, "")
    if current != value:
        for item in stored(values):
            if item.secret == secret and isinstance(KINDS[item.kind], Elastic):
                change_elastic(checkout, KINDS[item.kind], var, current, value)
        set_env(checkout.env_file, var, value)
        print(f"make rotate: .env holds the new {var}")
    users = consumers(values).get(secret, [])
    print(f"make rotate: applying it with make up (consumers of {secret}: {', '.join(users) or 'none'})")
    return 0


def change_elastic(checkout: Checkout, kind: Elastic, var: str, current: str, new: str) -> None:
    settings = checkout.settings()
    if kind.accepts(settings, new):
        print("make rotate: Elasticsearch already accepts the new password of elastic")
        return
    accepted = kind.accepts(settings, current)
    if accepted is None:
        raise InputError([f"{var}: Elasticsearch does not answer; start the stack (make up) and run "
                          f"make rotate again"])
    if not accepted:
        raise InputError([f"{var}: Elasticsearch accepts neither the value in .env nor the new one for elastic; "
                          f"put the value it accepts back in .env and run make rotate again"])
    problem = kind.change(settings, current, new)
    if problem or not kind.accepts(settings, new):
        raise InputError([f"{var}: Elasticsearch did not take the new password of elastic"
                          + (f": {problem}" if problem else "") + "; .env is unchanged, run make rotate again"])
    print("make rotate: Elasticsearch took the new password of elastic")


def finish(values: dict, checkout: Checkout, secret: str) -> int:
    pending_file(checkout.state, secret).unlink(missing_ok=True)
    print(f"make rotate: {secret} rotated")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import load

    parser = argparse.ArgumentParser(prog="python -m bundle.rotate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", action="append", type=Path, default=[], metavar="FILE")
    parser.add_argument("--output", type=Path, default=ROOT / "config")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("step", choices=["start", "finish"])
    parser.add_argument("secret")
    args = parser.parse_args(argv)
    checkout = Checkout(config=args.output.resolve(), env_file=args.env_file.resolve())
    try:
        if not args.secret:
            raise InputError(["SECRET: name the secret to rotate: make rotate SECRET=name [VALUE=...]"])
        values, _ = load([DEFAULT_VALUES, *args.values])
        if args.step == "start":
            # VALUE comes through the environment, so it is on no command line `ps` shows.
            return start(values, checkout, args.secret, os.environ.get("ROTATE_VALUE") or None)
        return finish(values, checkout, args.secret)
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
