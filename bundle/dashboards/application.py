"""The API: requests, errors, latency."""

from __future__ import annotations

from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Application"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    all = 'http_requests_total{' + sel + '}'
    errors = 'http_requests_total{status=~"5..",' + sel + '}'
    buckets = 'http_request_duration_seconds_bucket{' + sel + '}'
    to_traces = [{"title": "Traces", "url": "/d/traces?${__url_time_range}"}] if values["layers"]["tracing"] else []
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "Request rate", "unit": "reqps",
           "targets": [{"expr": 'sum(rate(' + all + '[$__rate_interval]))'}]},
          {"type": "stat", "title": "Error rate", "unit": "percent", "alert": "HighErrorRate", "decimals": 2,
           "description": "Share of responses that are 5xx.",
           "targets": [{"expr": '(sum(rate(' + errors + '[$__rate_interval])) or vector(0)) / sum(rate(' + all + '[$__rate_interval])) * 100'}]},
          {"type": "stat", "title": "p95 latency", "unit": "s", "alert": "HighResponseTime", "decimals": 3,
           "description": "95th percentile response time.",
           "targets": [{"expr": 'histogram_quantile(0.95, sum by (le) (rate(' + buckets + '[$__rate_interval])))'}]},
          {"type": "stat", "title": "Active users", "unit": "short",
           "targets": [{"expr": 'sum(active_users{' + sel + '})'}]},
          {"type": "stat", "title": "Tasks waiting", "unit": "short", "alert": "CeleryQueueBackup",
           "description": "Celery tasks waiting in the broker, all queues.",
           "links": [{"title": "Celery", "url": "/d/celery?${__url_time_range}"}],
           "targets": [{"expr": 'sum(max by (queue) (celery_queue_length))'}]},
          {"type": "stat", "title": "Database connections", "unit": "percent", "alert": "PostgresHighConnections", "decimals": 1,
           "description": "PostgreSQL connections in use, in percent of max_connections.",
           "links": [{"title": "PostgreSQL", "url": "/d/postgresql?${__url_time_range}"}],
           "targets": [{"expr": 'max(sum by (job, instance) (pg_stat_database_numbackends) / on (job, instance) max by (job, instance) (pg_settings_max_connections)) * 100'}]},
        ]},
        {"title": "Requests", "panels": [
          {"title": "Request rate by endpoint", "unit": "reqps", "min": 0,
           "targets": [{"expr": 'sum by (method, endpoint) (rate(' + all + '[$__rate_interval]))', "legend": "{{method}} {{endpoint}}"}]},
          {"title": "Responses by status", "unit": "reqps", "min": 0, "stack": True,
           "targets": [{"expr": 'sum by (status) (rate(' + all + '[$__rate_interval]))', "legend": "{{status}}"}]},
        ]},
        {"title": "Errors and latency", "panels": [
          {"title": "Error rate", "unit": "percent", "alert": "HighErrorRate", "min": 0,
           "description": "5xx responses in percent of all, per job.",
           "targets": [{"expr": '(sum by (job) (rate(' + errors + '[$__rate_interval])) or 0 * sum by (job) (rate(' + all + '[$__rate_interval]))) / sum by (job) (rate(' + all + '[$__rate_interval])) * 100', "legend": "{{job}}"}]},
          {"title": "p95 latency by endpoint", "unit": "s", "alert": "HighResponseTime", "min": 0, "exemplars": True, "links": to_traces,
           "description": "Per endpoint; the alert looks at the p95 of the whole service." + (" Exemplars (dots) open their trace in Jaeger." if values["layers"]["tracing"] else ""),
           "targets": [{"expr": 'histogram_quantile(0.95, sum by (le, endpoint) (rate(' + buckets + '[$__rate_interval])))', "legend": "{{endpoint}}"}]},
          {"title": "Latency percentiles", "unit": "s", "alert": "HighResponseTime", "min": 0, "exemplars": True, "links": to_traces,
           "targets": [{"expr": 'histogram_quantile(0.50, sum by (le) (rate(' + buckets + '[$__rate_interval])))', "legend": "p50"},
                       {"expr": 'histogram_quantile(0.95, sum by (le) (rate(' + buckets + '[$__rate_interval])))', "legend": "p95"},
                       {"expr": 'histogram_quantile(0.99, sum by (le) (rate(' + buckets + '[$__rate_interval])))', "legend": "p99"}]},
        ]},
        {"title": "Users, tasks and database", "panels": [
          {"title": "Active users", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum by (job) (active_users{' + sel + '})', "legend": "{{job}}"}]},
          {"title": "Task queue", "unit": "short", "alert": "CeleryQueueBackup", "min": 0,
           "description": "Celery tasks waiting per broker queue.",
           "links": [{"title": "Celery", "url": "/d/celery?${__url_time_range}"}],
           "targets": [{"expr": 'max by (queue) (celery_queue_length)', "legend": "{{queue}}"}]},
          {"title": "Database connections", "unit": "short", "min": 0,
           "description": "Connections open on each PostgreSQL server, and its max_connections.",
           "links": [{"title": "PostgreSQL", "url": "/d/postgresql?${__url_time_range}"}],
           "targets": [{"expr": 'sum by (instance) (pg_stat_database_numbackends)', "legend": "{{instance}} in use"},
                       {"expr": 'max by (instance) (pg_settings_max_connections)', "legend": "{{instance}} max"}]},
        ]},
    ]
    links = [{"title": "Celery", "url": "/d/celery"}, {"title": "PostgreSQL", "url": "/d/postgresql"}]
    if values["layers"]["logs"]:
        links.append({"title": "Logs", "url": "/d/logs"})
    if values["layers"]["tracing"]:
        links.append({"title": "Traces", "url": "/d/traces"})
    return Dashboard(
        folder=FOLDER,
        uid="application",
        title="Application",
        description="The API gateway's requests, errors and latency, active users, the Celery task queue and database connections; thresholds are the alert thresholds of values.yaml. $job and $instance select the API gateway; task queue and database panels show every queue and server.",
        tags=["application", "api-gateway"],
        vars_from="http_requests_total",
        links=links,
        rows=rows,
    )
