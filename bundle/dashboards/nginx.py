"""nginx from its stub_status."""

from __future__ import annotations

from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Infrastructure"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "nginx", "steps": UP_STEPS, "mappings": UP_MAPPINGS,
           "description": "Whether nginx-prometheus-exporter reaches stub_status.",
           "targets": [{"expr": 'min(nginx_up{' + sel + '})'}]},
          {"type": "stat", "title": "Requests", "unit": "reqps",
           "targets": [{"expr": 'sum(rate(nginx_http_requests_total{' + sel + '}[$__rate_interval]))'}]},
          {"type": "stat", "title": "Active connections", "unit": "short",
           "targets": [{"expr": 'sum(nginx_connections_active{' + sel + '})'}]},
          {"type": "stat", "title": "Dropped connections", "unit": "short",
           "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
           "description": "Connections accepted but not handled (worker_connections or resource limits), over the time range.",
           "targets": [{"expr": 'sum(increase(nginx_connections_accepted{' + sel + '}[$__range])) - sum(increase(nginx_connections_handled{' + sel + '}[$__range]))'}]},
        ]},
        {"title": "Traffic", "panels": [
          {"title": "Requests per second", "unit": "reqps", "min": 0,
           "targets": [{"expr": 'sum by (instance) (rate(nginx_http_requests_total{' + sel + '}[$__rate_interval]))', "legend": "{{instance}}"}]},
          {"title": "Connections by state", "unit": "short", "min": 0, "stack": True,
           "targets": [{"expr": 'sum(nginx_connections_reading{' + sel + '})', "legend": "reading"},
                       {"expr": 'sum(nginx_connections_writing{' + sel + '})', "legend": "writing"},
                       {"expr": 'sum(nginx_connections_waiting{' + sel + '})', "legend": "waiting"}]},
          {"title": "Connections accepted and handled", "unit": "cps", "min": 0,
           "targets": [{"expr": 'sum(rate(nginx_connections_accepted{' + sel + '}[$__rate_interval]))', "legend": "accepted"},
                       {"expr": 'sum(rate(nginx_connections_handled{' + sel + '}[$__rate_interval]))', "legend": "handled"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="nginx",
        title="nginx",
        description="nginx in front of the API gateway, from its stub_status (nginx-prometheus-exporter): requests and connections. Per-endpoint status codes and latency are on the Application dashboard.",
        tags=["infrastructure", "nginx"],
        vars_from="nginx_up",
        links=[{"title": "Application", "url": "/d/application"}],
        rows=rows,
    )
