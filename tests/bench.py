"""Speed and memory figures, printed as `name: value unit` lines (make bench).

Render and check figures need nothing running. The stack figures need the stack
started with `make up` (same VALUES) next to the demo platform (tests/platform): the
bench restarts the stack to time `make up`, then stops Redis once to time an alert.
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
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "live"))

from bundle import DEFAULT_VALUES  # noqa: E402
from bundle.cli import load  # noqa: E402
from stack import SINK, alert_bound, compose, containers, platform  # noqa: E402

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

    bound = alert_bound(values, "RedisDown")
    requests.delete(f"{SINK}/records", timeout=10)
    started = time.time()
    platform("stop", "redis")
    try:
        deadline = time.monotonic() + bound + 120
        while time.monotonic() < deadline:
            hits = [r for r in requests.get(f"{SINK}/records", timeout=10).json()
                    if r["path"] == "/oncall" and "RedisDown" in str(r["body"])]
            if hits:
                figure("alert_latency_seconds", hits[0]["received"] - started, "s",
                       f"Redis stopped -> webhook; bound {bound:.0f}s = scrape + evaluation + for + group_wait")
                figure("alert_latency_bound_seconds", bound, "s")
                break
            time.sleep(0.5)
        else:
            print("alert_latency_seconds: none within the deadline", flush=True)
    finally:
        platform("start", "redis")


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        render_figures(Path(scratch))
    if not any(c["State"] == "running" for c in containers()):
        print("stack figures skipped: the stack is not running (make up)", flush=True)
        return 0
    smoke_figure()
    stack_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
