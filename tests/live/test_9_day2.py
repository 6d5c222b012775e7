"""Day-2 operations on the running core (README "Day-2 operations", "Hardening"):
containers run hardened; a pull that fails names the image, the reason and the fix, and
`make up` stops before touching the stack; images go into one archive and back;
backup -> make clean -> restore brings samples and silences back; an upgrade to a broken
image rolls back to the previous image with its data.

Runs after the other live tests (file order: test_9): it stops, removes and recreates parts of
the stack and leaves it as it found it (same VALUES, healthy, demo platform attached).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from bundle.build import image_ref
from bundle.images import enabled_images
from bundle.secrets import read_env
from stack import ROOT, containers, logs, wait_for

pytestmark = pytest.mark.live

# README "Hardening": the services that get a capability back, and why. Written from the
# README table, not from the Compose files.
CAPABILITIES = {"jaeger-volume-init": {"CAP_CHOWN", "CAP_DAC_READ_SEARCH"}}


def make(target: str, overlays: list[Path], *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    files = " ".join(shlex.quote(str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)) for p in overlays)
    return subprocess.run(["make", "--no-print-directory", target, f"VALUES={files}", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def inspect(name: str) -> dict:
    return json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True,
                                     check=True).stdout)[0]


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def running_images() -> dict[str, str]:
    return {c["Service"]: c["Image"] for c in containers() if c["State"] == "running"}


def healthy() -> bool:
    found = containers()
    return bool(found) and all(c["State"] == "running" and c["Health"] in ("", "healthy") for c in found)


def wait_stack_healthy(what: str) -> None:
    wait_for(what, healthy, timeout=180, interval=2,
             services=tuple(c["Service"] for c in containers()))


# ---------------------------------------------------------------------- hardening

def test_every_container_runs_hardened(running, stack_values):
    """What the kernel applies to each running container: no capability at all, no new
    privileges, a non-root user, a read-only root, PID and memory limits and rotated logs."""
    assert running
    for container in running:
        service, info = container["Service"], inspect(container["Name"])
        host = info["HostConfig"]
        pid = info["State"]["Pid"]
        status = proc_status(pid)
        uids = status["Uid"].split()
        assert uids and all(u != "0" for u in uids), (service, status["Uid"])
        assert status["NoNewPrivs"] == "1", service
        allowed = CAPABILITIES.get(service, set())
        assert int(status["CapEff"], 16) == 0 or allowed, (service, status["CapEff"])
        assert host["CapDrop"] == ["ALL"], (service, host["CapDrop"])
        assert set(host.get("CapAdd") or []) <= allowed, (service, host["CapAdd"])
        assert "no-new-privileges:true" in (host.get("SecurityOpt") or []), service
        assert (host.get("PidsLimit") or 0) > 0, service
        assert host["Memory"] > 0, service
        # The core writes only to its volumes (README "Hardening").
        assert host["ReadonlyRootfs"] is True, service
        assert host["LogConfig"]["Type"] == "json-file" and host["LogConfig"]["Config"].get("max-size"), service


# ---------------------------------------------------------------------- pull failures

class FakeRegistry(BaseHTTPRequestHandler):
    """A registry on loopback that has no image: it answers the v2 API's ping, refuses
    repositories under private/ as an unauthenticated pull, and knows no other manifest.
    https://distribution.github.io/distribution/spec/api/"""

    def do_GET(self):
        if self.path.rstrip("/") == "/v2":
            return self.answer(200, {})
        if self.path.startswith("/v2/private/"):
            return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                               {"WWW-Authenticate": 'Basic realm="fake"'})
        return self.answer(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})

    do_HEAD = do_GET

    def answer(self, code: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    port = server.server_address[1]
    server.server_close()
    return port


def overlay(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_pull_failure_names_image_reason_and_fix(registry, overlays, tmp_path):
    mirror = overlay(tmp_path, "mirror", {"images": {
        "registry": f"{registry}/",
        "prometheus": {"repository": "obsbundle-test/prometheus", "tag": "v0-missing"},
        "alertmanager": {"repository": "private/alertmanager", "tag": "v1"}}})
    result = make("pull", [*overlays, mirror])
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert f"{registry}/obsbundle-test/prometheus:v0-missing" in lines["prometheus"], out
    assert "FAILED (not-found)" in lines["prometheus"], out
    assert "FAILED (auth)" in lines["alertmanager"], out
    assert f"docker login {registry}" in out
    assert "images.prometheus" in out and "images.alertmanager" in out

    down = overlay(tmp_path, "down", {"images": {"registry": f"127.0.0.1:{closed_port()}/"}})
    result = make("pull", [*overlays, down])
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "FAILED (unreachable)" in out and "images.registry" in out and "make load" in out, out


def test_make_up_stops_at_the_pull_and_touches_nothing(overlays, tmp_path):
    """Tried on a host whose registry is unreachable: `make up` says which image and
    what to do, not that the stack did not become healthy, and changes no container."""
    before = {c["Name"]: inspect(c["Name"])["State"]["StartedAt"] for c in containers()}
    down = overlay(tmp_path, "down", {"images": {"registry": f"127.0.0.1:{closed_port()}/"}})
    try:
        result = make("up", [*overlays, down])
        out = result.stdout + result.stderr
        assert result.returncode != 0
        assert "could not be pulled" in out and "images.registry" in out, out
        assert f"127.0.0.1:" in out and "FAILED (unreachable)" in out, out
        assert "did not become healthy" not in out, out
        assert {c["Name"]: inspect(c["Name"])["State"]["StartedAt"] for c in containers()} == before
    finally:
        assert make("render", overlays).returncode == 0


# ---------------------------------------------------------------------- save and load

@pytest.fixture
def test_names(stack_values, tmp_path):
    """The core's running images tagged under names of this test's own (obsbundle-test/...),
    and the overlay that selects them with the other layers off (the whole stack's
    images are gigabytes where every layer runs); the tags are removed afterwards."""
    core = {**stack_values, "layers": {name: False for name in stack_values["layers"]}}
    images, tags = {}, []
    for image in enabled_images(core):
        spec = stack_values["images"][image.key]
        name = f"obsbundle-test/{spec['repository'].rsplit('/', 1)[-1]}:{spec['tag'].split('@')[0]}"
        subprocess.run(["docker", "tag", image.ref, name], check=True)
        images[image.key] = {"repository": name.split(":")[0], "tag": name.split(":")[1]}
        tags.append(name)
    layers_off = {name: False for name in stack_values["layers"]}
    yield overlay(tmp_path, "test-names", {"layers": layers_off, "images": images}), tags
    subprocess.run(["docker", "rmi", *tags], capture_output=True)


def damaged_copy(source: Path, target: Path, offset: int) -> Path:
    """A copy of `source` with one byte flipped at `offset` (negative: from the end)."""
    shutil.copyfile(source, target)
    with target.open("r+b") as fh:
        fh.seek(offset, 0 if offset >= 0 else 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return target


def image_ids(tags: list[str]) -> dict[str, str | None]:
    out = {}
    for tag in tags:
        result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True,
                                text=True)
        out[tag] = result.stdout.strip() if result.returncode == 0 else None
    return out


def test_images_go_into_one_archive_and_back(overlays, test_names, tmp_path):
    names, tags = test_names
    ids = image_ids(tags)
    assert len(tags) >= 6 and all(ids.values())
    saved = tmp_path / "images.tar"
    result = make("save", [*overlays, names], f"FILE={saved}")
    assert result.returncode == 0, result.stderr

    # A damaged copy is refused before anything is loaded.
    damaged = damaged_copy(saved, tmp_path / "damaged.tar", saved.stat().st_size // 2)
    subprocess.run(["docker", "rmi", *tags], check=True, capture_output=True)
    result = make("load", [*overlays, names], f"FILE={damaged}")
    assert result.returncode != 0 and "corrupt archive" in result.stderr, result.stderr
    assert not any(image_ids(tags).values()), "a refused archive loaded images"

    result = make("load", [*overlays, names], f"FILE={saved}")
    assert result.returncode == 0, result.stderr
    assert image_ids(tags) == ids


# ---------------------------------------------------------------------- backup and restore

def samples_at(prometheus, when: float) -> dict[str, str]:
    """Every sample of a few series at one past instant, keyed by series."""
    found = prometheus.query('{__name__=~"up|scrape_samples_scraped"}', time=when)
    return {json.dumps(r["metric"], sort_keys=True): r["value"][1] for r in found}


def add_silence(alertmanager, comment: str) -> str:
    now = datetime.now(timezone.utc)
    return alertmanager.post("/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "Day2Probe", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=2)).isoformat(),
        "createdBy": "live-tests", "comment": comment})["silenceID"]


def state_before(prometheus, alertmanager) -> tuple[float, dict, str]:
    wait_for("samples to look back at", lambda: prometheus.query('up{job="prometheus"}'), timeout=30)
    when = time.time() - 3
    samples = samples_at(prometheus, when)
    assert samples
    silence = add_silence(alertmanager, f"day-2 {uuid.uuid4().hex[:8]}")
    return when, samples, silence


def assert_state_is_back(prometheus, alertmanager, when: float, samples: dict, silence: str) -> None:
    wait_for("the samples from before", lambda: samples_at(prometheus, when) == samples, timeout=60)
    kept = wait_for("the silence from before", lambda: alertmanager.get(f"/api/v2/silence/{silence}"), timeout=30)
    assert kept["status"]["state"] == "active"


@contextmanager
def sink_detached():
    """The demo platform's sink joins the stack's network; `make clean` removes that
    network, so the sink leaves it meanwhile and joins the new one afterwards."""
    network = f"{read_env(ROOT / 'config' / 'compose.env')['COMPOSE_PROJECT_NAME']}_default"
    names = subprocess.run(["docker", "ps", "--quiet", "--filter", f"network={network}",
                            "--filter", "label=com.docker.compose.service=sink"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        subprocess.run(["docker", "network", "disconnect", network, name], check=True, capture_output=True)
    try:
        yield
    finally:
        for name in names:
            subprocess.run(["docker", "network", "connect", "--alias", "sink", network, name], check=True,
                           capture_output=True)


def test_backup_clean_restore_brings_samples_and_silences_back(prometheus, alertmanager, overlays, tmp_path):
    when, samples, silence = state_before(prometheus, alertmanager)

    result = subprocess.run(["make", "--no-print-directory", "backup", f"DIR={tmp_path}"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    archive = next(tmp_path.glob("*-backup-*.tar"))
    wait_stack_healthy("the stack after the backup")

    # Refused while the stack runs, and a damaged archive whatever the state.
    restore = subprocess.run(["make", "--no-print-directory", "restore", f"FILE={archive}"], cwd=ROOT,
                             capture_output=True, text=True)
    assert restore.returncode != 0 and "make down first" in restore.stderr, restore.stderr
    damaged = damaged_copy(archive, tmp_path / "damaged.tar", -20000)
    restore = subprocess.run(["make", "--no-print-directory", "restore", f"FILE={damaged}"], cwd=ROOT,
                             capture_output=True, text=True)
    assert restore.returncode != 0 and "corrupt archive" in restore.stderr, restore.stderr

    with sink_detached():
        clean = subprocess.run(["make", "--no-print-directory", "clean"], cwd=ROOT, capture_output=True, text=True)
        assert clean.returncode == 0, clean.stderr
        volumes = subprocess.run(["docker", "volume", "ls", "--quiet", "--filter", "label=com.docker.compose.project"],
                                 capture_output=True, text=True, check=True).stdout.split()
        assert not [v for v in volumes if v.endswith(("_prometheus-data", "_alertmanager-data"))], volumes
        restore = subprocess.run(["make", "--no-print-directory", "restore", f"FILE={archive}"], cwd=ROOT,
                                 capture_output=True, text=True)
        assert restore.returncode == 0, restore.stderr
        up = make("up", overlays)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert_state_is_back(prometheus, alertmanager, when, samples, silence)


# ---------------------------------------------------------------------- upgrade and rollback

@pytest.fixture
def test_builds(stack_values):
    """Two builds of the running Prometheus under names of this test's own: v1 works,
    v2 is broken the way a release with a removed flag is (it exits at start)."""
    base = image_ref(stack_values, "prometheus")
    builds = {
        "obsbundle-test/prometheus:v1": f"FROM {base}\nLABEL org.opencontainers.image.version=test-v1\n",
        "obsbundle-test/prometheus:v2-broken": f"FROM {base}\nLABEL org.opencontainers.image.version=test-v2\n"
                                               'ENTRYPOINT ["/bin/prometheus", "--flag.removed-in-v2"]\n',
    }
    for tag, dockerfile in builds.items():
        subprocess.run(["docker", "build", "--quiet", "--tag", tag, "-"], input=dockerfile, text=True, check=True,
                       capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                            # The engine the stack runs on, where `make upgrade` looks for them.
                            **{k: v for k, v in os.environ.items() if k == "DOCKER_HOST"}})
    yield list(builds)
    subprocess.run(["docker", "rmi", *builds], capture_output=True)


def test_a_failed_upgrade_rolls_back_to_the_previous_image_and_its_data(
        prometheus, alertmanager, overlays, test_builds, tmp_path):
    good, broken = test_builds
    when, samples, silence = state_before(prometheus, alertmanager)
    v1 = overlay(tmp_path, "v1", {"images": {"prometheus": {"repository": "obsbundle-test/prometheus", "tag": "v1"}}})
    v2 = overlay(tmp_path, "v2", {"images": {"prometheus": {"repository": "obsbundle-test/prometheus",
                                                            "tag": "v2-broken"}}})
    try:
        result = make("upgrade", [*overlays, v1], f"DIR={tmp_path}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert running_images()["prometheus"] == good
        assert_state_is_back(prometheus, alertmanager, when, samples, silence)

        result = make("upgrade", [*overlays, v2], f"DIR={tmp_path}")
        out = result.stdout + result.stderr
        assert result.returncode != 0, out[-4000:]
        assert "rolled back" in out and good in out and "ROLLBACK FAILED" not in out, out[-4000:]
        assert running_images()["prometheus"] == good, logs("prometheus")
        wait_stack_healthy("the stack after the rollback")
        assert_state_is_back(prometheus, alertmanager, when, samples, silence)
        assert f"PROMETHEUS_IMAGE='{good}'" in (ROOT / "config" / "compose.env").read_text()
    finally:
        up = make("up", overlays)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
