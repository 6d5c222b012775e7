"""Secrets: named in values.yaml `secrets`, valued only in .env, wired to the services
whose values name them.

A `<field>_secret: <name>` key anywhere in the values names a declared secret. Which
services receive it follows from where that key sits: layers.yaml lists, per service,
the values paths whose secrets it gets. Compose copies each into the container as
/run/secrets/<name> (config/compose.overlay.yml, written by render.py).
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets as random_secrets
import stat
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import bcrypt
import yaml

from . import layers
from .errors import InputError
from .formats import comment
from .values import MAX_FILE_BYTES, KeyPath, display, dotted, read_limited

SECRETS_MOUNT = "/run/secrets"
SECRET_SUFFIX = "_secret"
# Where render.py writes the secret files Compose mounts, next to the .env they come from.
SECRETS_DIR = ".secrets"


def secret_file(name: str) -> str:
    return f"{SECRETS_MOUNT}/{name}"


def secret_references(node: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every `<field>_secret: <name>` in the values, with its key path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith(SECRET_SUFFIX) and isinstance(value, str):
                yield path + (key,), value
            else:
                yield from secret_references(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from secret_references(item, path + (i,))


def with_secret_files(node: Any) -> Any:
    """Turn every `<field>_secret: name` into `<field>_file: /run/secrets/name`."""
    if isinstance(node, dict):
        return {
            (key[: -len(SECRET_SUFFIX)] + "_file" if key.endswith(SECRET_SUFFIX) else key): (
                secret_file(value) if key.endswith(SECRET_SUFFIX) else with_secret_files(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [with_secret_files(item) for item in node]
    return node


def _under(path: KeyPath, prefix: str) -> bool:
    parts = tuple(prefix.split("."))
    return tuple(str(p) for p in path[: len(parts)]) == parts


def switched_off(values: dict, path: KeyPath) -> bool:
    """Whether a key sits in a section of the values that has `enabled: false`."""
    node = values
    for part in path[:-1]:
        if isinstance(node, dict) and node.get("enabled") is False:
            return True
        node = node[part]
    return isinstance(node, dict) and node.get("enabled") is False


def wiring(values: dict, every_layer: bool = False) -> dict[str, list[str]]:
    """service -> the secrets it receives, for the services of the enabled layers and the
    sections not switched off (or of every layer and section), in the order the values
    name them."""
    references = [(path, name) for path, name in secret_references(values)
                  if every_layer or not switched_off(values, path)]
    defined = {service for layer in layers.all_layers()
               if every_layer or layers.is_on(values, layer.name) for service in layer.services}
    out: dict[str, list[str]] = {}
    for layer in layers.all_layers():
        if not (every_layer or layers.is_on(values, layer.name)):
            continue
        for service, prefixes in layer.secrets.items():
            if service not in defined:
                continue
            names = out.setdefault(service, [])
            for path, name in references:
                if any(_under(path, prefix) for prefix in prefixes) and name not in names:
                    names.append(name)
    return {service: names for service, names in out.items() if names}


def consumers(values: dict, every_layer: bool = False) -> dict[str, list[str]]:
    """secret name -> the services that receive it."""
    out: dict[str, list[str]] = {}
    for service, names in wiring(values, every_layer).items():
        for name in names:
            out.setdefault(name, []).append(service)
    return out


# ------------------------------------------------------------- formatted secret files

def redis_password_map(values: dict, env: dict[str, str], _directory: Path) -> str:
    """redis_exporter's --redis.password-file: a JSON map of Redis URI -> password. The
    exporter sends a password only to a URI of the map, so its /scrape?target= can never
    hand the password to another host, as a plain --redis.password would. The key is the
    address exactly as --redis.addr gets it (the schema requires the redis:// or rediss://
    scheme, which the exporter would otherwise add before the lookup).
    https://github.com/oliver006/redis_exporter#authenticating-with-redis"""
    redis = values["exporters"]["redis"]
    return json.dumps({redis["address"]: env.get(values["secrets"][redis["password_secret"]]["env"], "")})


# Where Prometheus and Alertmanager find their certificate with web_tls on (the overlay
# mounts private/web/ there: bundle/pki.py).
WEB_TLS_MOUNT = "/etc/web-tls"


def web_config(values: dict, env: dict[str, str], directory: Path) -> str:
    """Prometheus' and Alertmanager's --web.config.file (values web_tls): their
    certificate, and the bcrypt hash of the one login. The hash in the file written
    before is kept while it matches the password, so a render with an unchanged
    password writes the same file (and recreates nothing). Cost 10: each request with a
    wrong password costs one comparison; the servers cache the right ones.
    https://prometheus.io/docs/prometheus/latest/configuration/https/"""
    web = values["web_tls"]
    password = env.get(values["secrets"][web["password_secret"]]["env"], "")
    kept = None
    try:
        old = yaml.safe_load((directory / "web_config").read_text(encoding="utf-8"))
        kept = old["basic_auth_users"][web["user"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    if not (isinstance(kept, str) and kept.startswith("$2") and bcrypt.checkpw(password.encode(), kept.encode())):
        kept = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    return yaml.safe_dump({"tls_server_config": {"cert_file": f"{WEB_TLS_MOUNT}/server.crt",
                                                 "key_file": f"{WEB_TLS_MOUNT}/server.key"},
                           "basic_auth_users": {web["user"]: kept}}, sort_keys=False)


@dataclass(frozen=True)
class Formatted:
    """A secret file in a program's own format, made from the secrets under `made_of`
    (a values path) and given to `services`; with `replaces`, instead of those secrets."""
    services: tuple[str, ...]
    made_of: str
    build: Callable[[dict, dict[str, str], Path], str]
    replaces: bool


FORMATTED: dict[str, Formatted] = {
    "redis_password_map": Formatted(("redis-exporter",), "exporters.redis", redis_password_map, replaces=True),
    "web_config": Formatted(("prometheus", "alertmanager", "alertmanager-2"), "web_tls", web_config,
                            replaces=False),
}


def service_secrets(values: dict, every_layer: bool = False) -> dict[str, list[str]]:
    """service -> the secret files it mounts: what `wiring` gives it, with a formatted
    file added where it is made of secrets the service gets (in place of them when it
    replaces them)."""
    wired = wiring(values, every_layer)
    references = list(secret_references(values))
    for file_name, spec in FORMATTED.items():
        made_of = {name for path, name in references if _under(path, spec.made_of)}
        for service in spec.services:
            if not made_of & set(wired.get(service, ())):
                continue
            kept = [name for name in wired[service] if not (spec.replaces and name in made_of)]
            wired[service] = kept + [file_name]
    return {service: names for service, names in wired.items() if names}


def file_readers(values: dict) -> dict[str, set[int]]:
    """secret file -> the uids of the services of the enabled layers that mount it."""
    users = layers.service_users()
    out: dict[str, set[int]] = {}
    for service, names in service_secrets(values).items():
        for name in names:
            out.setdefault(name, set()).add(users[service])
    return out


def file_contents(values: dict, env: dict[str, str], directory: Path) -> dict[str, str]:
    """secret file -> its content: the .env value of a declared secret, or a formatted
    file (which may keep what it wrote into `directory` before)."""
    out = {}
    for name in file_readers(values):
        if name in FORMATTED:
            out[name] = FORMATTED[name].build(values, env, directory)
        else:
            out[name] = env.get(values["secrets"][name]["env"], "")
    return out


# Next to the secret files: which declared secrets (and .env variables) each one is made
# of, so bundle/drift.py sees a secret changed in .env before the next render writes it.
SOURCES_FILE = ".sources.json"


def file_sources(values: dict) -> dict[str, dict[str, list[str]]]:
    """secret file -> {"secrets": the declared secrets its content comes from (a formatted
    file: the secrets it replaces; any other: itself), "env": their .env variables}."""
    references = list(secret_references(values))
    out = {}
    for name in file_readers(values):
        if name in FORMATTED:
            prefix = FORMATTED[name].made_of
            made_of = sorted({secret for path, secret in references if _under(path, prefix)})
        else:
            made_of = [name]
        out[name] = {"secrets": made_of, "env": [values["secrets"][secret]["env"] for secret in made_of]}
    return out


# ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER and the extended attribute
# layout of <linux/posix_acl_xattr.h> (version 2; entries tag, perm, id; -1 for "no id").
_ACL = {"user_obj": 0x01, "user": 0x02, "group_obj": 0x04, "mask": 0x10, "other": 0x20}
_NO_ID = 0xFFFFFFFF
_READ = 4


def acl_readable_by(uids: set[int]) -> bytes:
    """A POSIX access ACL: the file's owner and each of `uids` may read it, nobody else."""
    entries = [(_ACL["user_obj"], _READ, _NO_ID)]
    entries += [(_ACL["user"], _READ, uid) for uid in sorted(uids)]
    entries += [(_ACL["group_obj"], 0, _NO_ID), (_ACL["mask"], _READ, _NO_ID), (_ACL["other"], 0, _NO_ID)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def write_secret_files(values: dict, env: dict[str, str], directory: Path) -> list[str]:
    """Write every secret file a service of the enabled layers mounts into `directory`
    (0700), each replaced atomically, 0400 and readable through an ACL by exactly the uids
    of the services that mount it; remove the files no service mounts any more. Returns
    warnings (a filesystem without POSIX ACLs gets 0444 files instead)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    readers = file_readers(values)
    contents = file_contents(values, env, directory)
    warnings = []
    for name, text in contents.items():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o400)
            try:
                os.setxattr(tmp, "system.posix_acl_access", acl_readable_by(readers[name]))
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                os.chmod(tmp, 0o444)
                if not warnings:
                    warnings.append(f"render.py: warning: {display(directory)}: the filesystem has no POSIX ACLs, "
                                    f"so the secret files are readable by every user inside the containers "
                                    f"that mount them (still not by other users of this host: the directory is 0700)")
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{SOURCES_FILE}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(file_sources(values), fh, indent=1, sort_keys=True)
    os.replace(tmp, directory / SOURCES_FILE)
    for stale in directory.iterdir():
        if stale.is_file() and stale.name not in contents and stale.name != SOURCES_FILE:
            stale.unlink()
    return warnings


# --------------------------------------------------------------------------- .env
#
# render.py reads .env the way Compose does, for the forms where that is certain, and
# refuses the rest, so the value it checks is the value a container gets:
#   KEY=value      unquoted: up to " #" (a comment), trailing blanks dropped; Compose
#                  expands $ here, so a $ is refused
#   KEY='value'    literal; only \' is special (a quote)
#   KEY="value"    escapes \n \r \t \\ \" \$ and $$; any other $ is refused (expanded)
# A leading UTF-8 byte order mark is ignored, as Compose does.
# https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/#env-file-syntax

ENV_LINE = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$")
DOUBLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$",
                  "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
QUOTE_FIX = "; write {key}='...' (single quotes keep every character but ' as written, \\' is a quote)"


def _quoted(rest: str, quote: str) -> tuple[str | None, str, str]:
    """(value, text after the closing quote, problem) of a value starting with `quote`."""
    body, i = [], 1
    while i < len(rest):
        c = rest[i]
        if c == "\\" and i + 1 < len(rest):
            n = rest[i + 1]
            if quote == "'":
                body.append("'" if n == "'" else c + n)
            elif n in DOUBLE_ESCAPES:
                body.append(DOUBLE_ESCAPES[n])
            elif n.isdigit():
                return None, "", "an octal escape in double quotes; write the character itself"
            else:
                body.append(c + n)
            i += 2
            continue
        if c == quote:
            return "".join(body), rest[i + 1:], ""
        if c == "$" and quote == '"':
            if rest[i + 1:i + 2] == "$":
                body.append("$")
                i += 2
                continue
            return None, "", "Compose expands $ inside double quotes"
        body.append(c)
        i += 1
    return None, "", "the quoted value does not end on this line (render.py reads one value per line)"


def parse_env(text: str, name: str) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """KEY -> (value, line) of a Compose-style .env text, and one problem line per line
    render.py cannot read exactly as Compose does."""
    env: dict[str, tuple[str, int]] = {}
    problems = []
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), 1):
        stripped = line.strip(" \t\r\f\v")
        if not stripped or stripped.startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if not match:
            problems.append(f"{name}:{number}: expected KEY=value, KEY of letters, digits and _")
            continue
        key, rest = match.groups()
        rest = rest.rstrip(" \t\r\f\v")
        if rest[:1] in ("'", '"'):
            value, tail, why = _quoted(rest, rest[0])
            if not why and tail.strip(" \t\r\f\v") and not tail.lstrip(" \t").startswith("#"):
                why = "text after the closing quote (Compose would drop it)"
        else:
            value, why = rest.split(" #", 1)[0].rstrip(), ""
            if "$" in value:
                why = "Compose expands $ in an unquoted value"
        if why:
            problems.append(f"{name}:{number}: {key}: {why}" + (QUOTE_FIX.format(key=key) if "$" in why else ""))
            continue
        if key in env:
            problems.append(f"{name}:{number}: {key}: set again (first on line {env[key][1]}); keep one line")
            continue
        env[key] = (value, number)
    return env, problems


def read_env_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise InputError([f"{display(path)}: is a directory; expected the secrets file"])
        data = read_limited(path, MAX_FILE_BYTES)
        if data is None:
            raise InputError([f"{display(path)}: more than {MAX_FILE_BYTES} bytes; that is no secrets file"])
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError([f"{display(path)}: is not UTF-8 text (byte {error.start}); save it as UTF-8"]) from None
    except OSError as error:
        raise InputError([f"{display(path)}: cannot read the file ({error.strerror})"]) from None


def read_env(path: Path) -> dict[str, str]:
    """KEY -> value of a Compose-style .env file (see above); refuses what it cannot read exactly."""
    env, problems = parse_env(read_env_text(path), display(path))
    if problems:
        raise InputError(problems)
    return {key: value for key, (value, _) in env.items()}


def env_example(values: dict) -> str:
    """.env.example: every declared secret, documented, with an empty value."""
    mounted = service_secrets(values, every_layer=True)
    references = list(secret_references(values))
    out = [
        "# Generated by render.py from values.yaml `secrets` (do not edit: declare secrets there).",
        "#",
        "# The secrets of the stack. `make render` / `make up` create .env from this file",
        "# (mode 0600, git-ignored: never commit it), give the variables marked",
        "# \"generated\" strong random values, and warn about empty ones you must fill in.",
        "# render.py writes each value into .secrets/<name>, readable only by the services",
        "# that use it, which see it as /run/secrets/<name>. Write a value in single quotes,",
        "# KEY='value', to have it taken exactly as written (inside them only \\' is special, a",
        "# quote). Unquoted values end at \" #\" and Compose expands $ in them, so render.py",
        "# refuses an unquoted $.",
        "# .env holds only these secrets: settings come from values.yaml (config/compose.env),",
        "# and render.py refuses a line here that would override one of them.",
        "# https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/#env-file",
    ]
    for title, generated in (("generated on first use", True), ("yours to fill in", False)):
        out += ["", f"# --- {title} " + "-" * (80 - 9 - len(title))]
        for name, spec in values["secrets"].items():
            if bool(spec["generate"]) != generated:
                continue
            out += ["", comment(f"{spec['description'][:1].upper()}{spec['description'][1:]}"
                                f"{' (may stay empty)' if spec.get('optional') else ''}.")]
            services = [service for service, names in mounted.items() if name in names]
            inside = {file_name: [service for service in spec.services if file_name in mounted.get(service, ())]
                      for file_name, spec in FORMATTED.items()
                      if any(n == name and _under(p, spec.made_of) for p, n in references)}
            inside = {file_name: readers for file_name, readers in inside.items() if readers}
            if services:
                out.append(f"# Read as /run/secrets/{name} by: {', '.join(services)}.")
            for file_name, readers in inside.items():
                out.append(f"# Read by {', '.join(readers)} inside /run/secrets/{file_name}.")
            if not services and not inside:
                out.append("# Not used by any service of the bundle's layers.")
            if spec.get("doc"):
                out.append(comment(spec["doc"]))
            out.append(f"{spec['env']}=")
    return "\n".join(out) + "\n"


def plan_secrets(values: dict, env_path: Path, compose_env: str = "") -> str | None:
    """Check that .env holds every secret a running service needs, and nothing that would
    override a setting of config/compose.env (`compose_env`, its text); return the new
    text of .env if it must change.

    A missing .env starts as a copy of the rendered .env.example. Secrets with
    `generate: true` get a strong random value when unset; every other secret a service
    of an enabled layer receives gets an empty line of its own when .env lacks it (an
    empty value is allowed, with a warning unless the secret is optional).
    """
    declared = values["secrets"]
    name = display(env_path)
    exists = env_path.exists()  # a dangling symlink: created through the link
    text = read_env_text(env_path) if exists else env_example(values)
    parsed, problems = parse_env(text, name)
    if problems:
        raise InputError(problems)
    if exists:
        mode = stat.S_IMODE(os.stat(env_path).st_mode)
        if mode & 0o077:
            print(f"render.py: warning: {name}: mode {mode:04o} lets other users read the secrets; "
                  f"run: chmod 600 {name}", file=sys.stderr)
    settings, _ = parse_env(compose_env, "config/compose.env")
    by_env = {spec["env"]: secret for secret, spec in declared.items()}
    for var, (_, number) in parsed.items():
        if var in settings or var.startswith("COMPOSE_"):
            problems.append(
                f"{name}:{number}: {var}: a setting, not a secret: Compose would take it over the value "
                f"render.py writes to config/compose.env from values.yaml; remove the line and set it in "
                f"values.yaml (or site.yaml)")
        elif var not in by_env:
            print(f"render.py: warning: {name}:{number}: {var} is not a secret declared in values.yaml "
                  f"`secrets`; nothing in the stack reads it", file=sys.stderr)
    if problems:
        raise InputError(problems)
    env = {var: value for var, (value, _) in parsed.items()}
    lines = text.removeprefix("\ufeff").split("\n")
    changed = not exists or text.startswith("\ufeff")
    for spec in declared.values():
        var = spec["env"]
        if spec["generate"] and not env.get(var):
            value = random_secrets.token_urlsafe(32)
            if var in parsed:
                lines[parsed[var][1] - 1] = f"{var}={value}"
            else:
                if lines and lines[-1] == "":
                    lines.pop()
                lines += [f"{var}={value}", ""]
            env[var] = value
            changed = True
    users: dict[str, list[str]] = {}
    for where, secret in secret_references(values):
        users.setdefault(secret, []).append(dotted(where))
    needed = consumers(values)
    for secret, spec in declared.items():
        if secret not in needed:
            continue
        var = spec["env"]
        if var not in env:
            # A secret the values declare anew (a receiver added in site.yaml): its line is
            # added empty, for the user to fill in, as on the first render.
            if lines and lines[-1] == "":
                lines.pop()
            lines += ["", f"# {spec['description'][:1].upper()}{spec['description'][1:]}.", f"{var}=", ""]
            env[var] = ""
            changed = True
            print(f"render.py: {name}: added {var}= for secrets.{secret}; fill it in", file=sys.stderr)
        if not env[var] and not spec.get("optional", False):
            used = ", ".join(users.get(secret, [])) or "the services using it"
            print(
                f"render.py: warning: {name}: {var} is empty, so {used} cannot work "
                f"until it is set ({spec['description']})",
                file=sys.stderr,
            )
    return "\n".join(lines) if changed else None


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Replace the file `path` names (through a symbolic link: the link stays) with
    `text`, mode `mode`, in one step."""
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise InputError([f"{display(path)}: cannot write the file ({error.strerror})"]) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (mode 0600), atomically."""
    _write_atomically(path, text, 0o600)


def write_public(path: Path, text: str) -> None:
    """Write a file anyone may read (mode 0644), atomically."""
    _write_atomically(path, text, 0o644)
