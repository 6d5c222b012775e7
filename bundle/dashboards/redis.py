"""Redis as redis_exporter sees it."""

from __future__ import annotations

from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Infrastructure"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "Redis", "steps": UP_STEPS, "mappings": UP_MAPPINGS,
           "description": "Whether redis_exporter reaches Redis; the RedisDown alert fires when it does not.",
           "targets": [{"expr": 'min(redis_up{' + sel + '})'}]},
          {"type": "stat", "title": "Uptime", "unit": "s",
           "targets": [{"expr": 'min(redis_uptime_in_seconds{' + sel + '})'}]},
          {"type": "stat", "title": "Clients", "unit": "short",
           "targets": [{"expr": 'sum(redis_connected_clients{' + sel + '})'}]},
          {"type": "stat", "title": "Memory used", "unit": "bytes",
           "targets": [{"expr": 'sum(redis_memory_used_bytes{' + sel + '})'}]},
          {"type": "stat", "title": "Commands", "unit": "ops",
           "targets": [{"expr": 'sum(rate(redis_commands_processed_total{' + sel + '}[$__rate_interval]))'}]},
          {"type": "stat", "title": "Keys", "unit": "short",
           "targets": [{"expr": 'sum(redis_db_keys{' + sel + '})'}]},
        ]},
        {"title": "Commands", "panels": [
          {"title": "Commands per second", "unit": "ops", "min": 0,
           "targets": [{"expr": 'sum by (instance) (rate(redis_commands_processed_total{' + sel + '}[$__rate_interval]))', "legend": "{{instance}}"}]},
          {"title": "Top commands", "unit": "ops", "min": 0,
           "targets": [{"expr": 'topk(10, sum by (cmd) (rate(redis_commands_total{' + sel + '}[$__rate_interval])))', "legend": "{{cmd}}"}]},
          {"title": "Keyspace hit ratio", "unit": "percentunit", "min": 0, "max": 1,
           "description": "Key lookups that found their key, since Redis started.",
           "targets": [{"expr": 'sum by (instance) (redis_keyspace_hits_total{' + sel + '}) / (sum by (instance) (redis_keyspace_hits_total{' + sel + '}) + sum by (instance) (redis_keyspace_misses_total{' + sel + '}))', "legend": "{{instance}}"}]},
        ]},
        {"title": "Memory and keys", "panels": [
          {"title": "Memory", "unit": "bytes", "min": 0,
           "description": "Memory Redis uses, its resident size, and maxmemory (0: no limit).",
           "targets": [{"expr": 'redis_memory_used_bytes{' + sel + '}', "legend": "{{instance}} used"},
                       {"expr": 'redis_memory_used_rss_bytes{' + sel + '}', "legend": "{{instance}} resident"},
                       {"expr": 'redis_memory_max_bytes{' + sel + '}', "legend": "{{instance}} maxmemory"}]},
          {"title": "Keys by database", "unit": "short", "min": 0, "stack": True,
           "targets": [{"expr": 'sum by (db) (redis_db_keys{' + sel + '})', "legend": "{{db}}"}]},
          {"title": "Expired and evicted keys", "unit": "ops", "min": 0,
           "targets": [{"expr": 'sum(rate(redis_expired_keys_total{' + sel + '}[$__rate_interval]))', "legend": "expired"},
                       {"expr": 'sum(rate(redis_evicted_keys_total{' + sel + '}[$__rate_interval]))', "legend": "evicted"}]},
        ]},
        {"title": "Clients and network", "panels": [
          {"title": "Clients", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum by (instance) (redis_connected_clients{' + sel + '})', "legend": "{{instance}} connected"},
                       {"expr": 'sum by (instance) (redis_blocked_clients{' + sel + '})', "legend": "{{instance}} blocked"}]},
          {"title": "Network", "unit": "Bps",
           "overrides": [{"matcher": {"id": "byRegexp", "options": ".* out"}, "properties": [{"id": "custom.transform", "value": "negative-Y"}]}],
           "targets": [{"expr": 'sum by (instance) (rate(redis_net_input_bytes_total{' + sel + '}[$__rate_interval]))', "legend": "{{instance}} in"},
                       {"expr": 'sum by (instance) (rate(redis_net_output_bytes_total{' + sel + '}[$__rate_interval]))', "legend": "{{instance}} out"}]},
          {"title": "Rejected connections", "unit": "short", "min": 0,
           "description": "Connections refused because maxclients was reached.",
           "targets": [{"expr": 'sum(increase(redis_rejected_connections_total{' + sel + '}[$__rate_interval]))', "legend": "rejected"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="redis",
        title="Redis",
        description="Redis (the Celery broker and caches) as redis_exporter sees it: availability, commands, memory, keys, clients and network.",
        tags=["infrastructure", "redis"],
        vars_from="redis_up",
        links=[{"title": "Celery", "url": "/d/celery"}, {"title": "System Overview", "url": "/d/system-overview"}],
        rows=rows,
    )
