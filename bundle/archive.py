"""One-file archives (`make save`, `make backup`): a tar whose first member is a JSON
manifest naming its kind and every other member with its size and SHA-256, so that a
reader refuses a corrupt, truncated or foreign file before it changes anything."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Iterator

MANIFEST = "manifest.json"
CHUNK = 1 << 20


class ArchiveError(Exception):
    """One line saying what is wrong with an archive (or with writing one)."""


def sha256_of(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def write(path: Path, kind: str, manifest: dict, members: dict[str, Path]) -> None:
    """Write `path` (mode 0600, atomically: a partial archive never has the final name):
    the manifest, with `kind` and each member's size and SHA-256 added, then the members
    (name in the archive -> file on disk), in order."""
    manifest = {"kind": kind, **manifest, "members": {}}
    for name, source in members.items():
        with source.open("rb") as fh:
            sha, size = sha256_of(fh)
        manifest["members"][name] = {"bytes": size, "sha256": sha}
    data = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, _Bytes(data))
            for name, source in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode = manifest["members"][name]["bytes"], 0o600
                with source.open("rb") as src:
                    tar.addfile(info, src)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Bytes:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


class Reader:
    """An archive checked end to end: `Reader(path, kind)` raises ArchiveError unless the
    file is a tar whose manifest has that kind and whose members all match it."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        try:
            self.tar = tarfile.open(path, mode="r:")
        except FileNotFoundError:
            raise ArchiveError(f"{path}: no such file") from None
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{path}: not a {kind} archive (not a tar file: {exc})") from None
        try:
            self.manifest = self._manifest(kind)
            self._verify()
        except BaseException:
            self.tar.close()
            raise

    def _manifest(self, kind: str) -> dict:
        try:
            first = self.tar.next()
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{self.path}: corrupt archive: {exc}") from None
        if first is None or first.name != MANIFEST or not first.isfile():
            raise ArchiveError(f"{self.path}: not a {kind} archive (no {MANIFEST} first)")
        self._first = first
        try:
            manifest = json.load(self.tar.extractfile(first))
        except (ValueError, tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{self.path}: corrupt archive: unreadable {MANIFEST}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("kind") != kind:
            found = manifest.get("kind") if isinstance(manifest, dict) else None
            raise ArchiveError(f"{self.path}: not a {kind} archive (its manifest says {found!r})")
        if not isinstance(manifest.get("members"), dict):
            raise ArchiveError(f"{self.path}: corrupt archive: the manifest lists no members")
        return manifest

    def _verify(self) -> None:
        expected = dict(self.manifest["members"])
        seen = set()
        try:
            for member in self.tar:
                if member is self._first:
                    continue
                if member.name not in expected or member.name in seen or not member.isfile():
                    raise ArchiveError(f"{self.path}: corrupt archive: {member.name} is not in the manifest")
                sha, size = sha256_of(self.tar.extractfile(member))
                want = expected[member.name]
                if (sha, size) != (want.get("sha256"), want.get("bytes")):
                    raise ArchiveError(f"{self.path}: corrupt archive: {member.name} does not match its "
                                       f"checksum in the manifest ({size} bytes, sha256 {sha[:12]}...; "
                                       f"expected {want.get('bytes')} bytes, sha256 {str(want.get('sha256'))[:12]}...)")
                seen.add(member.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ArchiveError(f"{self.path}: corrupt archive (truncated?): {exc}") from None
        missing = sorted(set(expected) - seen)
        if missing:
            raise ArchiveError(f"{self.path}: corrupt archive (truncated?): missing {', '.join(missing)}")

    def open(self, name: str) -> IO[bytes]:
        """A member's bytes (already verified)."""
        return self.tar.extractfile(self.tar.getmember(name))

    def names(self) -> Iterator[str]:
        return iter(self.manifest["members"])

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
