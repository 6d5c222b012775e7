"""make doctor: what on this host would make the stack unsafe or broken, before `make up`.

Each check is a function registered with @check(name); it gets a Host (the values in use
and a way to ask the Docker engine) and returns findings. `python -m bundle.doctor` prints
one line per finding (what, why, fix) and exits 1 when a blocker is left. A blocker the
user has weighed can be accepted by name: DOCTOR_ACCEPT="name other-name" make up.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import DEFAULT_VALUES, ROOT, compose, images, layers, versions
from .checks import lookup, published_ports
from .values import dotted

OK, WARNING, BLOCKER = "ok", "warning", "blocker"


@dataclass
class Finding:
    level: str
    what: str
    why: str = ""
    fix: str = ""


class DockerError(Exception):
    pass


def free_bytes(path: str) -> int | None:
    """Bytes free for unprivileged writers on the filesystem holding `path` (None when
    this machine cannot see that path)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


@dataclass
class Host:
    values: dict
    # docker(*args) -> its standard output; raises DockerError when the command fails.
    docker: Callable[..., str]
    env: dict = field(default_factory=lambda: dict(os.environ))
    # The host's /proc, /sys, /run and /etc are read below `root` (the tests fake a tree).
    root: Path = Path("/")
    # The checkout whose files the services bind-mount.
    repo: Path = ROOT
    free_bytes: Callable[[str], int | None] = free_bytes
    answers: dict = field(default_factory=dict, repr=False)

    def ask(self, key: str, *args: str) -> dict | list:
        """A JSON answer of the engine, asked once; raises DockerError."""
        if key not in self.answers:
            try:
                self.answers[key] = json.loads(self.docker(*args) or "null")
            except DockerError as error:
                self.answers[key] = error
            except ValueError:
                self.answers[key] = DockerError(f"docker {' '.join(args)}: unreadable answer")
        answer = self.answers[key]
        if isinstance(answer, DockerError):
            raise answer
        return answer

    def info(self) -> dict:
        return self.ask("info", "info", "--format", "{{json .}}")

    def server(self) -> dict:
        return self.ask("server", "version", "--format", "{{json .Server}}")

    def read(self, path: str) -> str | None:
        """A file of the host (an absolute path), or None when it is not there or not readable."""
        try:
            return (self.root / path.lstrip("/")).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None


CHECKS: dict[str, Callable[[Host], list[Finding]]] = {}


def check(name: str):
    def register(function: Callable[[Host], list[Finding]]):
        CHECKS[name] = function
        return function
    return register


def run_docker(*args: str) -> str:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerError(str(exc)) from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        lines = [line for line in lines if not line.startswith("WARNING")] or lines
        raise DockerError(lines[-1] if lines else f"docker {' '.join(args)} exited with {result.returncode}")
    return result.stdout.strip()


# --------------------------------------------------------------------------- checks

@check("engine-access")
def engine_access(host: Host) -> list[Finding]:
    """make up runs `docker compose` as the user who runs it."""
    try:
        info = host.info()
    except DockerError as error:
        text = str(error)
        if "permission denied" in text.lower():
            return [Finding(BLOCKER, f"the Docker engine refuses this user: {text}",
                            "make up runs docker compose as you, and the engine's socket admits root and the "
                            "docker group only",
                            "add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in "
                            "again) or run as root; for a rootless engine set DOCKER_HOST="
                            "unix://$XDG_RUNTIME_DIR/docker.sock")]
        return [Finding(BLOCKER, f"no Docker engine answers: {text}", "make up needs a running engine",
                        "start it (`sudo systemctl start docker`, or dockerd), or point DOCKER_HOST at it")]
    where = host.env.get("DOCKER_HOST") or "the default socket"
    return [Finding(OK, f"{engine_name(host)} {info.get('ServerVersion', '?')} answers at {where}")]


# The first Docker Engine release that drops direct routing to ports published on a
# loopback address (moby#49325).
FIXED_ENGINE = (28, 0, 0)
MOBY_45610 = "https://github.com/moby/moby/issues/45610"


def engine_version(host: Host) -> tuple[tuple[int, ...] | None, str]:
    """The engine's version as numbers (None if it cannot be read) and as reported."""
    reported = host.docker("version", "--format", "{{.Server.Version}}")
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", reported)
    return (tuple(int(part or 0) for part in match.groups()) if match else None), reported


def loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


@check("engine-loopback-exposure")
def engine_loopback_exposure(host: Host) -> list[Finding]:
    """Engines before 28.0.0 let hosts on the same network segment reach ports published
    on 127.0.0.1 (moby#45610): the stack's promise to publish on loopback only would not
    hold."""
    bind = host.values["bind_address"]
    try:
        version, reported = engine_version(host)
    except DockerError:
        return []   # engine-access says it
    if version is None:
        return [Finding(WARNING, f"unrecognised Docker engine version {reported!r}",
                        f"engines before 28.0.0 expose ports published on 127.0.0.1 to the local network ({MOBY_45610})",
                        "make sure the engine is 28.0.0 or newer")]
    if not loopback(bind):
        return [Finding(OK, f"Docker Engine {reported}; ports are published on {bind} by choice (bind_address)")]
    if version >= FIXED_ENGINE:
        return [Finding(OK, f"Docker Engine {reported} keeps ports published on {bind} to this host")]
    return [Finding(
        BLOCKER,
        f"Docker Engine {reported} is older than 28.0.0: hosts on the same network segment can reach the ports "
        f"it publishes on {bind} (Prometheus, Alertmanager, Grafana, Kibana, Elasticsearch...)",
        f"moby#45610, fixed in Engine 28.0.0: {MOBY_45610}",
        "upgrade to Docker Engine 28.0.0 or newer (https://docs.docker.com/engine/install/); on a host no other "
        "machine can reach, accept it with DOCTOR_ACCEPT=engine-loopback-exposure")]


@check("network-gateway-order")
def network_gateway_order(host: Host) -> list[Finding]:
    """Services on both networks publish their ports through the stack's own network: it
    is their gateway by gw_priority on Engine 28+, by network name order before that."""
    try:
        version, reported = engine_version(host)
    except DockerError:
        return []   # engine-loopback-exposure says it
    if version is None or version >= FIXED_ENGINE:
        return []
    stack = f"{host.values['project_name']}_default"
    app = host.values["app_network"]
    if stack < app:
        return [Finding(OK, f"on Engine {reported}, network {stack} sorts before {app}: published ports map into it")]
    return [Finding(
        BLOCKER,
        f"on Engine {reported}, the app network {app!r} sorts before the stack's network {stack!r}, so Docker maps "
        f"the published ports of Prometheus, Jaeger and Logstash into the app network, where their query and "
        f"admin ports do not listen",
        "before Engine 28.0.0 a container's gateway network is the first by name (gw_priority needs 28.0.0)",
        "upgrade to Docker Engine 28.0.0 or newer, or pick an app_network / project_name that sorts the "
        "stack's network first")]


# Oldest releases the bundle supports: the engine this project is tried on (Debian 12's
# 20.10) and the Compose the README has promised since the start.
MIN_ENGINE = (20, 10, 0)
MIN_COMPOSE = (2, 24, 0)
CAP_SYS_RESOURCE = 24       # raising a hard rlimit needs it (capabilities(7))
MAX_MAP_COUNT = 262144      # Elasticsearch's minimum: https://www.elastic.co/docs/deploy-manage/deploy/self-managed/vm-max-map-count
NOFILE = 65536              # compose/logs.yml ulimits
MIN_FREE = 1 << 30          # below this, pulling the images alone may fail


def numbers(text: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    return tuple(int(part or 0) for part in match.groups()) if match else None


def dotted_version(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def podman(host: Host) -> bool:
    """A Podman engine behind Docker's API (its version lists a "Podman Engine")."""
    return any("podman" in str(c.get("Name", "")).lower() for c in host.server().get("Components") or [])


def rootless(host: Host) -> bool:
    info = host.info()
    if any("name=rootless" in option for option in info.get("SecurityOptions") or []):
        return True
    # Podman's Docker API does not say rootless; its storage then lives in the user's home.
    return podman(host) and not str(info.get("DockerRootDir", "")).startswith("/var/lib/")


def engine_name(host: Host) -> str:
    try:
        kind = "Podman" if podman(host) else "Docker Engine"
        return f"rootless {kind}" if rootless(host) else kind
    except DockerError:
        return "Docker Engine"


def engine_pid(host: Host) -> int | None:
    """The engine daemon's process id on this host, from its pid file."""
    if rootless(host):
        runtime = host.env.get("XDG_RUNTIME_DIR")
        candidates = [f"{runtime}/docker.pid"] if runtime else []
    else:
        candidates = ["/var/run/docker.pid", "/run/docker.pid"]
    for path in candidates:
        text = host.read(path)
        if text and text.strip().isdigit():
            return int(text.strip())
    return None


def hard_limit(limits: str, name: str) -> int | None:
    """A hard limit from /proc/PID/limits (None = unlimited)."""
    for line in limits.splitlines():
        if line.startswith(name):
            value = line[len(name):].split()[1]
            return None if value == "unlimited" else int(value)
    raise ValueError(name)


def can_raise(host: Host, name: str, wanted: int | None) -> tuple[bool | None, str]:
    """Whether the engine may give a container the hard rlimit `wanted` (None = unlimited):
    at or under its own hard limit, or above it with CAP_SYS_RESOURCE (a root engine). None
    when this host does not show the engine's process."""
    pid = engine_pid(host)
    limits = host.read(f"/proc/{pid}/limits") if pid else None
    status = host.read(f"/proc/{pid}/status") if pid else None
    if not limits or not status:
        return None, "the engine's process is not visible here"
    try:
        have = hard_limit(limits, name)
    except ValueError:
        return None, f"/proc/{pid}/limits has no {name!r}"
    shown = "unlimited" if have is None else str(have)
    if have is None or (wanted is not None and wanted <= have):
        return True, f"the engine's hard limit is {shown}"
    effective = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M)
    if effective and not rootless(host) and int(effective.group(1), 16) >> CAP_SYS_RESOURCE & 1:
        return True, f"the engine's hard limit is {shown}, and it may raise it (CAP_SYS_RESOURCE)"
    return False, (f"the engine's hard limit is {shown} and it may not raise it "
                   + ("(a rootless engine)" if rootless(host) else "(no CAP_SYS_RESOURCE)"))


def services_on(values: dict) -> list[str]:
    return [service for layer in layers.enabled(values) for service in layer.services]


def bind_mounts(values: dict) -> list[tuple[str, Path]]:
    """(service, host path) of every bind mount of the enabled layers inside the checkout."""
    found = []
    for layer in layers.enabled(values):
        base = (ROOT / layer.compose).parent
        for service, definition in compose.definitions(layer.compose).items():
            for volume in definition.get("volumes", []):
                source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
                if source.startswith((".", "/")) and "$" not in source:
                    path = (base / source).resolve()
                    if path.is_relative_to(ROOT):
                        found.append((service, path.relative_to(ROOT)))
    return found


@check("engine-version")
def engine_release(host: Host) -> list[Finding]:
    try:
        server = host.server()
        is_podman = podman(host)
    except DockerError:
        return []   # engine-access says it
    findings = []
    reported = str(server.get("Version", "?"))
    if is_podman:
        if not (host.root / "run/systemd/system").is_dir():
            findings.append(Finding(
                BLOCKER, f"Podman {reported} without systemd: health checks never run, so `make up` would wait "
                         "for ever (tried here with Podman 4.3)",
                "Podman runs health checks from systemd timers",
                "run Podman under systemd, or use Docker Engine"))
        else:
            findings.append(Finding(
                WARNING, f"Podman {reported} through its Docker API: not tried here with systemd; Podman 4.3 "
                         "recreates every running container on each `make up`",
                fix="see README, Hosts and engines"))
    else:
        version = numbers(reported)
        if version is None or version < MIN_ENGINE:
            findings.append(Finding(
                BLOCKER, f"Docker Engine {reported} is older than {dotted_version(MIN_ENGINE)}, the oldest the bundle "
                         "is tried on", fix="upgrade Docker Engine (https://docs.docker.com/engine/install/)"))
        else:
            findings.append(Finding(OK, f"Docker Engine {reported} (at least {dotted_version(MIN_ENGINE)})"))
    try:
        compose_reported = host.docker("compose", "version", "--short")
    except DockerError as error:
        return findings + [Finding(BLOCKER, f"no Docker Compose v2: {error}", "make up runs `docker compose`",
                                   "install the Compose plugin (Debian: docker-compose from forky, or "
                                   "https://docs.docker.com/compose/install/linux/)")]
    compose_version = numbers(compose_reported)
    if compose_version is None or compose_version < MIN_COMPOSE:
        findings.append(Finding(
            BLOCKER, f"Docker Compose {compose_reported} is older than {dotted_version(MIN_COMPOSE)}",
            "the oldest the bundle supports", "install a newer Compose plugin"))
    else:
        findings.append(Finding(OK, f"Docker Compose {compose_reported} (at least {dotted_version(MIN_COMPOSE)})"))
    return findings


@check("rootless")
def rootless_engine(host: Host) -> list[Finding]:
    """values `rootless` must say what the engine is: it decides compose/rootless.yml."""
    try:
        is_rootless = rootless(host)
    except DockerError:
        return []
    said = host.values["rootless"]
    if is_rootless and not said:
        return [Finding(BLOCKER, "the engine is rootless, but values say rootless: false, so node-exporter would "
                                 "ask for the host's PID namespace, which rootless engines refuse",
                        fix="set `rootless: true` in site.yaml")]
    if said and not is_rootless:
        return [Finding(WARNING, "values say rootless: true, but the engine runs as root: node-exporter goes without "
                                 "the host's PID namespace for nothing",
                        fix="set `rootless: false` in site.yaml")]
    if not is_rootless:
        return [Finding(OK, "a root engine, and values say rootless: false")]
    return [Finding(WARNING, "rootless engine: node-exporter's network metrics describe the engine's own network "
                             "namespace, not the host's interfaces; files the services write in volumes belong to "
                             "subordinate uids; the monitored platform must run in this same engine (networks are "
                             "per engine); containers cannot reach services on the host's 127.0.0.1",
                    "rootlesskit runs the engine in namespaces of its own",
                    "for the host's own network metrics, run node_exporter on the host (its distribution "
                    "package) and point prometheus.scrape_configs.node at it")]


@check("host-metrics")
def host_metrics(host: Host) -> list[Finding]:
    """node-exporter listens on the default bridge's gateway address (host-gateway) in
    the host's network namespace."""
    try:
        info = host.info()
        is_rootless = rootless(host)
    except DockerError:
        return []
    findings = []
    if "docker desktop" in str(info.get("OperatingSystem", "")).lower():
        findings.append(Finding(WARNING, "Docker Desktop: node-exporter describes Docker Desktop's virtual machine, "
                                         "not this computer", "the engine and its host namespaces live in that VM",
                                "run node_exporter on the computer itself for its metrics"))
    try:
        host.docker("network", "inspect", "bridge", "--format", "{{.Name}}")
    except DockerError:
        findings.append(Finding(
            WARNING, "the engine has no default bridge network, so `host-gateway` has no address unless the "
                     "daemon sets host-gateway-ip: node-exporter then cannot start",
            "node-exporter listens on the host-gateway address, where Prometheus reaches it",
            "keep the default bridge, or set host-gateway-ip in daemon.json"))
    if not findings and not is_rootless:
        findings.append(Finding(OK, "node-exporter runs in the host's network and PID namespaces, listening on the "
                                    "bridge gateway address only"))
    return findings


@check("config-readable")
def config_readable(host: Host) -> list[Finding]:
    """The services run as non-root users (nobody, 472, 1000...): every file they get by
    bind mount must be readable by others, every directory searchable."""
    bad = []
    for service, relative in bind_mounts(host.values):
        top = host.repo / relative
        paths = [top] + (sorted(top.rglob("*")) if top.is_dir() else [])
        for path in paths:
            try:
                mode = path.stat().st_mode
            except OSError:
                continue
            needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
            if mode & needed != needed:
                bad.append((service, path.relative_to(host.repo), stat.S_IMODE(mode)))
    if not bad:
        return [Finding(OK, "every file the services bind-mount is readable by their users")]
    why = ("the services run as non-root users, and a file others cannot read fails them at start "
           "(a checkout made under umask 027 or 077)")
    findings = []
    for rendered in (True, False):
        found = [(service, path, mode) for service, path, mode in bad
                 if str(path).startswith("config/") == rendered]
        if not found:
            continue
        shown = ", ".join(f"{path} ({mode:04o}, {service})" for service, path, mode in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        if rendered:
            # render.py writes config/ 0644/0755 whatever the umask, also when only the mode differs.
            findings.append(Finding(WARNING, f"not readable by the services' users: {shown}{more}", why,
                                    "make up renders config/ again first, which sets 0644/0755 (so does make render)"))
        else:
            findings.append(Finding(BLOCKER, f"not readable by the services' users: {shown}{more}", why,
                                    "chmod -R a+rX on those paths"))
    return findings


@check("selinux")
def selinux(host: Host) -> list[Finding]:
    enforce = host.read("/sys/fs/selinux/enforce")
    relabel = host.values["selinux_relabel"]
    if enforce is None:
        return [Finding(OK, f"SELinux is not enabled (selinux_relabel: {relabel})")]
    mode = "enforcing" if enforce.strip() == "1" else "permissive"
    if mode == "enforcing" and relabel == "never":
        return [Finding(BLOCKER, "SELinux is enforcing and selinux_relabel is never: containers cannot read the "
                                 "config/ bind mounts", "their files keep labels containers may not read",
                        "set selinux_relabel: auto (or always) in site.yaml")]
    labelled = relabel == "always" or (relabel == "auto" and mode == "enforcing")
    if labelled:
        return [Finding(OK, f"SELinux is {mode}: the config/ bind mounts get the shared label (:z)")]
    return [Finding(WARNING if mode == "permissive" else OK,
                    f"SELinux is {mode}: the config/ bind mounts keep their labels (selinux_relabel: {relabel})",
                    "containers may not read them once SELinux enforces",
                    "set selinux_relabel: always to label them now")]


def size_bytes(size: str) -> int:
    """Prometheus sizes (10GB) are powers of 1024."""
    number, unit = re.fullmatch(r"(\d+)([KMGTPE]?)B", size).groups()
    return int(number) * 1024 ** " KMGTPE".index(unit or " ")


def gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


@check("disk")
def disk(host: Host) -> list[Finding]:
    try:
        root_dir = str(host.info().get("DockerRootDir", ""))
    except DockerError:
        return []
    free = host.free_bytes(root_dir) if root_dir else None
    if free is None:
        return [Finding(WARNING, f"cannot see the engine's data directory {root_dir or '(unknown)'} from here to "
                                 "check its free space", fix="check it where the engine runs: df -h DIR")]
    size = host.values["prometheus"]["retention"]["size"]
    wanted = size_bytes(size)
    logs = " (Elasticsearch's logs come on top; it stops writing at 95% full)" if layers.is_on(host.values, "logs") else ""
    if free < MIN_FREE:
        return [Finding(BLOCKER, f"only {gib(free)} free on {root_dir}", "images, volumes and logs live there",
                        "free space there, or move the engine's data-root")]
    if wanted and free < wanted:
        return [Finding(WARNING, f"{gib(free)} free on {root_dir}, less than prometheus.retention.size {size}{logs}",
                        "Prometheus fills the disk before its size retention deletes anything",
                        "free space there, or lower prometheus.retention.size in site.yaml")]
    return [Finding(OK, f"{gib(free)} free on {root_dir}, room for prometheus.retention.size {size}{logs}")]


def memory_bytes(limit: str) -> int:
    return int(limit[:-1]) << (30 if limit[-1] == "g" else 20)


@check("memory")
def memory(host: Host) -> list[Finding]:
    try:
        total = int(host.info().get("MemTotal") or 0)
    except DockerError:
        return []
    limits = host.values["memory"]
    wanted = sum(memory_bytes(limits[s.replace("-", "_")]) for s in services_on(host.values)
                 if s.replace("-", "_") in limits)
    if total and wanted > total:
        return [Finding(WARNING, f"the enabled layers may use up to {gib(wanted)} (memory limits), the engine has "
                                 f"{gib(total)}", "the kernel kills containers when memory runs out",
                        "switch layers off or lower the memory limits (and heaps) in site.yaml")]
    return [Finding(OK, f"the enabled layers' memory limits ({gib(wanted)}) fit in the engine's {gib(total)}")]


@check("memory-limits")
def memory_limits(host: Host) -> list[Finding]:
    """mem_limit needs the cgroup memory controller, and a rootless engine needs it
    delegated (cgroup v2)."""
    try:
        info = host.info()
        is_rootless = rootless(host)
    except DockerError:
        return []
    why = "Compose's mem_limit is accepted and silently not applied, so one service can starve the others"
    controllers = host.read("/sys/fs/cgroup/cgroup.controllers")
    v2 = controllers is not None
    if v2 and "memory" not in controllers.split():
        return [Finding(WARNING, "the cgroup v2 memory controller is not enabled: memory limits are not enforced",
                        why, "enable it (kernel cmdline cgroup_enable=memory on Raspberry Pi OS)")]
    if not v2 and host.read("/sys/fs/cgroup/memory/memory.limit_in_bytes") is None:
        return [Finding(WARNING, "no cgroup memory controller: memory limits are not enforced", why,
                        "enable the memory cgroup (kernel cmdline cgroup_enable=memory)")]
    if is_rootless and (not v2 or str(info.get("CgroupDriver")) == "none" or info.get("MemoryLimit") is False):
        return [Finding(WARNING, "rootless engine without a delegated cgroup v2 memory controller: memory limits "
                                 "are not enforced", why,
                        "boot with cgroup v2 and delegate memory to the user (systemd: Delegate=memory)")]
    if info.get("MemoryLimit") is False:
        return [Finding(WARNING, "the engine reports no memory limit support: memory limits are not enforced", why,
                        "enable the cgroup memory controller")]
    return [Finding(OK, f"memory limits are enforced (cgroup v{2 if v2 else 1} memory controller)")]


@check("elasticsearch-host")
def elasticsearch_host(host: Host) -> list[Finding]:
    """What Elasticsearch asks of the host: vm.max_map_count, memlock (when the heap is
    locked) and nofile."""
    if not layers.is_on(host.values, "logs"):
        return []
    findings = []
    count = host.read("/proc/sys/vm/max_map_count")
    if count is not None and int(count) < MAX_MAP_COUNT:
        findings.append(Finding(WARNING, f"vm.max_map_count is {int(count)}, Elasticsearch wants {MAX_MAP_COUNT}",
                                "it maps its index files into memory and fails under load past the limit",
                                f"sysctl -w vm.max_map_count={MAX_MAP_COUNT}, and keep it in /etc/sysctl.d/"))
    try:
        wanted = [("Max open files", NOFILE, f"nofile {NOFILE}", "raise the engine's open-files limit (systemd: "
                   "LimitNOFILE=1048576 for docker.service; rootless: the user's nofile in limits.conf)")]
        if host.values["elasticsearch"]["memory_lock"]:
            wanted.insert(0, ("Max locked memory", None, "memlock unlimited",
                              "set elasticsearch.memory_lock: false in site.yaml (and keep swap off), or let the "
                              "engine raise the limit (a root engine with CAP_SYS_RESOURCE; rootless: memlock "
                              "unlimited for the user in limits.conf)"))
        for name, limit, what, fix in wanted:
            able, why = can_raise(host, name, limit)
            if able is False:
                findings.append(Finding(BLOCKER, f"Elasticsearch's container asks for {what}: the engine cannot "
                                                 f"start it", why, fix))
            elif able is None:
                findings.append(Finding(WARNING, f"cannot tell whether the engine may give Elasticsearch {what}",
                                        why, "if it fails with 'error setting rlimit', see " + fix))
    except DockerError:
        return findings
    if not findings:
        findings.append(Finding(OK, "Elasticsearch gets its vm.max_map_count and ulimits"))
    return findings


def listeners(host: Host) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket listening in this network namespace."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (host.read(name) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":   # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((str(ipaddress.ip_address(packed)), int(port, 16)))
    return found


def covers(listening: str, wanted: str) -> bool:
    """Whether a socket listening on `listening` takes the port on `wanted` too."""
    return listening == wanted or ipaddress.ip_address(listening).is_unspecified or \
        ipaddress.ip_address(wanted).is_unspecified


ARM64 = {"aarch64", "arm64"}


@check("images")
def images_here(host: Host) -> list[Finding]:
    """Every image of the enabled layers: on this engine already, or pulled by `make up`
    (which stops before changing anything when one cannot be pulled); on an arm64 engine,
    one that upstream publishes for arm64 (versions.yaml `arm64`)."""
    try:
        arch = str(host.info().get("Architecture", ""))
    except DockerError:
        return []   # engine-access says it
    published = versions.load().get("arm64", {})
    findings, missing = [], []
    for image in images.enabled_images(host.values):
        if arch in ARM64:
            entry = published.get(image.key, {})
            if entry.get("published") is False:
                findings.append(Finding(
                    BLOCKER, f"{image.ref} ({', '.join(image.services)}) has no linux/arm64 build and this engine "
                             f"is {arch}", f"upstream publishes none: {entry.get('source', 'versions.yaml')}",
                    f"switch the layer of {', '.join(image.services)} off, or pin an image built for arm64"))
            elif entry.get("published") is not True:
                findings.append(Finding(
                    WARNING, f"{image.ref} ({', '.join(image.services)}): whether it has a linux/arm64 build is "
                             "not known", f"see versions.yaml arm64 {image.key}",
                    f"docker manifest inspect {image.ref}"))
        try:
            host.docker("image", "inspect", "--format", "{{.Id}}", image.ref)
        except DockerError:
            missing.append(image.ref)
    if missing:
        findings.append(Finding(
            WARNING, f"{len(missing)} image(s) not on this engine yet: {', '.join(missing)}",
            "make up pulls them first, and stops before changing anything when one cannot be pulled",
            "make pull (says per image why one cannot be pulled); without a registry: make save on a host "
            "that has them, make load here"))
    else:
        findings.append(Finding(OK, "every image of the enabled layers is on this engine"))
    return findings


def stack_ports(host: Host, project: str) -> tuple[set[tuple[str, int]], set[str]]:
    """The (address, port) pairs the stack's containers publish, whatever their state, and
    the services that run. From each container's port bindings, not `docker ps`: a
    container in a restart loop holds its port between runs while ps shows none."""
    try:
        ids = host.docker("ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={project}").split()
        out = host.docker("inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}} '
                          "{{.State.Running}} {{json .HostConfig.PortBindings}}", *ids) if ids else ""
    except DockerError:
        return set(), set()
    own, running = set(), set()
    for line in out.splitlines():
        service, is_running, bindings = line.split(" ", 2)
        if is_running == "true":
            running.add(service)
        for mappings in (json.loads(bindings) or {}).values():
            own.update((m.get("HostIp") or "0.0.0.0", int(m["HostPort"])) for m in mappings or [])
    return own, running


@check("ports")
def ports(host: Host) -> list[Finding]:
    """The host ports the stack publishes, and node-exporter's 9100 next to the bridge
    gateway, are free (or the stack's own)."""
    docker_host = host.env.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        return [Finding(WARNING, f"the engine is remote ({docker_host}): its host's ports cannot be checked from here")]
    if host.read("/proc/net/tcp") is None:
        return [Finding(WARNING, "cannot read /proc/net/tcp: ports not checked")]
    taken = listeners(host)
    project = host.values["project_name"]
    own, running = stack_ports(host, project)
    bind = host.values["bind_address"]
    findings = []
    wanted = [(dotted(path), bind, lookup(host.values, path)) for path in published_ports(host.values)]
    for key, address, port in wanted:
        if any(p == port and covers(a, address) for a, p in taken):
            if (address, port) in own:
                continue
            findings.append(Finding(BLOCKER, f"{address}:{port} ({key}) is taken by another program",
                                    "the service cannot publish its port there",
                                    f"stop it (`ss -ltnp 'sport = :{port}'` shows which) or set another {key} "
                                    "in site.yaml"))
    if "node-exporter" not in running and any(p == 9100 and ipaddress.ip_address(a).is_unspecified for a, p in taken):
        findings.append(Finding(BLOCKER, "port 9100 is taken on every address (another node_exporter?)",
                                "node-exporter listens on 9100 in the host's network namespace",
                                "stop the other program (`ss -ltnp 'sport = :9100'`), or bind it to one address"))
    if not findings:
        findings.append(Finding(OK, f"the {len(wanted)} published ports on {bind} and node-exporter's 9100 are free "
                                    "or the stack's own"))
    return findings


# --------------------------------------------------------------------------- running

def run(host: Host, accepted: set[str], out=sys.stdout, quiet: bool = False) -> int:
    """Run every check; print one line per finding (with `quiet`, only the warnings and
    blockers, and a count of the rest); 1 if a blocker is not accepted."""
    blocked = False
    passed = 0
    for name, function in CHECKS.items():
        try:
            findings = function(host)
        except Exception as error:  # noqa: BLE001 - one line per finding, never a traceback
            findings = [Finding(WARNING, f"the check itself failed ({type(error).__name__}: {error})",
                                fix="please report it")]
        for finding in findings:
            level = finding.level
            if level == BLOCKER and name in accepted:
                level = "accepted"
            elif level == BLOCKER:
                blocked = True
            if quiet and level == OK:
                passed += 1
                continue
            line = f"doctor: {level}: {name}: {finding.what}"
            if finding.why:
                line += f" ({finding.why})"
            if finding.fix and finding.level != OK:
                line += f"; fix: {finding.fix}"
            print(line, file=out)
    if quiet:
        print(f"doctor: {passed} findings ok (make doctor lists them)", file=out)
    unknown = accepted - set(CHECKS)
    for name in sorted(unknown):
        print(f"doctor: warning: DOCTOR_ACCEPT names {name!r}, which is no check (checks: {', '.join(CHECKS)})", file=out)
    return 1 if blocked else 0


def main() -> int:
    from .cli import load
    from .errors import InputError

    overlays = [ROOT / p for p in shlex.split(os.environ.get("BUNDLE_VALUES", ""))]
    try:
        values, _ = load([DEFAULT_VALUES, *overlays])
    except InputError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return 1
    accepted = set(os.environ.get("DOCTOR_ACCEPT", "").replace(",", " ").split())
    return run(Host(values=values, docker=run_docker), accepted, quiet="--quiet" in sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
