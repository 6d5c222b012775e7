"""Day-2 tooling without a running stack: the archives of make save and make backup
refuse what is damaged or foreign, volume copies keep owners and drop SQLite journals,
SQLite's online backup is consistent under writes, pull failures get the right reason,
every named volume has a backup method, and the image pins are annotated for update bots."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import stat
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from bundle import ROOT, archive, layers
from bundle.backup import SQLITE_DATABASES, online_sqlite_backup, relative_tar
from bundle.compose import definitions
from bundle.images import classify, enabled_images

pytestmark = pytest.mark.unit

KIND = "obsbundle-test/1"


def make_archive(tmp_path: Path, members: dict[str, bytes], kind: str = KIND) -> Path:
    sources = {}
    for name, data in members.items():
        source = tmp_path / f"src-{name.replace('/', '_')}"
        source.write_bytes(data)
        sources[name] = source
    path = tmp_path / "out" / "a.tar"
    archive.write(path, kind, {"note": "x"}, sources)
    return path


def test_an_archive_reads_back_with_its_manifest(tmp_path):
    path = make_archive(tmp_path, {"volumes/a.tar": b"a" * 5000, "b": b""})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob("*.partial"))
    with archive.Reader(path, KIND) as reader:
        assert reader.manifest["note"] == "x"
        assert reader.open("volumes/a.tar").read() == b"a" * 5000
        assert reader.manifest["members"]["b"] == {"bytes": 0, "sha256": sha(b"")}


def sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("damage, message", [
    ("flip", "does not match its checksum"),
    ("truncate", "truncated"),
])
def test_a_damaged_archive_is_refused(tmp_path, damage, message):
    path = make_archive(tmp_path, {"data": bytes(range(256)) * 400})
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x01
    else:
        raw = raw[: len(raw) // 2]
    path.write_bytes(bytes(raw))
    with pytest.raises(archive.ArchiveError, match=message):
        archive.Reader(path, KIND)


def test_a_foreign_file_is_refused(tmp_path):
    other = make_archive(tmp_path, {"x": b"1"}, kind="something-else/1")
    with pytest.raises(archive.ArchiveError, match="not a obsbundle-test/1 archive .*something-else"):
        archive.Reader(other, KIND)
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(archive.ArchiveError, match="no manifest.json first"):
        archive.Reader(plain, KIND)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive\n")
    with pytest.raises(archive.ArchiveError, match="not a tar file"):
        archive.Reader(text, KIND)


def test_a_member_the_manifest_does_not_list_is_refused(tmp_path):
    path = make_archive(tmp_path, {"a": b"1"})
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("smuggled")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"2"))
    with pytest.raises(archive.ArchiveError, match="smuggled is not in the manifest"):
        archive.Reader(path, KIND)


# ---------------------------------------------------------------------- volume copies

def docker_cp_stream(entries: list[tuple[str, bytes | None, int]]) -> io.BytesIO:
    """A tar as `docker cp CONTAINER:/var/lib/grafana -` writes it: every entry under the
    directory's own name, with owners."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data, uid in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid = uid, 0
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o640
                tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def test_volume_copies_are_relative_to_the_volume_and_keep_owners(tmp_path):
    source = docker_cp_stream([("grafana", None, 472), ("grafana/plugins", None, 472),
                               ("grafana/grafana.db", b"live pages", 472),
                               ("grafana/grafana.db-journal", b"hot journal", 472),
                               ("grafana/csv/report.csv", b"a,b", 472)])
    online = tmp_path / "online.db"
    online.write_bytes(b"consistent copy")
    target = tmp_path / "volume.tar"
    relative_tar(source, target, replace={"grafana.db": online})
    with tarfile.open(target) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {".", "plugins", "grafana.db", "csv/report.csv"}
        assert tar.extractfile("grafana.db").read() == b"consistent copy"
        assert members["grafana.db"].uid == 472 and members["grafana.db"].mode == 0o640
        assert members["."].isdir() and members["."].uid == 472


def test_sqlite_online_backup_is_consistent_while_written(tmp_path):
    """Transfers between two accounts keep their sum; a copy taken while they run must
    hold a whole number of transfers (the sum), and pass SQLite's integrity check."""
    live = tmp_path / "grafana.db"
    db = sqlite3.connect(live)
    db.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER)")
    db.executemany("INSERT INTO account VALUES (?, ?)", [(1, 1000), (2, 1000)])
    db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, note TEXT)")
    db.commit()
    db.close()
    stop = threading.Event()

    def transfers():
        conn = sqlite3.connect(live, timeout=30)
        n = 0
        while not stop.is_set():
            with conn:
                conn.execute("UPDATE account SET balance = balance - 1 WHERE id = 1")
                conn.execute("INSERT INTO log (note) VALUES (?)", ("x" * 500,))
                conn.execute("UPDATE account SET balance = balance + 1 WHERE id = 2")
            n += 1
        conn.close()

    writer = threading.Thread(target=transfers)
    writer.start()
    try:
        copies = []
        for i in range(5):
            copy = tmp_path / f"copy-{i}.db"
            online_sqlite_backup(live, copy)
            copies.append(copy)
    finally:
        stop.set()
        writer.join()
    logged = []
    for copy in copies:
        conn = sqlite3.connect(copy)
        (total,), = conn.execute("SELECT sum(balance) FROM account")
        (debit,), = conn.execute("SELECT 1000 - balance FROM account WHERE id = 1")
        (rows,), = conn.execute("SELECT count(*) FROM log")
        conn.close()
        assert total == 2000 and debit == rows
        logged.append(rows)
    assert logged[-1] > 0, "the writer never ran during the copies"


# ---------------------------------------------------------------------- pulls

# docker's own words: the first three as the engine answered here (an unreachable
# registry, and a registry on loopback without the manifest or refusing the pull); the
# others as Docker Hub answers (docs.docker.com, "Docker Hub usage and limits").
@pytest.mark.parametrize("message, reason", [
    ('Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io '
     'on 10.255.255.53:53: no such host', "unreachable"),
    ('Error response from daemon: Get "http://127.0.0.1:33149/v2/": dial tcp 127.0.0.1:33149: connect: '
     'connection refused', "unreachable"),
    ("Error response from daemon: manifest unknown", "not-found"),
    ("Error response from daemon: unauthorized", "auth"),
    ("Error response from daemon: manifest for prom/prometheus:v9.9.9 not found: manifest unknown: manifest unknown",
     "not-found"),
    ("Error response from daemon: pull access denied for example/nothing, repository does not exist or may require "
     "'docker login': denied: requested access to the resource is denied", "auth"),
    ("Error response from daemon: toomanyrequests: You have reached your unauthenticated pull rate limit.",
     "rate-limited"),
    ('Error response from daemon: Get "https://registry-1.docker.io/v2/": net/http: request canceled while waiting '
     "for connection (Client.Timeout exceeded while awaiting headers)", "unreachable"),
    ("Error response from daemon: invalid reference format", "failed"),
])
def test_pull_failures_get_their_reason(message, reason):
    assert classify(message) == reason


def test_the_images_of_the_enabled_layers(values):
    everything = enabled_images({**values, "layers": {k: True for k in values["layers"]}})
    # cadvisor runs in agent bundles (make agent), victoria_metrics in the multi-host tests.
    assert {i.key for i in everything} == set(values["images"]) - {"registry", "cadvisor", "victoria_metrics"}
    by_key = {i.key: i for i in everything}
    assert set(by_key["elasticsearch"].services) == {"elasticsearch", "elasticsearch-setup", "kibana-setup"}
    core = enabled_images({**values, "layers": {k: False for k in values["layers"]}})
    assert [i.key for i in core] == ["prometheus", "alertmanager", "node_exporter", "postgres_exporter",
                                     "redis_exporter", "nginx_exporter"]
    mirrored = enabled_images({**values, "images": {**values["images"], "registry": "mirror.example.com:5000/"}})
    assert all(i.ref.startswith("mirror.example.com:5000/") and i.registry == "mirror.example.com:5000"
               for i in mirrored)
    assert by_key["grafana"].registry == "docker.io"
    assert by_key["kibana"].registry == "docker.elastic.co"


# ---------------------------------------------------------------------- backup table

def test_every_named_volume_has_a_backup_method():
    for layer in layers.all_layers():
        data = yaml.safe_load((ROOT / layer.compose).read_text())
        assert set(data.get("volumes") or {}) == set(layer.backup), layer.name
        assert set(layer.backup.values()) <= {"stop", "sqlite", "snapshot", "copy"}, layer.name
        for volume, method in layer.backup.items():
            if method == "sqlite":
                assert volume in SQLITE_DATABASES
            if method == "snapshot":
                # The repository the snapshot goes to is a volume of the same service at
                # path.repo, copied after it.
                service = definitions(layer.compose)["elasticsearch"]
                repo = service["environment"]["path.repo"]
                mounts = dict(m.split(":", 1)[::-1] for m in service["volumes"])
                names = list(layer.backup)
                assert layer.backup[mounts[repo]] == "copy"
                assert names.index(mounts[repo]) > names.index(volume)


# ---------------------------------------------------------------------- update bots

def test_every_pin_is_annotated_for_renovate(values):
    """renovate.json's regex (JavaScript named groups, here in Python's spelling) finds
    every image of values.yaml with its upstream name and tag."""
    config = json.loads((ROOT / "renovate.json").read_text())
    manager = config["customManagers"][0]
    assert any(re.search(p.strip("/"), "values.yaml") for p in manager["managerFilePatterns"])
    pattern = re.compile(manager["matchStrings"][0].replace("(?<", "(?P<"))
    found = {m["depName"]: (m["currentValue"], m["currentDigest"])
             for m in pattern.finditer((ROOT / "values.yaml").read_text())}
    expected = {spec["repository"]: (spec["tag"], None) for key, spec in values["images"].items() if key != "registry"}
    assert found == expected
    digest = "v1.2.3@sha256:" + "a" * 64
    text = ("  # renovate: datasource=docker depName=prom/prometheus\n"
            f"  prometheus:\n    repository: prom/prometheus\n    tag: {digest}\n")
    match = pattern.search(text)
    assert (match["currentValue"], match["currentDigest"]) == ("v1.2.3", "sha256:" + "a" * 64)
