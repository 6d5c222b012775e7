"""What differs from host to host, rendered both ways and read back through `docker compose
config`: the SELinux label of the bind mounts (values selinux_relabel, and
scripts/host-env.sh's reading of the host), the rootless engine's override, the
Elasticsearch memory lock, and node-exporter in the host's namespaces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bundle import versions
from compose_project import compose_config

pytestmark = pytest.mark.config


def render(root: Path, work: Path, values: dict) -> Path:
    overlay = work / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(values))
    result = subprocess.run([sys.executable, "render.py", "--values", str(overlay), "--output", str(work / "config"),
                             "--env-file", str(work / ".env")], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return work


def host_env(root: Path, work: Path, enforce: str | None) -> dict:
    """What scripts/host-env.sh gives a host whose /sys/fs/selinux/enforce holds `enforce`
    (None: SELinux not enabled)."""
    fake = work / "host"
    if enforce is not None:
        (fake / "sys/fs/selinux").mkdir(parents=True)
        (fake / "sys/fs/selinux/enforce").write_text(enforce + "\n")
    out = subprocess.run([str(root / "scripts/host-env.sh"), str(work / "config/compose.env")], capture_output=True,
                         text=True, check=True, env={"HOST_ROOT": str(fake), "PATH": "/usr/bin:/bin"}).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


def binds(model: dict) -> list[tuple[str, dict]]:
    return [(name, volume) for name, service in model["services"].items()
            for volume in service.get("volumes", []) if volume["type"] == "bind"]


@pytest.mark.parametrize("relabel, enforce, labelled", [
    ("auto", "1", True),       # enforcing
    ("auto", "0", False),      # permissive
    ("auto", None, False),     # not enabled
    ("always", None, True),
    ("never", "1", False),
])
def test_the_config_bind_mounts_carry_the_shared_selinux_label_when_it_is_wanted(root, tmp_path, relabel, enforce,
                                                                                   labelled):
    work = render(root, tmp_path, {"selinux_relabel": relabel})
    model = compose_config(root, work, host_env(root, work, enforce))
    mounted = binds(model)
    # The Compose files mount ../config/..., the repository's config/ (compose_config).
    ours = [(name, v) for name, v in mounted if v["source"].startswith(str(root / "config"))]
    # Every layer's config mounts (all layers are on by default), each read-only.
    assert {name for name, _ in ours} >= {"prometheus", "alertmanager", "grafana", "logstash", "kibana", "jaeger",
                                         "apm-server", "elasticsearch-setup"}
    for name, volume in ours:
        assert volume["read_only"], (name, volume)
        assert (volume.get("bind", {}).get("selinux") == "z") == labelled, (name, volume)
    # Never the host's / (node-exporter): relabelling it would relabel the host.
    host_root = [v for name, v in mounted if v["source"] == "/"]
    assert host_root and all("selinux" not in v.get("bind", {}) for v in host_root)


def test_every_bind_mount_of_a_file_render_writes_has_the_label(root):
    """A new `../config/...` mount in a Compose file without ${BIND_LABEL-} would miss the label."""
    for path in sorted((root / "compose").glob("*.yml")):
        for service, definition in (yaml.safe_load(path.read_text())["services"] or {}).items():
            for volume in definition.get("volumes", []):
                if isinstance(volume, str) and volume.startswith("../config/"):
                    assert volume.endswith(":ro${BIND_LABEL-}"), (path.name, service, volume)


def test_host_env_refuses_an_unknown_setting(root, tmp_path):
    env = tmp_path / "compose.env"
    env.write_text("SELINUX_RELABEL='sometimes'\n")
    result = subprocess.run([str(root / "scripts/host-env.sh"), str(env)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "SELINUX_RELABEL is 'sometimes', expected auto, always or never" in result.stderr


@pytest.mark.parametrize("rootless", [False, True])
def test_a_rootless_engine_gets_node_exporter_without_the_hosts_pid_namespace(root, tmp_path, rootless):
    work = render(root, tmp_path, {"rootless": rootless, "layers": {"dashboards": False, "logs": False,
                                                                   "tracing": False, "apm": False}})
    node = compose_config(root, work)["services"]["node-exporter"]
    assert node.get("pid") == (None if rootless else "host")
    assert node["network_mode"] == "host"


@pytest.mark.parametrize("lock, memlock", [(True, -1), (False, 65536)])
def test_elasticsearch_locks_its_heap_only_when_asked(root, tmp_path, lock, memlock):
    work = render(root, tmp_path, {"elasticsearch": {"memory_lock": lock}})
    es = compose_config(root, work)["services"]["elasticsearch"]
    assert es["environment"]["bootstrap.memory_lock"] == str(lock).lower()
    assert es["ulimits"]["memlock"] == {"soft": memlock, "hard": memlock}


def test_node_exporter_is_in_the_hosts_namespaces_and_reached_through_the_gateway(root, tmp_path):
    model = compose_config(root, render(root, tmp_path, {}))
    node, prometheus = model["services"]["node-exporter"], model["services"]["prometheus"]
    assert node["network_mode"] == "host" and node["pid"] == "host"
    assert not node.get("ports")
    listen = [arg for arg in node["command"] if arg.startswith("--web.listen-address=")]
    assert listen == ["--web.listen-address=host.docker.internal:9100"]
    assert node["extra_hosts"] == ["host.docker.internal=host-gateway"]
    # The scrape job's target name resolves to that same gateway address in Prometheus.
    assert prometheus["extra_hosts"] == ["node-exporter=host-gateway"]
    root_mount = [v for v in node["volumes"] if v["source"] == "/"]
    assert root_mount and root_mount[0]["read_only"]


def test_versions_say_for_every_pinned_image_whether_it_has_an_arm64_build(values):
    arm64 = versions.load()["arm64"]
    pinned = set(values["images"]) - {"registry"}
    assert set(arm64) == pinned
    for key, entry in arm64.items():
        assert entry["published"] in (True, False, "unverified"), key
        assert entry["source"].startswith("https://"), key
