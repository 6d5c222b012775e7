"""make doctor's checks, each with the condition it looks for faked (the engine's answers)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bundle import doctor, images

pytestmark = pytest.mark.unit


class Engine:
    """The answers of a Docker engine and its Compose plugin; each test changes one."""

    def __init__(self, version="28.0.1", fails=None, components=("Engine", "containerd", "runc"),
                 security=("name=seccomp,profile=default",), root_dir="/var/lib/docker", os="Debian GNU/Linux 12",
                 mem_total=16 << 30, memory_limit=True, cgroup_driver="systemd", compose="2.40.3",
                 bridge=True, ps="", arch="x86_64", images=None):
        self.version, self.fails, self.compose, self.bridge, self.ps = version, fails, compose, bridge, ps
        self.images = images   # the image references present; None: every one
        self.components = [{"Name": name, "Version": version} for name in components]
        self.info = {"ServerVersion": version, "SecurityOptions": list(security), "DockerRootDir": root_dir,
                     "OperatingSystem": os, "MemTotal": mem_total, "MemoryLimit": memory_limit,
                     "CgroupDriver": cgroup_driver, "Architecture": arch}

    def __call__(self, *args):
        if self.fails:
            raise doctor.DockerError(self.fails)
        if args == ("version", "--format", "{{.Server.Version}}"):
            return self.version
        if args == ("version", "--format", "{{json .Server}}"):
            return json.dumps({"Version": self.version, "Components": self.components})
        if args == ("info", "--format", "{{json .}}"):
            return json.dumps(self.info)
        if args == ("compose", "version", "--short"):
            if self.compose is None:
                raise doctor.DockerError("docker: 'compose' is not a docker command.")
            return self.compose
        if args[:3] == ("network", "inspect", "bridge"):
            if not self.bridge:
                raise doctor.DockerError("Error: No such network: bridge")
            return "bridge"
        if args[0] == "ps":
            return "c0ffee" if self.ps else ""
        if args[0] == "inspect":
            assert args[-1] == "c0ffee", args
            return self.ps
        if args[:2] == ("image", "inspect"):
            if self.images is None or args[-1] in self.images:
                return "sha256:" + "0" * 64
            raise doctor.DockerError(f"Error response from daemon: No such image: {args[-1]}")
        raise AssertionError(f"unexpected docker {args}")


UNLIMITED = """Limit                     Soft Limit           Hard Limit           Units
Max open files            1048576              1048576              files
Max locked memory         unlimited            unlimited            bytes
"""
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


@pytest.fixture
def root(tmp_path) -> Path:
    """A host that has what the stack needs: a root engine (pid 4242) with high limits,
    cgroup v2 with the memory controller, Elasticsearch's max_map_count, nothing listening."""
    root = tmp_path / "host"
    write(root, "/var/run/docker.pid", "4242\n")
    write(root, "/proc/4242/limits", UNLIMITED)
    write(root, "/proc/4242/status", "CapEff:\t000001ffffffffff\n")
    write(root, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    write(root, "/proc/sys/vm/max_map_count", "262144\n")
    write(root, "/proc/net/tcp", TCP_HEADER)
    write(root, "/proc/net/tcp6", TCP_HEADER)
    return root


def host(values, version="28.0.1", app_network=None, bind=None, fails=False, engine=None, root=None,
         free=100 << 30, env=None, **changes):
    values = {**values, "app_network": app_network or values["app_network"], "bind_address": bind or values["bind_address"],
              **changes}
    engine = engine or Engine(version, fails="Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
                              if fails else None)
    return doctor.Host(values=values, docker=engine, env=env or {}, root=root or Path("/nonexistent"),
                       free_bytes=lambda path: free)


def report(h, accepted=()):
    out = io.StringIO()
    code = doctor.run(h, set(accepted), out)
    return code, out.getvalue()


def test_an_engine_before_28_is_refused_with_the_reason(values):
    code, out = report(host(values, version="20.10.24+dfsg1"))
    assert code == 1
    line = next(l for l in out.splitlines() if "engine-loopback-exposure" in l)
    assert line.startswith("doctor: blocker: engine-loopback-exposure: Docker Engine 20.10.24+dfsg1 is older than 28.0.0")
    assert "https://github.com/moby/moby/issues/45610" in line
    assert "DOCTOR_ACCEPT=engine-loopback-exposure" in line


@pytest.mark.parametrize("version", ["27.5.1", "19.03.15", "27.99.0-ce"])
def test_every_release_before_the_fix_is_refused(values, version):
    assert report(host(values, version=version))[0] == 1


@pytest.mark.parametrize("version", ["28.0.0", "28.5.2", "29.0.0"])
def test_the_fixed_releases_pass(values, version):
    code, out = report(host(values, version=version))
    assert code == 0, out
    assert "blocker" not in out


def test_the_user_can_accept_it_by_name(values):
    code, out = report(host(values, version="20.10.24"), accepted={"engine-loopback-exposure"})
    assert code == 0
    assert "doctor: accepted: engine-loopback-exposure:" in out


def test_ports_published_beyond_loopback_by_choice_are_not_the_bug(values):
    code, out = report(host(values, version="20.10.24", bind="0.0.0.0"))
    assert code == 0, out


def test_no_engine_is_a_blocker(values):
    code, out = report(host(values, fails=True))
    assert code == 1
    assert "Cannot connect to the Docker daemon" in out


def test_on_old_engines_the_app_network_must_sort_after_the_stacks(values):
    """Before 28.0.0 the first network by name is the gateway that published ports map into."""
    accepted = {"engine-loopback-exposure"}
    assert report(host(values, version="20.10.24", app_network="platform"), accepted)[0] == 0   # observability_default < platform
    code, out = report(host(values, version="20.10.24", app_network="apps"), accepted)
    assert code == 1
    assert "doctor: blocker: network-gateway-order:" in out
    # gw_priority decides on 28+.
    assert report(host(values, version="28.0.0", app_network="apps"))[0] == 0


def test_accepting_an_unknown_check_is_reported(values):
    code, out = report(host(values), accepted={"engine-loopbak"})
    assert code == 0
    assert "DOCTOR_ACCEPT names 'engine-loopbak', which is no check" in out


# --------------------------------------------------------------------------- the host's checks

def lines(h, name, accepted=("engine-loopback-exposure",)):
    """The lines of one check, and the exit status of the whole run."""
    code, out = report(h, accepted)
    return code, [line for line in out.splitlines() if line.split(": ")[2:3] == [name]]


def test_a_healthy_host_has_no_blocker_and_no_warning(values, root):
    code, out = report(host(values, root=root))
    assert code == 0, out
    assert "warning" not in out and "blocker" not in out, out
    assert len(out.splitlines()) >= len(doctor.CHECKS)


def test_every_finding_is_one_line_with_what_why_and_fix(values, root):
    write(root, "/proc/sys/vm/max_map_count", "65530\n")
    code, found = lines(host(values, root=root), "elasticsearch-host")
    assert found == ["doctor: warning: elasticsearch-host: vm.max_map_count is 65530, Elasticsearch wants 262144 "
                     "(it maps its index files into memory and fails under load past the limit); "
                     "fix: sysctl -w vm.max_map_count=262144, and keep it in /etc/sysctl.d/"]
    assert code == 0      # a warning is no blocker


def test_a_user_outside_the_docker_group_is_told_how_to_get_in(values, root):
    engine = Engine(fails="permission denied while trying to connect to the Docker daemon socket at "
                          "unix:///var/run/docker.sock: Get ...: dial unix /var/run/docker.sock: connect: permission denied")
    code, found = lines(host(values, root=root, engine=engine), "engine-access")
    assert code == 1
    assert len(found) == 1 and found[0].startswith("doctor: blocker: engine-access: the Docker engine refuses this user")
    assert "usermod -aG docker" in found[0]


def test_no_engine_is_one_blocker_not_one_per_check(values, root):
    code, out = report(host(values, root=root, fails=True))
    assert code == 1
    assert [line.split(": ")[2] for line in out.splitlines() if "blocker" in line] == ["engine-access"]


@pytest.mark.parametrize("engine_version, compose_version, blocked", [
    ("20.10.24+dfsg1", "2.40.3-3", None),
    ("19.03.15", "2.40.3", "Docker Engine 19.03.15 is older than 20.10.0"),
    ("28.0.1", "2.20.2", "Docker Compose 2.20.2 is older than 2.24.0"),
    ("28.0.1", None, "no Docker Compose v2"),
])
def test_engine_and_compose_versions_against_the_oldest_supported(values, root, engine_version, compose_version, blocked):
    engine = Engine(engine_version, compose=compose_version)
    code, found = lines(host(values, root=root, engine=engine), "engine-version")
    if blocked:
        assert code == 1 and any(line.startswith(f"doctor: blocker: engine-version: {blocked}") for line in found), found
    else:
        assert code == 0 and all(line.startswith("doctor: ok:") for line in found), found


def test_podman_without_systemd_would_wait_for_ever(values, root):
    engine = Engine("4.3.1", components=("Podman Engine", "Conmon", "OCI Runtime (crun)"))
    code, found = lines(host(values, root=root, engine=engine), "engine-version")
    assert code == 1
    assert found[0].startswith("doctor: blocker: engine-version: Podman 4.3.1 without systemd: health checks never run")
    (root / "run/systemd/system").mkdir(parents=True)
    code, found = lines(host(values, root=root, engine=engine), "engine-version")
    assert found[0].startswith("doctor: warning: engine-version: Podman 4.3.1 through its Docker API")


def test_a_rootless_engine_needs_the_rootless_values(values, root):
    engine = Engine(security=("name=seccomp,profile=default", "name=rootless"), root_dir="/home/u/.local/share/docker",
                    cgroup_driver="none", memory_limit=False)
    env = {"XDG_RUNTIME_DIR": "/run/user/1001"}
    write(root, "/run/user/1001/docker.pid", "4242\n")
    code, found = lines(host(values, root=root, engine=engine, env=env), "rootless")
    assert code == 1
    assert found[0].startswith("doctor: blocker: rootless: the engine is rootless, but values say rootless: false")
    assert "set `rootless: true`" in found[0]
    code, found = lines(host(values, root=root, engine=engine, env=env, rootless=True), "rootless")
    assert found[0].startswith("doctor: warning: rootless: rootless engine: node-exporter's network metrics "
                               "describe the engine's own network namespace")


def test_rootless_podman_is_told_by_where_it_keeps_its_storage(values, root):
    """Podman's Docker API does not list name=rootless; its storage in the home says it."""
    engine = Engine("4.3.1", components=("Podman Engine",), root_dir="/home/u/.local/share/containers/storage")
    (root / "run/systemd/system").mkdir(parents=True)
    assert lines(host(values, root=root, engine=engine), "rootless")[0] == 1
    assert lines(host(values, root=root, engine=engine, rootless=True), "rootless")[0] == 0


def test_rootless_values_on_a_root_engine_is_a_warning(values, root):
    code, found = lines(host(values, root=root, rootless=True), "rootless")
    assert code == 0 and found[0].startswith("doctor: warning: rootless: values say rootless: true, but the engine runs as root")


def test_docker_desktop_describes_its_vm(values, root):
    code, found = lines(host(values, root=root, engine=Engine(os="Docker Desktop")), "host-metrics")
    assert found == [f for f in found if f.startswith("doctor: warning: host-metrics: Docker Desktop")] and found


def test_no_default_bridge_leaves_host_gateway_without_an_address(values, root):
    code, found = lines(host(values, root=root, engine=Engine(bridge=False)), "host-metrics")
    assert found[0].startswith("doctor: warning: host-metrics: the engine has no default bridge network")


def test_a_config_file_the_services_cannot_read_blocks(values, root, tmp_path):
    """A checkout made under umask 077: the services' users get EACCES at start."""
    repo = tmp_path / "repo"
    for service, relative in doctor.bind_mounts(values):
        (repo / relative).mkdir(parents=True, exist_ok=True)
    alertmanager = next(relative for service, relative in doctor.bind_mounts(values) if service == "alertmanager")
    config = repo / alertmanager / "alertmanager.yml"
    config.write_text("route: {}\n")
    config.chmod(0o600)
    h = host(values, root=root)
    h.repo = repo
    code, found = lines(h, "config-readable")
    # make up renders config/ again right after the doctor, and that sets the modes.
    assert code == 0
    assert found[0].startswith(f"doctor: warning: config-readable: not readable by the services' users: "
                               f"{alertmanager}/alertmanager.yml (0600, alertmanager)")
    assert found[0].endswith("fix: make up renders config/ again first, which sets 0644/0755 (so does make render)")
    config.chmod(0o644)
    (repo / alertmanager).chmod(0o750)     # a directory others cannot search
    code, found = lines(h, "config-readable")
    assert f"{alertmanager} (0750, alertmanager)" in found[0]
    (repo / alertmanager).chmod(0o755)
    assert lines(h, "config-readable")[1][0].startswith("doctor: ok: config-readable")


def test_a_mounted_file_render_does_not_write_blocks(values, root, tmp_path, monkeypatch):
    """Bind mounts outside config/ (scripts, files of a layer) are not fixed by a render."""
    repo = tmp_path / "repo"
    (repo / "compose/bin").mkdir(parents=True)
    wrapper = repo / "compose/bin/wrapper"
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o700)
    monkeypatch.setattr(doctor, "bind_mounts", lambda values: [("logstash", Path("compose/bin"))])
    h = host(values, root=root)
    h.repo = repo
    code, found = lines(h, "config-readable")
    assert code == 1
    assert found[0] == ("doctor: blocker: config-readable: not readable by the services' users: compose/bin/wrapper "
                        "(0700, logstash) (the services run as non-root users, and a file others cannot read fails "
                        "them at start (a checkout made under umask 027 or 077)); fix: chmod -R a+rX on those paths")


def test_the_checked_mounts_are_the_config_directories_of_the_enabled_layers(values):
    mounts = doctor.bind_mounts(values)
    assert ("prometheus", Path("config/prometheus")) in mounts
    assert ("grafana", Path("config/grafana/provisioning")) in mounts
    assert all(not str(path).startswith("/") for _, path in mounts)      # node-exporter's / is not ours
    core_only = {**values, "layers": {name: False for name in values["layers"]}}
    assert {service for service, _ in doctor.bind_mounts(core_only)} == {"prometheus", "alertmanager"}


@pytest.mark.parametrize("enforce, relabel, level, text", [
    (None, "auto", "ok", "SELinux is not enabled"),
    ("1", "auto", "ok", "SELinux is enforcing: the config/ bind mounts get the shared label (:z)"),
    ("1", "never", "blocker", "SELinux is enforcing and selinux_relabel is never"),
    ("0", "auto", "warning", "SELinux is permissive: the config/ bind mounts keep their labels"),
    ("0", "always", "ok", "SELinux is permissive: the config/ bind mounts get the shared label"),
])
def test_selinux_mode_and_the_label_of_the_mounts(values, root, enforce, relabel, level, text):
    if enforce is not None:
        write(root, "/sys/fs/selinux/enforce", enforce)
    code, found = lines(host(values, root=root, selinux_relabel=relabel), "selinux")
    assert found[0].startswith(f"doctor: {level}: selinux: {text}"), found
    assert code == (1 if level == "blocker" else 0)


def test_free_disk_against_the_retention_size(values, root):
    size = doctor.size_bytes(values["prometheus"]["retention"]["size"])
    code, found = lines(host(values, root=root, free=size // 2), "disk")
    assert code == 0 and found[0].startswith(f"doctor: warning: disk: {doctor.gib(size // 2)} free on /var/lib/docker, "
                                             f"less than prometheus.retention.size")
    code, found = lines(host(values, root=root, free=512 << 20), "disk")
    assert code == 1 and found[0].startswith("doctor: blocker: disk: only 0.5 GiB free on /var/lib/docker")
    code, found = lines(host(values, root=root, free=None), "disk")
    assert found[0].startswith("doctor: warning: disk: cannot see the engine's data directory")


def test_memory_limits_against_the_engines_memory(values, root):
    code, found = lines(host(values, root=root, engine=Engine(mem_total=2 << 30)), "memory")
    assert code == 0 and found[0].startswith("doctor: warning: memory: the enabled layers may use up to")
    core_only = {name: False for name in values["layers"]}
    assert lines(host(values, root=root, engine=Engine(mem_total=2 << 30), layers=core_only), "memory")[1][0] \
        .startswith("doctor: ok: memory")


@pytest.mark.parametrize("files, engine, text", [
    ({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io pids\n"}, {}, "the cgroup v2 memory controller is not enabled"),
    ({"/sys/fs/cgroup/cgroup.controllers": None}, {}, "no cgroup memory controller"),
    ({}, {"security": ("name=rootless",), "cgroup_driver": "none", "memory_limit": False}, "rootless engine without a delegated"),
    ({}, {"memory_limit": False}, "the engine reports no memory limit support"),
])
def test_memory_limits_that_would_not_be_enforced(values, root, files, engine, text):
    for path, content in files.items():
        if content is None:
            (root / path.lstrip("/")).unlink()
        else:
            write(root, path, content)
    code, found = lines(host(values, root=root, engine=Engine(**engine), rootless=True), "memory-limits")
    assert found[0].startswith(f"doctor: warning: memory-limits: {text}"), found


def test_cgroup_v1_with_the_memory_controller_enforces(values, root):
    (root / "sys/fs/cgroup/cgroup.controllers").unlink()
    write(root, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert lines(host(values, root=root), "memory-limits")[1][0] == \
        "doctor: ok: memory-limits: memory limits are enforced (cgroup v1 memory controller)"


def test_an_engine_that_may_not_raise_memlock_cannot_start_elasticsearch(values, root):
    """This machine: hard memlock 8 MiB, nofile 20000, no CAP_SYS_RESOURCE in the engine."""
    write(root, "/proc/4242/limits", UNLIMITED.replace("unlimited            unlimited", "8388608              8388608")
          .replace("1048576              1048576", "20000                20000"))
    write(root, "/proc/4242/status", "CapEff:\t000001fffeffffff\n")
    code, found = lines(host(values, root=root), "elasticsearch-host")
    assert code == 1
    assert found[0].startswith("doctor: blocker: elasticsearch-host: Elasticsearch's container asks for memlock "
                               "unlimited: the engine cannot start it (the engine's hard limit is 8388608 and it may "
                               "not raise it (no CAP_SYS_RESOURCE))")
    assert "elasticsearch.memory_lock: false" in found[0]
    assert found[1].startswith("doctor: blocker: elasticsearch-host: Elasticsearch's container asks for nofile 65536")
    # Without the memory lock only nofile is left; with CAP_SYS_RESOURCE both can be raised.
    es = {**values["elasticsearch"], "memory_lock": False}
    assert [f.split(": ")[3][:40] for f in lines(host(values, root=root, elasticsearch=es), "elasticsearch-host")[1]] == \
        ["Elasticsearch's container asks for nofil"]
    write(root, "/proc/4242/status", "CapEff:\t000001ffffffffff\n")
    assert lines(host(values, root=root), "elasticsearch-host")[0] == 0


def test_a_rootless_engine_cannot_raise_memlock_even_with_its_capabilities(values, root):
    write(root, "/run/user/1001/docker.pid", "777\n")
    write(root, "/proc/777/limits", UNLIMITED.replace("unlimited            unlimited", "65536                65536"))
    write(root, "/proc/777/status", "CapEff:\t000001ffffffffff\n")   # full, but in its own user namespace
    engine = Engine(security=("name=rootless",))
    code, found = lines(host(values, root=root, engine=engine, env={"XDG_RUNTIME_DIR": "/run/user/1001"}, rootless=True),
                        "elasticsearch-host")
    assert code == 1 and "(a rootless engine)" in found[0]


def test_elasticsearch_checks_only_with_the_logs_layer(values, root):
    write(root, "/proc/sys/vm/max_map_count", "65530\n")
    off = {**values["layers"], "logs": False, "apm": False}
    assert lines(host(values, root=root, layers=off), "elasticsearch-host")[1] == []


def test_an_engine_process_out_of_sight_is_a_warning(values, root):
    (root / "var/run/docker.pid").unlink()
    code, found = lines(host(values, root=root), "elasticsearch-host")
    assert code == 0 and found[0].startswith("doctor: warning: elasticsearch-host: cannot tell whether the engine may give")


def tcp_line(address: str, port: int, six: bool = False) -> str:
    """A LISTEN line of /proc/net/tcp(6): each 32-bit word little-endian, as the kernel prints it."""
    import ipaddress
    packed = ipaddress.ip_address(address).packed
    words = "".join(packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4))
    return f"   0: {words}:{port:04X} {'0' * len(words)}:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n"


@pytest.mark.parametrize("address, six", [("127.0.0.1", False), ("0.0.0.0", False), ("::", True)])
def test_a_published_port_taken_by_another_program_blocks(values, root, address, six):
    write(root, "/proc/net/tcp6" if six else "/proc/net/tcp", TCP_HEADER + tcp_line(address, values["ports"]["grafana"], six))
    code, found = lines(host(values, root=root), "ports")
    assert code == 1
    assert found[0].startswith(f"doctor: blocker: ports: 127.0.0.1:{values['ports']['grafana']} (ports.grafana) "
                               "is taken by another program")


def test_a_port_the_stack_itself_holds_is_fine(values, root):
    port = values["ports"]["prometheus"]
    write(root, "/proc/net/tcp", TCP_HEADER + tcp_line("127.0.0.1", port) + tcp_line("0.0.0.0", 9100))
    ps = f'prometheus true {{"9090/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}\nnode-exporter true {{}}\n'
    assert lines(host(values, root=root, engine=Engine(ps=ps)), "ports")[0] == 0


def test_a_port_of_the_stacks_container_in_a_restart_loop_is_the_stacks(values, root):
    """Between two runs of a restarting container its port is still held, and `docker ps`
    shows no port for it: the container's own bindings say whose it is."""
    port = values["ports"]["alertmanager"]
    write(root, "/proc/net/tcp", TCP_HEADER + tcp_line("127.0.0.1", port))
    ps = f'alertmanager false {{"9093/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port}"}}]}}\n'
    assert lines(host(values, root=root, engine=Engine(ps=ps)), "ports")[0] == 0
    other = f'alertmanager false {{"9093/tcp":[{{"HostIp":"127.0.0.1","HostPort":"{port + 1}"}}]}}\n'
    assert lines(host(values, root=root, engine=Engine(ps=other)), "ports")[0] == 1


def test_a_stopped_node_exporter_of_the_stack_does_not_excuse_another_on_every_address(values, root):
    write(root, "/proc/net/tcp6", TCP_HEADER + tcp_line("::", 9100, True))
    code, found = lines(host(values, root=root, engine=Engine(ps="node-exporter false null\n")), "ports")
    assert code == 1 and found[0].startswith("doctor: blocker: ports: port 9100 is taken on every address")


def test_the_same_port_on_another_address_is_no_conflict(values, root):
    write(root, "/proc/net/tcp", TCP_HEADER + tcp_line("192.0.2.7", values["ports"]["prometheus"]))
    assert lines(host(values, root=root), "ports")[0] == 0


def test_a_node_exporter_of_the_host_on_every_address_blocks_ours(values, root):
    write(root, "/proc/net/tcp6", TCP_HEADER + tcp_line("::", 9100, True))
    code, found = lines(host(values, root=root), "ports")
    assert code == 1 and found[0].startswith("doctor: blocker: ports: port 9100 is taken on every address")


def test_ports_of_a_remote_engine_are_not_guessed(values, root):
    code, found = lines(host(values, root=root, env={"DOCKER_HOST": "ssh://ops@box"}), "ports")
    assert found[0].startswith("doctor: warning: ports: the engine is remote (ssh://ops@box)")


def test_a_check_that_breaks_is_one_line_not_a_traceback(values, root, monkeypatch):
    monkeypatch.setitem(doctor.CHECKS, "disk", lambda h: 1 / 0)
    code, out = report(host(values, root=root))
    assert "doctor: warning: disk: the check itself failed (ZeroDivisionError: division by zero)" in out


def test_images_not_on_the_engine_are_named_with_make_pull(values):
    present = {image.ref for image in images.enabled_images(values)}
    missing = sorted(present)[0]
    findings = doctor.images_here(host(values, engine=Engine("28.0.1", images=present - {missing})))
    warnings = [f for f in findings if f.level == doctor.WARNING]
    assert len(warnings) == 1 and missing in warnings[0].what and "make pull" in warnings[0].fix, findings
    assert not [f for f in findings if f.level == doctor.BLOCKER]
    assert [f.level for f in doctor.images_here(host(values))] == [doctor.OK]


def test_an_arm64_engine_refuses_an_image_without_an_arm64_build(values, monkeypatch):
    keys = [image.key for image in images.enabled_images(values)]
    table = {key: {"published": True} for key in keys}
    table[keys[0]] = {"published": False, "source": "https://example.invalid/build"}
    table[keys[1]] = {"published": "unverified"}
    monkeypatch.setattr(doctor.versions, "load", lambda: {"arm64": table})
    arm = doctor.images_here(host(values, engine=Engine("28.0.1", arch="aarch64")))
    blockers = [f for f in arm if f.level == doctor.BLOCKER]
    assert len(blockers) == 1 and "arm64" in blockers[0].what, arm
    assert len([f for f in arm if f.level == doctor.WARNING]) == 1, arm
    # The same table on an x86_64 engine: nothing to say about arm64.
    assert [f.level for f in doctor.images_here(host(values))] == [doctor.OK]
