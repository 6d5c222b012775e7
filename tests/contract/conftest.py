"""The contract level: the defaults users rely on (guide.py), checked against the config
rendered from values.yaml alone and, where a stack runs, against what the running
Prometheus and Alertmanager loaded."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
# The generated promtool tests and the alerts' input series live with the config level.
sys.path.insert(0, str(HERE.parent / "config"))
sys.path.insert(0, str(HERE))

from bundle import ROOT  # noqa: E402
from contract import wait  # noqa: E402


@pytest.fixture(scope="session")
def defaults(tmp_path_factory) -> Path:
    """values.yaml alone rendered as a user's first `make render` does (with a fresh .env):
    the directory holding config/ and .env."""
    work = tmp_path_factory.mktemp("contract-defaults")
    result = subprocess.run([sys.executable, "render.py", "--output", str(work / "config"),
                             "--env-file", str(work / ".env")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def local_alertmanager(tool, defaults, tmp_path_factory):
    """The real Alertmanager (versions.yaml, .tools/bin/alertmanager) on loopback with the
    rendered routes and inhibit rules. Its receivers keep their names but lose their
    integrations, so it sends nothing anywhere."""
    import yaml

    work = tmp_path_factory.mktemp("alertmanager")
    config = yaml.safe_load((defaults / "config" / "alertmanager" / "alertmanager.yml").read_text())
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    config.pop("templates", None)
    (work / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "alertmanager.log").open("w")
    proc = subprocess.Popen([tool("alertmanager"), f"--config.file={work / 'alertmanager.yml'}",
                             f"--storage.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait("the local Alertmanager ready", lambda: proc.poll() is None and
                 requests.get(f"{url}/-/ready", timeout=2).ok)
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{(work / 'alertmanager.log').read_text()}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
