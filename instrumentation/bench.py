"""Overhead of the metrics middleware per request, against the same app without it.

Prints `name: value unit` lines. Requests are straight ASGI calls (no sockets), the two
apps interleaved request by request so both see the same machine noise; the overhead
figures are differences of the two latency distributions' quantiles.

    python bench.py [--requests N]     # also runs once with PROMETHEUS_MULTIPROC_DIR
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))  # this checkout's package


def build(instrumented: bool):
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/items/{item_id}")
    async def item(item_id: int):
        return {"item": item_id}

    if instrumented:
        from platform_observability.asgi import PrometheusMiddleware

        app.add_middleware(PrometheusMiddleware)
    return app


def scope(i: int) -> dict:
    path = f"/api/items/{i % 1000}"
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 50000), "server": ("bench", 80)}


async def measure(n: int) -> tuple[list[int], list[int]]:
    bare, instrumented = build(False), build(True)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def one(app, i):
        t = time.perf_counter_ns()
        await app(scope(i), receive, send)
        return time.perf_counter_ns() - t

    for i in range(2000):  # warm up: build middleware stacks, label children, caches
        await one(bare, i)
        await one(instrumented, i)
    without, with_ = [], []
    gc.disable()
    try:
        for i in range(n):
            if i % 2:
                without.append(await one(bare, i))
                with_.append(await one(instrumented, i))
            else:
                with_.append(await one(instrumented, i))
                without.append(await one(bare, i))
            if i % 5000 == 0:
                gc.collect()
    finally:
        gc.enable()
    return without, with_


def quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(prefix: str, n: int) -> None:
    without, with_ = asyncio.run(measure(n))
    us = 1000.0
    p50_without, p50_with = statistics.median(without) / us, statistics.median(with_) / us
    p99_without, p99_with = quantile(without, 0.99) / us, quantile(with_, 0.99) / us
    print(f"{prefix}requests: {n} count")
    print(f"{prefix}request_p50_without_middleware: {p50_without:.1f} us")
    print(f"{prefix}request_p50_with_middleware: {p50_with:.1f} us")
    print(f"{prefix}request_p99_without_middleware: {p99_without:.1f} us")
    print(f"{prefix}request_p99_with_middleware: {p99_with:.1f} us")
    print(f"{prefix}middleware_overhead_p50: {p50_with - p50_without:.1f} us")
    print(f"{prefix}middleware_overhead_p99: {p99_with - p99_without:.1f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--single", action="store_true", help="only this process's mode")
    args = parser.parse_args()
    report(args.prefix, args.requests)
    if not args.single:
        sys.stdout.flush()
        with tempfile.TemporaryDirectory() as mp:  # mmap-backed values, as with several workers
            env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=mp)
            subprocess.run([sys.executable, __file__, "--single", "--requests", str(args.requests),
                            "--prefix", "multiprocess_"], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
