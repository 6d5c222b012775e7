"""make backup / make restore: every named volume of the enabled layers into one
timestamped archive, each copied consistently for its store, and back.

    python -m bundle.backup backup [--dir DIR]     # DIR/<project>-backup-<UTC time>.tar
    python -m bundle.backup restore FILE           # onto the stopped stack

How each volume is copied is stated in bundle/layers.yaml (`backup`): a brief stop of the
service that writes it, SQLite's online backup (Grafana), Elasticsearch's snapshot API,
or a plain copy. Copies go through `docker cp`, so no tool inside the images is needed.
The archive (bundle/archive.py) starts with a manifest that lists every volume with its
size and SHA-256; restore refuses a corrupt archive, one from another project, or one
whose volumes are not those of the enabled layers, before it changes anything. It
replaces the volumes' contents (an empty volume, then the archived files with their
owners and modes) and leaves the stack stopped: `make up` starts it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import requests

from . import ROOT, archive
from .images import feed
from .stack import Stack, StackError, Volume, docker

KIND = "obsbundle-backup/1"
DEFAULT_DIR = ROOT / "backups"
# The Elasticsearch snapshot repository (a location under path.repo, compose/logs.yml).
ES_REPOSITORY = "obsbundle"
SQLITE_DATABASES = {"grafana-data": "grafana.db"}


def say(message: str) -> None:
    print(f"backup: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ tar streams

def relative_tar(source, target: Path, replace: dict[str, Path] | None = None) -> None:
    """`docker cp CONTAINER:/dir -` yields entries under `dir/`; write them to `target`
    relative to the directory itself (its root as `.`), as `docker cp - CONTAINER:/dir`
    extracts them into the volume. Members named in `replace` get that file's content
    (with the original's owner and mode); their SQLite journal files are left out."""
    replace = replace or {}
    dropped = {f"{name}{suffix}" for name in replace for suffix in ("-journal", "-wal", "-shm")}
    with tarfile.open(fileobj=source, mode="r|") as src, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            _, _, rest = member.name.partition("/")
            member.name = rest or "."
            if member.name in dropped:
                continue
            if member.name in replace and member.isfile():
                member.size = replace[member.name].stat().st_size
                with replace[member.name].open("rb") as fh:
                    dst.addfile(member, fh)
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def copy_out(container: str, path: str, target: Path, replace: dict[str, Path] | None = None) -> None:
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(["docker", "cp", f"{container}:{path}", "-"], stdout=subprocess.PIPE, stderr=err)
        try:
            relative_tar(proc.stdout, target, replace)
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            raise StackError(f"docker cp {container}:{path} failed: {err.read().decode(errors='replace').strip()}")


def online_sqlite_backup(database: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database through SQLite's backup API, which
    copies page by page under SQLite's own locks and restarts when a writer changes the
    source meanwhile. https://www.sqlite.org/backup.html"""
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise StackError(f"the backup of {database} fails SQLite's integrity check: {verdict}")
    finally:
        copy.close()
        source.close()


# ------------------------------------------------------------------ Elasticsearch

class Elasticsearch:
    """The logs layer's Elasticsearch, from the host, as `elastic` (the setup job's user)."""

    def __init__(self, stack: Stack):
        host = stack.setting("BIND_ADDRESS")
        self.base = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{stack.setting('ELASTICSEARCH_PORT')}"
        self.auth = ("elastic", stack.secret("ELASTIC_PASSWORD"))

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 3600) -> dict:
        try:
            response = requests.request(method, self.base + path, json=body, auth=self.auth, timeout=timeout)
        except requests.RequestException as exc:
            raise StackError(f"Elasticsearch {method} {path}: {exc}") from None
        if response.status_code >= 300:
            raise StackError(f"Elasticsearch {method} {path}: {response.status_code} {response.text[:400]}")
        return response.json()

    def register(self) -> None:
        # A location relative to path.repo. https://www.elastic.co/docs/deploy-manage/tools/snapshot-and-restore/shared-file-system-repository
        self.call("PUT", f"/_snapshot/{ES_REPOSITORY}", {"type": "fs", "settings": {"location": ES_REPOSITORY}})

    def snapshot(self, name: str) -> None:
        self.register()
        # The defaults: every regular data stream and index, the cluster state (templates,
        # lifecycle policies) and the feature states (security, Kibana).
        # https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-snapshot-create
        answer = self.call("PUT", f"/_snapshot/{ES_REPOSITORY}/{name}?wait_for_completion=true",
                           {"include_global_state": True})
        state = answer.get("snapshot", {}).get("state")
        if state != "SUCCESS":
            raise StackError(f"Elasticsearch snapshot {name} ended {state}: {answer}")

    def restore(self, name: str) -> None:
        self.register()
        # Into the empty cluster restore() started: every regular data stream and index,
        # and with the cluster state every feature state (templates first, which the data
        # streams need). https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-snapshot-restore
        answer = self.call("POST", f"/_snapshot/{ES_REPOSITORY}/{name}/_restore?wait_for_completion=true",
                           {"include_global_state": True})
        failed = answer.get("snapshot", {}).get("shards", {}).get("failed", 0)
        if failed:
            raise StackError(f"Elasticsearch restore of {name}: {failed} shards failed: {answer}")


# ------------------------------------------------------------------ backup

def backup(stack: Stack, directory: Path, only: list[str] | None = None, prefix: str = "backup",
           restart: bool = True) -> Path:
    """Write <directory>/<project>-<prefix>-<UTC time>.tar with the volumes of the enabled
    layers (or of the services in `only`) and return its path. Services stopped for their
    copy are started again and waited for, unless not `restart` (make upgrade recreates
    them next)."""
    volumes = [v for v in stack.volumes() if only is None or v.service in only]
    if not volumes:
        raise StackError("no volume to back up")
    running = stack.running()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    entries, members, restarted = [], {}, []
    with tempfile.TemporaryDirectory(dir=directory, prefix=".backup-") as scratch:
        for volume in volumes:
            method = volume.method if volume.service in running else "stopped"
            member = f"volumes/{volume.key}.tar"
            entry = {"volume": volume.key, "service": volume.service, "path": volume.path, "method": method,
                     "member": member}
            target = Path(scratch) / f"{volume.key}.tar"
            say(f"{volume.key} ({method})")
            if method == "snapshot":
                name = f"{stack.project}-{stamp}".lower()
                Elasticsearch(stack).snapshot(name)
                entry.update(member=None, snapshot=name)
            elif method == "stop":
                stopped_copy(stack, volume, target, restart)
                restarted.append(volume.service)
            elif method == "sqlite":
                entry["method"] = sqlite_copy(stack, volume, target, Path(scratch), restart)
                if entry["method"] == "stop":
                    restarted.append(volume.service)
            else:   # copy, stopped
                copy_out(stack.container(volume.service), volume.path, target)
            if entry["member"]:
                members[member] = target
            entries.append(entry)
        # Started again right after their copy; healthy again before this returns.
        for service in restarted if restart else ():
            stack.wait_healthy(service)
        images = {s: c.get("Image") for s, c in stack.containers().items()}
        path = directory / f"{stack.project}-{prefix}-{stamp}.tar"
        archive.write(path, KIND, {"project": stack.project, "created": stamp, "volumes": entries,
                                   "images": images}, members)
    return path


def sqlite_copy(stack: Stack, volume: Volume, target: Path, scratch: Path, restart: bool) -> str:
    """The volume with its SQLite database copied online, when this host can open the
    database where the engine keeps the volume (a local engine, as root); otherwise with
    the service stopped meanwhile. Returns the method used."""
    database = SQLITE_DATABASES[volume.key]
    mountpoint = docker("volume", "inspect", "--format", "{{.Mountpoint}}", volume.name).stdout.strip()
    live = Path(mountpoint) / database
    if mountpoint and os.access(live, os.R_OK):
        copy = scratch / f"{volume.key}-{database}"
        try:
            online_sqlite_backup(live, copy)
        except sqlite3.Error as exc:
            say(f"{volume.key}: online backup of {database} failed ({exc}); stopping {volume.service} instead")
        else:
            copy_out(stack.container(volume.service), volume.path, target, replace={database: copy})
            return "sqlite"
    stopped_copy(stack, volume, target, restart)
    return "stop"


def stopped_copy(stack: Stack, volume: Volume, target: Path, restart: bool) -> None:
    """Stop the service, copy its volume, start it again (not waiting for its health)."""
    stack.compose("stop", volume.service)
    try:
        copy_out(stack.container(volume.service), volume.path, target)
    finally:
        if restart:
            stack.compose("start", volume.service)


# ------------------------------------------------------------------ restore

def check(stack: Stack, reader: archive.Reader, only: list[str] | None) -> list[tuple[Volume, dict]]:
    """The volumes to restore with their archive entries; refuses a foreign archive."""
    manifest = reader.manifest
    if manifest.get("project") != stack.project:
        raise archive.ArchiveError(f"{reader.path}: a backup of project {manifest.get('project')!r}, "
                                   f"not of this stack ({stack.project!r})")
    entries = {e["volume"]: e for e in manifest.get("volumes", [])}
    volumes = {v.key: v for v in stack.volumes() if only is None or v.service in only}
    if only is None:
        foreign = sorted(set(entries) - set(volumes))
        missing = sorted(set(volumes) - set(entries))
        if foreign or missing:
            raise archive.ArchiveError(
                f"{reader.path}: its volumes are not those of the enabled layers"
                + (f"; not on this stack: {', '.join(foreign)}" if foreign else "")
                + (f"; not in the archive: {', '.join(missing)}" if missing else "")
                + " (switch the same layers on as when it was made)")
    absent = sorted(set(volumes) - set(entries))
    if absent:
        raise archive.ArchiveError(f"{reader.path}: does not hold {', '.join(absent)}")
    return [(volumes[key], entries[key]) for key in volumes]


def restore(stack: Stack, path: Path, only: list[str] | None = None) -> None:
    """Put the archived volumes back (all of them, or those of the services in `only`);
    those services must be stopped. Leaves them stopped."""
    with archive.Reader(path, KIND) as reader:
        plan = check(stack, reader, only)
        touched = sorted({s for volume, _ in plan for s in volume.services})
        busy = sorted(stack.running() & set(touched if only else stack.model["services"]))
        if busy:
            raise StackError(f"running: {', '.join(busy)}; restore works on a stopped stack (make down first)")
        stack.compose("rm", "--force", "--stop", *touched)
        for volume, _ in plan:
            docker("volume", "rm", volume.name, check=False)
        stack.compose("create", "--no-recreate", *touched)
        snapshots = []
        for volume, entry in plan:
            say(f"restoring {volume.key}")
            if entry.get("snapshot"):
                snapshots.append((volume, entry["snapshot"]))
                continue
            container = stack.container(volume.service)
            result = feed(["docker", "cp", "--archive", "-", f"{container}:{volume.path}"], reader.open(entry["member"]))
            if result.returncode != 0:
                raise StackError(f"docker cp into {volume.key} failed: {result.stderr.strip()}")
        for volume, name in snapshots:
            say(f"restoring Elasticsearch snapshot {name}")
            stack.compose("start", volume.service)
            try:
                stack.wait_healthy(volume.service)
                Elasticsearch(stack).restore(name)
            finally:
                stack.compose("stop", volume.service)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Back up and restore the stack's volumes.")
    sub = parser.add_subparsers(dest="what", required=True)
    make = sub.add_parser("backup")
    make.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    back = sub.add_parser("restore")
    back.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    stack = Stack(timeout=float(os.environ.get("UP_TIMEOUT", "300")))
    try:
        if args.what == "backup":
            path = backup(stack, args.dir)
            print(f"backup: wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        else:
            restore(stack, args.file)
            print(f"restore: the volumes of {args.file} are back; start the stack with `make up`")
        return 0
    except (archive.ArchiveError, StackError) as error:
        print(f"{args.what}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
