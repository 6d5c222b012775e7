"""Celery tasks and broker queues."""

from __future__ import annotations

from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Application"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    runs = 'celery_task_duration_seconds_count{' + sel + '}'
    failures = 'celery_task_failures_total{' + sel + '}'
    buckets = 'celery_task_duration_seconds_bucket{' + sel + '}'
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "Tasks finished", "unit": "ops",
           "targets": [{"expr": 'sum(rate(' + runs + '[$__rate_interval]))'}]},
          {"type": "stat", "title": "Task failure rate", "unit": "percent", "alert": "HighTaskFailureRate", "decimals": 1,
           "description": "Share of finished tasks that raised.",
           "targets": [{"expr": '(sum(rate(' + failures + '[$__rate_interval])) or vector(0)) / sum(rate(' + runs + '[$__rate_interval])) * 100'}]},
          {"type": "stat", "title": "p95 task run time", "unit": "s", "decimals": 3,
           "targets": [{"expr": 'histogram_quantile(0.95, sum by (le) (rate(' + buckets + '[$__rate_interval])))'}]},
          {"type": "stat", "title": "Tasks waiting", "unit": "short", "alert": "CeleryQueueBackup",
           "description": "Tasks waiting in the broker, all queues (every exporter reports the same broker, so each queue counts once and $job does not filter it).",
           "targets": [{"expr": 'sum(max by (queue) (celery_queue_length))'}]},
        ]},
        {"title": "Tasks", "panels": [
          {"title": "Tasks finished by task", "unit": "ops", "min": 0, "stack": True,
           "targets": [{"expr": 'sum by (task_name) (rate(' + runs + '[$__rate_interval]))', "legend": "{{task_name}}"}]},
          {"title": "Task failure rate by task", "unit": "percent", "alert": "HighTaskFailureRate", "min": 0,
           "targets": [{"expr": '(sum by (task_name) (rate(' + failures + '[$__rate_interval])) or 0 * sum by (task_name) (rate(' + runs + '[$__rate_interval]))) / sum by (task_name) (rate(' + runs + '[$__rate_interval])) * 100', "legend": "{{task_name}}"}]},
          {"title": "Task failures by task", "unit": "ops", "min": 0,
           "targets": [{"expr": 'sum by (task_name) (rate(' + failures + '[$__rate_interval]))', "legend": "{{task_name}}"}]},
        ]},
        {"title": "Run time and queue", "panels": [
          {"title": "p95 run time by task", "unit": "s", "min": 0,
           "targets": [{"expr": 'histogram_quantile(0.95, sum by (le, task_name) (rate(' + buckets + '[$__rate_interval])))', "legend": "{{task_name}}"}]},
          {"title": "Mean run time by task", "unit": "s", "min": 0,
           "targets": [{"expr": 'sum by (task_name) (rate(celery_task_duration_seconds_sum{' + sel + '}[$__rate_interval])) / sum by (task_name) (rate(' + runs + '[$__rate_interval]))', "legend": "{{task_name}}"}]},
          {"title": "Queue length", "unit": "short", "alert": "CeleryQueueBackup", "min": 0,
           "description": "Tasks waiting per broker queue.",
           "targets": [{"expr": 'max by (queue) (celery_queue_length)', "legend": "{{queue}}"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="celery",
        title="Celery",
        description="Celery tasks as the workers report them (celery_task_duration_seconds, celery_task_failures_total) and the broker queues; thresholds are the alert thresholds of values.yaml.",
        tags=["application", "celery"],
        vars_from="celery_task_duration_seconds_count",
        links=[{"title": "Application", "url": "/d/application"}, {"title": "Redis (broker)", "url": "/d/redis"}],
        rows=rows,
    )
