"""CPU, memory, disk and network of the hosts node_exporter runs on."""

from __future__ import annotations

from .. import alerts
from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard, host_filesystems

FOLDER = "Infrastructure"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    fs = host_filesystems() + "," + sel
    nic = 'device!~"lo|veth.*|docker.*|br-.*",' + sel
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "CPU busy", "unit": "percent", "alert": "HighCPUUsage", "decimals": 1,
           "description": "Averaged over all cores.",
           "targets": [{"expr": '(1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",' + sel + '}[$__rate_interval]))) * 100', "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Memory used", "unit": "percent", "alert": "HighMemoryUsage", "decimals": 1,
           "description": "Memory not available to new allocations.",
           "targets": [{"expr": '(1 - node_memory_MemAvailable_bytes{' + sel + '} / node_memory_MemTotal_bytes{' + sel + '}) * 100', "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Least free filesystem", "unit": "percent", "alert": "DiskSpaceLow", "below": True, "decimals": 1,
           "description": "Free space of the fullest host filesystem.",
           "targets": [{"expr": 'min by (instance) (node_filesystem_avail_bytes{' + fs + '} / node_filesystem_size_bytes{' + fs + '}) * 100', "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Load (1m) per core", "unit": "short", "decimals": 2,
           "targets": [{"expr": 'node_load1{' + sel + '} / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle",' + sel + '})', "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Uptime", "unit": "s",
           "targets": [{"expr": 'time() - node_boot_time_seconds{' + sel + '}', "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Cores", "unit": "short",
           "targets": [{"expr": 'count by (instance) (node_cpu_seconds_total{mode="idle",' + sel + '})', "legend": "{{instance}}"}]},
        ]},
        {"title": "CPU", "panels": [
          {"title": "CPU busy by mode", "unit": "percent", "stack": True, "min": 0,
           "description": "Share of all cores spent in each mode other than idle.",
           "targets": [{"expr": 'sum by (instance, mode) (rate(node_cpu_seconds_total{mode!="idle",' + sel + '}[$__rate_interval])) / on (instance) group_left count by (instance) (node_cpu_seconds_total{mode="idle",' + sel + '}) * 100', "legend": "{{instance}} {{mode}}"}]},
          {"title": "CPU busy", "unit": "percent", "alert": "HighCPUUsage", "min": 0, "max": 100,
           "targets": [{"expr": '(1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",' + sel + '}[$__rate_interval]))) * 100', "legend": "{{instance}}"}]},
          {"title": "Load average", "unit": "short", "min": 0,
           "targets": [{"expr": 'node_load1{' + sel + '}', "legend": "{{instance}} 1m"},
                       {"expr": 'node_load5{' + sel + '}', "legend": "{{instance}} 5m"},
                       {"expr": 'node_load15{' + sel + '}', "legend": "{{instance}} 15m"}]},
        ]},
        {"title": "Memory", "panels": [
          {"title": "Memory used", "unit": "percent", "alert": "HighMemoryUsage", "min": 0, "max": 100,
           "targets": [{"expr": '(1 - node_memory_MemAvailable_bytes{' + sel + '} / node_memory_MemTotal_bytes{' + sel + '}) * 100', "legend": "{{instance}}"}]},
          {"title": "Memory", "unit": "bytes", "min": 0,
           "targets": [{"expr": 'node_memory_MemTotal_bytes{' + sel + '} - node_memory_MemAvailable_bytes{' + sel + '}', "legend": "{{instance}} used"},
                       {"expr": 'node_memory_Cached_bytes{' + sel + '} + node_memory_Buffers_bytes{' + sel + '}', "legend": "{{instance}} cache and buffers"},
                       {"expr": 'node_memory_MemTotal_bytes{' + sel + '}', "legend": "{{instance}} total"}]},
          {"title": "Swap used", "unit": "bytes", "min": 0,
           "targets": [{"expr": 'node_memory_SwapTotal_bytes{' + sel + '} - node_memory_SwapFree_bytes{' + sel + '}', "legend": "{{instance}}"}]},
        ]},
        {"title": "Disk", "panels": [
          {"type": "bargauge", "title": "Filesystem free", "unit": "percent", "alert": "DiskSpaceLow", "below": True, "min": 0, "max": 100,
           "description": "Free space per host filesystem.",
           "targets": [{"expr": 'node_filesystem_avail_bytes{' + fs + '} / node_filesystem_size_bytes{' + fs + '} * 100', "legend": "{{instance}} {{mountpoint}}", "instant": True}]},
          {"title": "Disk throughput", "unit": "Bps",
           "description": "Bytes read (positive) and written (negative) per device.",
           "overrides": [{"matcher": {"id": "byRegexp", "options": ".* write"}, "properties": [{"id": "custom.transform", "value": "negative-Y"}]}],
           "targets": [{"expr": 'rate(node_disk_read_bytes_total{' + sel + '}[$__rate_interval])', "legend": "{{instance}} {{device}} read"},
                       {"expr": 'rate(node_disk_written_bytes_total{' + sel + '}[$__rate_interval])', "legend": "{{instance}} {{device}} write"}]},
          {"title": "Disk busy", "unit": "percentunit", "min": 0,
           "description": "Share of time each device had I/O in flight.",
           "targets": [{"expr": 'rate(node_disk_io_time_seconds_total{' + sel + '}[$__rate_interval])', "legend": "{{instance}} {{device}}"}]},
        ]},
        {"title": "Network", "panels": [
          {"title": "Network throughput", "unit": "bps",
           "description": "Bits received (positive) and sent (negative) per interface.",
           "overrides": [{"matcher": {"id": "byRegexp", "options": ".* sent"}, "properties": [{"id": "custom.transform", "value": "negative-Y"}]}],
           "targets": [{"expr": 'rate(node_network_receive_bytes_total{' + nic + '}[$__rate_interval]) * 8', "legend": "{{instance}} {{device}} received"},
                       {"expr": 'rate(node_network_transmit_bytes_total{' + nic + '}[$__rate_interval]) * 8', "legend": "{{instance}} {{device}} sent"}]},
          {"title": "Network errors and drops", "unit": "pps", "min": 0,
           "targets": [{"expr": 'rate(node_network_receive_errs_total{' + nic + '}[$__rate_interval]) + rate(node_network_transmit_errs_total{' + nic + '}[$__rate_interval])', "legend": "{{instance}} {{device}} errors"},
                       {"expr": 'rate(node_network_receive_drop_total{' + nic + '}[$__rate_interval]) + rate(node_network_transmit_drop_total{' + nic + '}[$__rate_interval])', "legend": "{{instance}} {{device}} drops"}]},
          {"title": "TCP connections", "unit": "short", "min": 0,
           "targets": [{"expr": 'node_netstat_Tcp_CurrEstab{' + sel + '}', "legend": "{{instance}} established"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="system-overview",
        title="System Overview",
        description="CPU, memory, disk and network of the hosts node_exporter runs on; thresholds are the alert thresholds of values.yaml.",
        tags=["infrastructure", "node"],
        vars_from="node_uname_info",
        rows=rows,
    )
