"""The demo Celery worker, instrumented with platform_observability: task duration and
failures, served on :9808 by the worker's main process, JSON logs.

Run with --pool solo, or with the prefork pool and PROMETHEUS_MULTIPROC_DIR set to an
empty writable directory (then the pool children's metrics are aggregated too)."""

from __future__ import annotations

import os
import time

from celery import Celery

from platform_observability import instrument_celery

app = Celery("platform", broker=os.environ["BROKER_URL"])
# The worker exports celery_queue_length too, as the API does: the bundle takes the max
# per queue, so the same broker reported twice counts once.
instrument_celery(app, metrics_port=int(os.environ.get("METRICS_PORT", "9808")),
                  configure_logs=True, service_name="celery-worker")


@app.task(name="generate_document")
def generate_document():
    from platform_observability import business_metrics

    time.sleep(0.05)
    business_metrics().documents_generated.labels("summary").inc()
    return "ok"


@app.task(name="broken_task")
def broken_task():
    raise RuntimeError("failing on purpose")


tasks = {"generate_document": generate_document, "broken_task": broken_task}
