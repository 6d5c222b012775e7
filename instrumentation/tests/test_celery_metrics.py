"""Celery task metrics: names and labels; every finished task observes the histogram."""

from __future__ import annotations

import pytest
from celery import Celery
from prometheus_client import generate_latest

from conftest import samples, value
from platform_observability.celery import instrument_celery
from platform_observability.metrics import TaskMetrics


@pytest.fixture
def eager_app(registry):
    app = Celery("t", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = True

    @app.task(name="ok_task")
    def ok_task():
        return 1

    @app.task(name="bad_task")
    def bad_task():
        raise RuntimeError("no")

    instrument_celery(app, metrics=TaskMetrics(registry))
    return app


def test_task_metrics_names_and_labels(eager_app, registry):
    eager_app.tasks["ok_task"].delay()
    eager_app.tasks["ok_task"].delay()
    eager_app.tasks["bad_task"].delay()
    text = generate_latest(registry)
    assert value(text, "celery_task_duration_seconds_count", task_name="ok_task") == 2
    assert value(text, "celery_task_duration_seconds_count", task_name="bad_task") == 1  # failures too
    assert value(text, "celery_task_failures_total", task_name="bad_task") == 1
    assert value(text, "celery_task_failures_total", task_name="ok_task") is None
    for name, labels, _ in samples(text):
        if name.startswith("celery_task_failures_total"):
            assert set(labels) == {"task_name"}
        if name == "celery_task_duration_seconds_bucket":
            assert set(labels) == {"task_name", "le"}


def test_other_apps_tasks_are_not_counted(eager_app, registry):
    other = Celery("other", broker="memory://")
    other.conf.task_always_eager = True

    @other.task(name="other_task")
    def other_task():
        raise RuntimeError("x")

    other_task.delay()
    text = generate_latest(registry)
    assert value(text, "celery_task_duration_seconds_count", task_name="other_task") is None
    assert value(text, "celery_task_failures_total", task_name="other_task") is None


def test_queues_are_discovered_from_the_app_configuration():
    from kombu import Queue

    from platform_observability.celery import QueueLengthCollector

    app = Celery("routing", broker="memory://")
    app.conf.task_default_queue = "default"
    app.conf.task_queues = [Queue("declared"), Queue("default")]
    app.conf.task_routes = [
        {"mail.send": {"queue": "mail"}, "pdf.*": {"queue": Queue("documents")}, "video.encode": "video"},
        lambda name, args, kwargs, options, task=None, **kw: {"queue": "from-a-function"},
    ]
    assert QueueLengthCollector(app).queues() == ["default", "declared", "mail", "video", "documents"]
    assert QueueLengthCollector(app, queues=["only"]).queues() == ["only"]


def test_a_worker_consuming_more_queues_reports_them_too():
    from platform_observability.celery import QueueLengthCollector

    app = Celery("consumer", broker="memory://")
    app.amqp.queues.select_add("extra")  # what the worker does for -Q extra
    assert QueueLengthCollector(app).queues() == ["celery", "extra"]
