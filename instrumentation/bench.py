"""What each way of instrumenting a FastAPI app adds per request, side by side in one run.

Five copies of the same one-route app: bare; with this package's PrometheusMiddleware;
with the full instrument_app() (metrics, request id and log context, /metrics route);
with prometheus-fastapi-instrumentator; with starlette-exporter (the last two are
test-only dependencies, pinned in requirements-test.txt). Requests are straight ASGI
calls (no sockets), the five apps interleaved request by request in a rotating order so
they all see the same machine noise. Each run gives every app's p50 and p99; the
figures printed are the medians over the runs. Prints `name: value unit` lines:
latencies in microseconds, overheads as differences to the bare app's quantile,
ratios as an app's quantile over the bare app's, and the target: instrument_app()'s p50
overhead as a fraction of the instrumentator's (the goal is at most 1/3).

    python bench.py [--requests N] [--runs R]   # then once more with PROMETHEUS_MULTIPROC_DIR
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))  # this checkout's package

VARIANTS = ("bare", "middleware", "instrument_app", "instrumentator", "starlette_exporter")


def build(variant: str):
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int):
        return {"item": item_id}

    if variant == "middleware":
        from platform_observability.asgi import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware)
    elif variant == "instrument_app":
        from platform_observability import instrument_app

        instrument_app(app)
    elif variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        # its own registry: its default names (http_requests_total, ...) are this package's
        Instrumentator(registry=CollectorRegistry()).instrument(app).expose(app)
    elif variant == "starlette_exporter":
        from starlette_exporter import PrometheusMiddleware, handle_metrics

        app.add_middleware(PrometheusMiddleware)
        app.add_route("/metrics", handle_metrics)
    return app


def scope(i: int) -> dict:
    path = f"/api/items/{i % 1000}"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 50000), "server": ("bench", 80)}


async def measure(n: int) -> dict[str, list[int]]:
    apps = {name: build(name) for name in VARIANTS}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def one(app, i):
        t = time.perf_counter_ns()
        await app(scope(i), receive, send)
        return time.perf_counter_ns() - t

    for i in range(1000):  # warm up: build middleware stacks, label children, caches
        for app in apps.values():
            await one(app, i)
    times: dict[str, list[int]] = {name: [] for name in VARIANTS}
    order = list(VARIANTS)
    gc.disable()
    try:
        for i in range(n):
            order.append(order.pop(0))  # rotate: no app always runs first or last
            for name in order:
                times[name].append(await one(apps[name], i))
            if i % 200 == 0:  # outside the timed calls: no collection pause lands in one app's figures
                gc.collect()
    finally:
        gc.enable()
    return times


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(prefix: str, n: int, runs: int) -> None:
    p50: dict[str, list[float]] = {name: [] for name in VARIANTS}
    p99: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(runs):
        times = asyncio.run(measure(n))
        for name in VARIANTS:
            p50[name].append(statistics.median(times[name]) / 1000.0)
            p99[name].append(quantile(times[name], 0.99) / 1000.0)
    m50 = {name: statistics.median(p50[name]) for name in VARIANTS}
    m99 = {name: statistics.median(p99[name]) for name in VARIANTS}
    print(f"{prefix}requests: {n} count")
    print(f"{prefix}runs: {runs} count")
    for name in VARIANTS:
        print(f"{prefix}{name}_p50: {m50[name]:.1f} us")
        print(f"{prefix}{name}_p99: {m99[name]:.1f} us")
    for name in VARIANTS[1:]:
        print(f"{prefix}{name}_overhead_p50: {m50[name] - m50['bare']:.1f} us")
        print(f"{prefix}{name}_overhead_p99: {m99[name] - m99['bare']:.1f} us")
    for name in VARIANTS[1:]:
        print(f"{prefix}{name}_ratio_p50: {m50[name] / m50['bare']:.3f} x")
        print(f"{prefix}{name}_ratio_p99: {m99[name] / m99['bare']:.3f} x")
    # the target, per run (the same run's instrumentator), then the median of the runs
    shares = [(p50["instrument_app"][r] - p50["bare"][r]) / (p50["instrumentator"][r] - p50["bare"][r])
              for r in range(runs)]
    share = statistics.median(shares)
    print(f"{prefix}instrument_app_overhead_share_of_instrumentator_p50: {share:.3f} ratio")
    print(f"{prefix}instrument_app_overhead_target_met: {int(share <= 1 / 3)} bool")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--single", action="store_true", help="only this process's mode")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    report(args.prefix, args.requests, args.runs)
    if not args.single:
        sys.stdout.flush()
        with tempfile.TemporaryDirectory() as mp:  # mmap-backed values, as with several workers
            env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=mp)
            subprocess.run([sys.executable, __file__, "--single", "--requests", str(args.requests),
                            "--runs", str(args.runs), "--prefix", "multiprocess_"], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
