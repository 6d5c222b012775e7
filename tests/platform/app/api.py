"""The demo API gateway, instrumented with the bundle's reference package
(instrumentation/, importable as platform_observability): request metrics by route
template, /metrics, active users, queue depth read from the broker, JSON logs with
request ids, slow query logs, and tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import logging
import os

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException

from platform_observability import InMemoryActiveUsers, configure_logging, instrument_app, set_user_id
from platform_observability.asgi import track_active_users
from platform_observability.celery import export_queue_length
from platform_observability.sqlalchemy import log_slow_queries
from worker import app as celery_app
from worker import tasks

configure_logging("api-gateway")  # JSON to stdout, and to Logstash when LOGSTASH_ADDRESS is set
log = logging.getLogger("api")


async def identify_user(x_user_id: str | None = Header(default=None)):
    # async, so the user id lands in the request's own context (logs, active users)
    if x_user_id:
        set_user_id(x_user_id)


app = FastAPI(dependencies=[Depends(identify_user)])
instrument_app(app, access_log=True)  # http_requests_total, http_request_duration_seconds, GET /metrics
track_active_users(InMemoryActiveUsers(window=300))  # one uvicorn process: in-memory is exact
export_queue_length(celery_app)  # celery_queue_length{queue}: from here, so it is seen with no worker up

engine = sa.create_engine(
    os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://", 1),
    pool_size=2, max_overflow=3, pool_pre_ping=True,
)
log_slow_queries(engine)  # SLOW_QUERY_THRESHOLD_MS, default 500

if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
    try:
        from platform_observability.tracing import configure_tracing

        configure_tracing("api-gateway", app=app, engine=engine)
    except ImportError as exc:  # the image carries no OpenTelemetry SDK by default
        log.warning("tracing disabled: %s", exc)


health = APIRouter()
items = APIRouter(prefix="/items")
tasks_router = APIRouter(prefix="/tasks")


@health.get("/health")
def health_check():
    return {"status": "ok"}


@items.get("/{item_id}")
def item(item_id: int):
    with engine.connect() as conn:
        return {"item": item_id, "next": conn.execute(sa.text("SELECT CAST(:i AS int) + 1"), {"i": item_id}).scalar()}


@tasks_router.post("/{name}")
def enqueue(name: str):
    if name not in tasks:
        raise HTTPException(status_code=404, detail=f"no task {name!r}")
    return {"task": tasks[name].delay().id}


# Routers with prefixes, as real apps are built: the metrics and traces carry the full
# templates (/api/items/{item_id}), as the dashboards show them.
api = APIRouter(prefix="/api")
api.include_router(items)
api.include_router(tasks_router)


@api.get("/fail")
def fail():
    raise HTTPException(status_code=503, detail="failing on purpose")


app.include_router(health)
app.include_router(api)
