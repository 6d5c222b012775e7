"""A small API gateway instrumented like the platform's: metrics by route template."""

from __future__ import annotations

import os
import time

import psycopg2
import redis
from fastapi import FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method", "endpoint"])
ACTIVE_USERS = Gauge("active_users", "Users active in the last five minutes")
QUEUE_LENGTH = Gauge("celery_queue_length", "Tasks waiting in a Celery broker queue", ["queue"])

app = FastAPI()
broker = redis.Redis.from_url(os.environ["BROKER_URL"])


@app.middleware("http")
async def metrics(request: Request, call_next):
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = request.scope.get("route")
        # The route template, never the raw path: bounded label values.
        endpoint = route.path if route is not None else "unmatched"
        REQUESTS.labels(request.method, endpoint, str(status)).inc()
        LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - start)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/api/items/{item_id}")
def item(item_id: int):
    with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT %s::int + 1", (item_id,))
        return {"item": item_id, "next": cur.fetchone()[0]}


@app.get("/api/fail")
def fail():
    raise HTTPException(status_code=503, detail="failing on purpose")


@app.post("/api/tasks/{name}")
def enqueue(name: str):
    from worker import tasks

    task = tasks[name].delay()
    return {"task": task.id}


@app.get("/metrics")
def prometheus_metrics():
    for queue in ("celery",):
        try:
            QUEUE_LENGTH.labels(queue).set(broker.llen(queue))
        except redis.RedisError:
            pass  # the broker is down: keep the last value, the Redis alerts say why
    ACTIVE_USERS.set(1)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
