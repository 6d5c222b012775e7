"""Container metrics of remote hosts, from cAdvisor (values hosts.<name>.exporters)."""

from __future__ import annotations

from .builder import SELECTOR, Dashboard

FOLDER = "Infrastructure"
# Layers besides dashboards this one needs.
LAYERS = ()


def wanted(values: dict) -> bool:
    """Only while a host runs cAdvisor."""
    return any("cadvisor" in host["exporters"] for host in values["hosts"].values())


def dashboard(values: dict) -> Dashboard:
    # Containers only (name set), not the cgroups of the host's own services.
    sel = 'job="cadvisor",name!="",' + SELECTOR
    by = "sum by (host, name) "
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "Containers", "unit": "short",
           "targets": [{"expr": 'count(container_last_seen{' + sel + '})'}]},
          {"type": "stat", "title": "CPU used by containers", "unit": "percent", "decimals": 1,
           "description": "In percent of one core.",
           "targets": [{"expr": 'sum(rate(container_cpu_usage_seconds_total{' + sel + '}[$__rate_interval])) * 100'}]},
          {"type": "stat", "title": "Memory used by containers", "unit": "bytes",
           "targets": [{"expr": 'sum(container_memory_working_set_bytes{' + sel + '})'}]},
        ]},
        {"title": "Per container", "panels": [
          {"title": "CPU", "unit": "percent", "min": 0,
           "description": "In percent of one core.",
           "targets": [{"expr": by + '(rate(container_cpu_usage_seconds_total{' + sel + '}[$__rate_interval])) * 100',
                        "legend": "{{host}} {{name}}"}]},
          {"title": "Memory (working set)", "unit": "bytes", "min": 0,
           "targets": [{"expr": by + '(container_memory_working_set_bytes{' + sel + '})', "legend": "{{host}} {{name}}"}]},
          {"title": "Network received", "unit": "Bps", "min": 0,
           "targets": [{"expr": by + '(rate(container_network_receive_bytes_total{' + sel + '}[$__rate_interval]))',
                        "legend": "{{host}} {{name}}"}]},
          {"title": "Network sent", "unit": "Bps", "min": 0,
           "targets": [{"expr": by + '(rate(container_network_transmit_bytes_total{' + sel + '}[$__rate_interval]))',
                        "legend": "{{host}} {{name}}"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="containers",
        title="Containers",
        description="CPU, memory and network of the containers on the hosts that run cAdvisor (values hosts.<name>.exporters: [cadvisor]).",
        tags=["infrastructure", "containers"],
        vars_from="container_last_seen",
        links=[{"title": "System Overview", "url": "/d/system-overview"}],
        rows=rows,
    )
