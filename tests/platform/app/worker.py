"""Celery worker with task metrics on :9808 (celery_task_duration_seconds, failures).
Run with --pool solo: tasks then run in the process that serves the metrics."""

from __future__ import annotations

import os
import time

from celery import Celery
from celery.signals import task_failure, task_postrun, task_prerun, worker_ready
from prometheus_client import Counter, Histogram, start_http_server

app = Celery("platform", broker=os.environ["BROKER_URL"])
DURATION = Histogram("celery_task_duration_seconds", "Run time of finished tasks", ["task_name"])
FAILURES = Counter("celery_task_failures_total", "Tasks that raised", ["task_name"])
_started: dict[str, float] = {}


@task_prerun.connect
def _prerun(task_id=None, **_):
    _started[task_id] = time.perf_counter()


@task_postrun.connect
def _postrun(task_id=None, task=None, **_):
    began = _started.pop(task_id, None)
    if began is not None:
        DURATION.labels(task.name).observe(time.perf_counter() - began)


@task_failure.connect
def _failure(sender=None, **_):
    FAILURES.labels(sender.name).inc()


@worker_ready.connect
def _serve_metrics(**_):
    start_http_server(9808)


@app.task(name="generate_document")
def generate_document():
    time.sleep(0.05)
    return "ok"


@app.task(name="broken_task")
def broken_task():
    raise RuntimeError("failing on purpose")


tasks = {"generate_document": generate_document, "broken_task": broken_task}
