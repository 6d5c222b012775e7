"""Speed and memory figures, printed as `name: value unit` lines (make bench).

Render and check figures need nothing running. The stack figures need the stack
started with `make up` (same VALUES) next to the demo platform (tests/platform): the
bench restarts the stack to time `make up`, then stops Redis once to time an alert.
With the multi-host scenario up (tests/multihost/scenario.py), the bench also stops
the central stack for BENCH_OUTAGE_SECONDS (60) and prints how long the agents take to
deliver what they buffered meanwhile, and how many samples never arrived.
BENCH_ONLY=multihost prints only those figures.
These are measurements to read, not pass/fail thresholds: the machines are shared.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "live"))
sys.path.insert(0, str(ROOT / "tests" / "multihost"))

from bundle import DEFAULT_VALUES, archive, backup  # noqa: E402
from bundle.cli import load  # noqa: E402
from bundle.secrets import consumers, read_env  # noqa: E402
from stack import SINK, alert_bound, compose, containers, platform, seconds  # noqa: E402

OVERLAYS = shlex.split(os.environ.get("BUNDLE_VALUES", ""))


def figure(name: str, value: float, unit: str, note: str = "") -> None:
    print(f"{name}: {value:.3g} {unit}" + (f"  ({note})" if note else ""), flush=True)


def timed(command: list[str], env: dict | None = None, runs: int = 5) -> float:
    """Median wall time of a command that must succeed."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def render_figures(scratch: Path) -> None:
    base = [sys.executable, "render.py", "--output", str(scratch / "out"), "--env-file", str(scratch / ".env")]
    # Validators replaced by `true`: the time of loading, checking and rendering alone.
    alone = dict(os.environ, PROMTOOL="/bin/true", AMTOOL="/bin/true")
    figure("render_seconds", timed(base, alone), "s", "default values, validators off")
    big = scratch / "1000-targets.yaml"
    jobs = {f"job-{i}": {"targets": [f"host-{i}:9100"], "labels": {"team": f"t{i % 7}"}} for i in range(1000)}
    big.write_text(yaml.safe_dump({"prometheus": {"scrape_configs": jobs}}))
    big_run = [sys.executable, "render.py", "--output", str(scratch / "big"), "--env-file", str(scratch / ".env"),
               "--values", str(big)]
    figure("render_1000_targets_seconds", timed(big_run, alone), "s", "validators off")
    figure("check_seconds", timed([*base, "--check", "--require-validators"]), "s",
           "make check: render + promtool + amtool, default values")


def smoke_figure() -> None:
    """make smoke on the running stack, as users run it (Python start-up and render
    included). Timed whatever its verdict: after make test, the live tests' deliberate
    notification failure is still in the counters' last hour."""
    times, codes = [], set()
    for _ in range(3):
        start = time.perf_counter()
        codes.add(subprocess.run(["make", "--no-print-directory", "smoke", f"VALUES={' '.join(OVERLAYS)}"],
                                 cwd=ROOT, capture_output=True).returncode)
        times.append(time.perf_counter() - start)
    figure("smoke_seconds", statistics.median(times), "s",
           "make smoke, every check of the enabled layers" + ("" if codes == {0} else ", some checks failing"))


def stack_figures() -> None:
    values, _ = load([DEFAULT_VALUES, *(ROOT / p for p in OVERLAYS)])
    make_values = f"VALUES={' '.join(OVERLAYS)}"
    # Stopped, not removed: the demo platform's sink is attached to the stack's network.
    compose("stop")
    start = time.perf_counter()
    subprocess.run(["make", "up", make_values], cwd=ROOT, check=True, capture_output=True)
    figure("up_to_healthy_seconds", time.perf_counter() - start, "s",
           "make up from stopped containers, images present, core")

    time.sleep(30)  # let start-up settle before reading idle memory
    names = [c["Name"] for c in containers() if c["State"] == "running"]
    stats = subprocess.run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", *names],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    factor = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    used = sum(float(m.group(1)) * factor[m.group(2)]
               for line in stats if (m := re.match(r"([\d.]+)(B|KiB|MiB|GiB)", line.strip())))
    figure("idle_memory_mib", used, "MiB", f"{len(names)} containers of the stack")

    alert_latency(values)
    secret_change_figures(values, make_values)
    backup_figures()


def pager_hits(status: str) -> list[dict]:
    return [r for r in requests.get(f"{SINK}/records", timeout=10).json()
            if r["path"] == "/pager" and isinstance(r["body"], dict) and r["body"].get("status") == status
            and any(a["labels"]["alertname"] == "RedisDown" for a in r["body"].get("alerts", []))]


def alert_latency(values: dict) -> None:
    """Redis stopped -> RedisDown at the paging webhook, RUNS times (each after the last
    one resolved, so each is a new notification group), against the documented bound
    plus the time `docker compose stop` itself took (the fault is in place when it returns)."""
    runs = int(os.environ.get("ALERT_LATENCY_RUNS", "5"))
    bound, terms = alert_bound(values, "RedisDown", "pager")
    samples, stops = [], []
    for _ in range(runs):
        requests.delete(f"{SINK}/records", timeout=10)
        started = time.time()
        platform("stop", "redis")
        stops.append(time.time() - started)
        try:
            deadline = time.monotonic() + bound + 120
            while not (hits := pager_hits("firing")) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            platform("start", "redis")
        if not hits:
            print("alert_latency_seconds: none within the deadline", flush=True)
            return
        samples.append(hits[0]["received"] - started)
        # Resolved at the webhook: the group is closed and the next run starts afresh.
        deadline = time.monotonic() + bound + 120
        while not pager_hits("resolved") and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
    stop = statistics.median(stops)
    breakdown = " + ".join(f"{name} {value:g}" for name, value in terms) + f" + docker compose stop {stop:.1f}"
    figure("alert_latency_median_seconds", statistics.median(samples), "s",
           f"Redis stopped -> paging webhook, {runs} runs: {', '.join(f'{x:.1f}' for x in samples)}")
    figure("alert_latency_max_seconds", max(samples), "s", "target: median <= bound, max <= bound + 5")
    figure("alert_latency_bound_seconds", bound + stop, "s", breakdown)


def secret_change_figures(values: dict, make_values: str) -> None:
    """A webhook URL changed in .env and applied with `make up`: seconds from the command
    to a notification at the new URL (median of 3), and the services it recreated (the
    secret's consumers, by bundle/layers.yaml). The third run puts the original back."""
    env_file = ROOT / ".env"
    env = read_env(env_file)
    used = consumers(values)
    secret = next((name for name, spec in values["secrets"].items() if "alertmanager" in used.get(name, [])
                   and env.get(spec["env"], "").startswith("http://sink:8080/")), None)
    if secret is None:
        print("secret_apply_seconds: skipped (no webhook of the demo platform's sink in .env)", flush=True)
        return
    var, original = values["secrets"][secret]["env"], env[values["secrets"][secret]["env"]]
    times, counts = [], []
    try:
        for run, url in enumerate([f"{original}-bench1", f"{original}-bench2", original]):
            text = env_file.read_text()
            env_file.write_text(re.sub(rf"(?m)^{var}=.*$", lambda _: f"{var}={url}", text))
            start = time.perf_counter()
            output = subprocess.run(["make", "up", make_values], cwd=ROOT, check=True, capture_output=True,
                                    text=True).stdout
            name = f"BenchSecretProbe{run}{int(time.time())}"
            # Both severities: the routing tree sends one of them to this receiver.
            alerts = [{"labels": {"alertname": name, "severity": severity, "cluster": values["cluster"]},
                       "annotations": {"summary": "bench probe"}} for severity in ("critical", "warning")]
            host, port = values["bind_address"], values["ports"]["alertmanager"]
            requests.post(f"http://{host}:{port}/api/v2/alerts", json=alerts, timeout=10).raise_for_status()
            path = url[len("http://sink:8080"):]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                records = requests.get(f"{SINK}/records", timeout=10).json()
                if any(r["path"] == path and name in str(r["body"]) for r in records):
                    times.append(time.perf_counter() - start)
                    break
                time.sleep(0.2)
            else:
                print(f"secret_apply_seconds: run {run + 1}: no notification at the new URL within 120s", flush=True)
            found = re.search(r"make up: recreated (\d+) service", output)
            counts.append(int(found.group(1)) if found else -1)
            ended = [dict(alert, endsAt=datetime.now(timezone.utc).isoformat()) for alert in alerts]
            requests.post(f"http://{host}:{port}/api/v2/alerts", json=ended, timeout=10)
    finally:
        text = env_file.read_text()
        env_file.write_text(re.sub(rf"(?m)^{var}=.*$", lambda _: f"{var}={original}", text))
    if times:
        figure("secret_apply_seconds", statistics.median(times), "s",
               f"{var} changed in .env -> make up -> notification at the new URL, median of {len(times)}")
    figure("secret_apply_recreated_services", max(counts), "services",
           f"per run {counts}; consumers of {secret}: {len(used[secret])} ({', '.join(used[secret])})")
def backup_figures() -> None:
    """make backup on the running stack, then make restore onto it stopped (the demo
    platform's sink stays attached: stopped, not removed), then start it again (not
    waiting: up_to_healthy_seconds measured that)."""
    with tempfile.TemporaryDirectory(dir=ROOT, prefix=".bench-backup-") as scratch:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bundle.backup", "backup", "--dir", scratch], cwd=ROOT, check=True,
                       capture_output=True)
        took = time.perf_counter() - start
        path = next(Path(scratch).glob("*.tar"))
        with archive.Reader(path, backup.KIND) as reader:
            tsdb = reader.manifest["members"]["volumes/prometheus-data.tar"]["bytes"] / 2**20
        figure("backup_seconds", took, "s", f"Prometheus TSDB of {tsdb:.1f} MiB and Alertmanager, each stopped briefly")
        compose("stop")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bundle.backup", "restore", str(path)], cwd=ROOT, check=True,
                       capture_output=True)
        figure("restore_seconds", time.perf_counter() - start, "s", "the same archive onto the stopped stack")
        compose("up", "--detach")


def multihost_figures() -> None:
    """The agents' catch-up after an outage of the whole central stack."""
    import scenario

    values = scenario.scenario_values()
    agents = [name for name, host in values["hosts"].items() if host["mode"] == "agent"]
    outage_seconds = float(os.environ.get("BENCH_OUTAGE_SECONDS", "60"))
    result = scenario.outage(scenario.central(values), values["ports"]["edge"], agents,
                             seconds(values["agent"]["scrape_interval"]), outage_seconds)
    caught = result["catch_up_seconds"]
    note = f"{len(agents)} agents, central stack down {result['outage_seconds']:.0f}s"
    if len(caught) == len(agents):
        figure("agent_catch_up_seconds", max(caught.values()), "s",
               note + "; from Prometheus and the edge answering again to every buffered sample stored")
    else:
        print(f"agent_catch_up_seconds: not within 120s for {sorted(set(agents) - set(caught))}", flush=True)
    figure("agent_samples_lost", sum(result["samples_lost"].values()) + sum(result["agent_dropped"].values()),
           "samples", note)


def scenario_running() -> bool:
    names = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    return "prometheus-agent" in names and any(c["Service"] == "edge" and c["State"] == "running"
                                               for c in containers())


def main() -> int:
    only = os.environ.get("BENCH_ONLY", "")
    if only not in ("", "multihost"):
        print(f"BENCH_ONLY={only}: expected multihost or nothing", file=sys.stderr)
        return 2
    if not only:
        with tempfile.TemporaryDirectory() as scratch:
            render_figures(Path(scratch))
        if not any(c["State"] == "running" for c in containers()):
            print("stack figures skipped: the stack is not running (make up)", flush=True)
            return 0
        smoke_figure()
        stack_figures()
    if scenario_running():
        multihost_figures()
    else:
        print("agent figures skipped: the multi-host scenario is not up (tests/multihost/scenario.py up)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
