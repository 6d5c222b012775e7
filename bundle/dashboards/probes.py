"""The blackbox probes of values blackbox.probes: up or down, answers, certificates."""

from __future__ import annotations

from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Operations"
# Layers besides dashboards this one needs.
LAYERS = ("blackbox",)


def dashboard(values: dict) -> Dashboard:
    sel = 'job="blackbox",' + SELECTOR
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "Endpoints up", "steps": UP_STEPS, "mappings": UP_MAPPINGS, "w": 12,
           "description": "Each probe's last result: a 2xx answer, and a certificate that verifies for https.",
           "targets": [{"expr": 'probe_success{' + sel + '}', "legend": "{{probe}}", "instant": True}]},
          {"type": "stat", "title": "Days until a certificate expires", "unit": "d", "decimals": 0, "w": 12,
           "alert": "CertificateExpiresSoon", "below": True,
           "description": "The earliest expiry in the chain each https endpoint presents.",
           "targets": [{"expr": '(probe_ssl_earliest_cert_expiry{' + sel + '} - time()) / 86400', "legend": "{{probe}}",
                        "instant": True}]},
        ]},
        {"title": "Answers", "panels": [
          {"title": "Probe result", "unit": "short", "min": 0, "max": 1, "steps": UP_STEPS, "mappings": UP_MAPPINGS,
           "targets": [{"expr": 'probe_success{' + sel + '}', "legend": "{{probe}}"}]},
          {"title": "Probe duration", "unit": "s", "min": 0,
           "description": "From the blackbox exporter: DNS, connect, TLS and the answer.",
           "targets": [{"expr": 'probe_duration_seconds{' + sel + '}', "legend": "{{probe}}"}]},
          {"title": "HTTP status code", "unit": "short",
           "targets": [{"expr": 'probe_http_status_code{' + sel + '}', "legend": "{{probe}}"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="probes",
        title="Probes",
        description="The public endpoints of values blackbox.probes as the blackbox exporter sees them from the monitoring host: up or down, how fast, and when their certificates expire. Alerts: EndpointDown, CertificateExpiresSoon.",
        tags=["operations", "blackbox"],
        vars_from="probe_success",
        links=[{"title": "System Overview", "url": "/d/system-overview"}],
        rows=rows,
    )
