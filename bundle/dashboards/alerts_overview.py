"""Firing alerts and notifications."""

from __future__ import annotations

from urllib.parse import quote

from .builder import SELECTOR, Dashboard

FOLDER = "Operations"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    am = quote(values["grafana"]["datasources"]["alertmanager"]["name"])
    rows = [
        {"title": "Now", "panels": [
          {"type": "stat", "title": "Firing alerts", "unit": "short",
           "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}],
           "targets": [{"expr": 'count(ALERTS{alertstate="firing"}) or vector(0)'}]},
          {"type": "stat", "title": "Critical firing", "unit": "short",
           "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
           "targets": [{"expr": 'count(ALERTS{alertstate="firing",severity="critical"}) or vector(0)'}]},
          {"type": "stat", "title": "Pending alerts", "unit": "short",
           "description": "Conditions that hold but not yet for the alert's `for` duration.",
           "targets": [{"expr": 'count(ALERTS{alertstate="pending"}) or vector(0)'}]},
          {"type": "stat", "title": "Active silences", "unit": "short",
           "targets": [{"expr": 'sum(alertmanager_silences{state="active",' + sel + '})'}]},
          {"type": "stat", "title": "Failed notifications", "unit": "short",
           "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
           "description": "Notifications Alertmanager could not deliver over the time range; see the failures by integration below.",
           "targets": [{"expr": 'sum(increase(alertmanager_notifications_failed_total{' + sel + '}[$__range]))'}]},
        ]},
        {"title": "Alerts", "panels": [
          {"type": "table", "title": "Firing alerts", "w": 14, "h": 9, "no_value": "No alert is firing",
           "description": "Every alert firing now, with its labels, from Prometheus's ALERTS series.",
           "transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True}, "indexByName": {"alertname": 0, "severity": 1}, "renameByName": {}}}],
           "targets": [{"expr": 'ALERTS{alertstate="firing"}', "instant": True, "table": True}]},
          {"type": "alertlist", "title": "Alert rules firing or pending", "w": 10, "h": 9,
           "description": "The alert rules Grafana sees, including the Prometheus rules of this bundle.",
           "options": {"viewMode": "list", "groupMode": "default", "groupBy": [], "maxItems": 50, "sortOrder": 1, "dashboardAlerts": False, "alertName": "", "alertInstanceLabelFilter": "", "folder": None, "showInstances": True, "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False, "error": True}}},
          {"title": "Firing alerts by name", "unit": "short", "min": 0, "stack": True, "w": 24,
           "targets": [{"expr": 'count by (alertname, severity) (ALERTS{alertstate="firing"}) or on () vector(0)', "legend": "{{alertname}} {{severity}}"}]},
        ]},
        {"title": "Alertmanager", "panels": [
          {"title": "Alerts in Alertmanager", "unit": "short", "min": 0,
           "description": "Active alerts, and those muted by a silence or an inhibition rule.",
           "targets": [{"expr": 'sum by (state) (alertmanager_alerts{' + sel + '})', "legend": "{{state}}"}]},
          {"title": "Alerts received", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum by (status) (rate(alertmanager_alerts_received_total{' + sel + '}[$__rate_interval]))', "legend": "{{status}}"}]},
          {"title": "Notifications by integration", "unit": "short", "min": 0,
           "description": "Notifications sent (and failed) per second, per receiver integration.",
           "targets": [{"expr": 'sum by (integration) (rate(alertmanager_notifications_total{' + sel + '}[$__rate_interval]))', "legend": "{{integration}} sent"},
                       {"expr": 'sum by (integration) (rate(alertmanager_notifications_failed_total{' + sel + '}[$__rate_interval]))', "legend": "{{integration}} failed"}]},
          {"title": "Notification latency p95", "unit": "s", "min": 0,
           "description": "How long delivering a notification takes, per integration (empty while none was sent).",
           "targets": [{"expr": 'histogram_quantile(0.95, sum by (le, integration) (rate(alertmanager_notification_latency_seconds_bucket{' + sel + '}[$__rate_interval])))', "legend": "{{integration}}"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="alerts-overview",
        title="Alerts overview",
        description="What fires now and how notifications travel: Prometheus's ALERTS series and Alertmanager's own metrics. Grafana's Alertmanager datasource cannot back panels; the links open Grafana's alerting pages on it (groups, silences).",
        tags=["alerts"],
        vars_from="alertmanager_build_info",
        links=[{"title": "Alert groups (Alertmanager)", "url": "/alerting/groups?alertmanager=" + am, "icon": "bolt"},
        {"title": "Silences (Alertmanager)", "url": "/alerting/silences?alertmanager=" + am, "icon": "bolt"}],
        rows=rows,
    )
