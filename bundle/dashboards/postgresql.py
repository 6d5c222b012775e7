"""PostgreSQL as postgres_exporter sees it."""

from __future__ import annotations

from .. import alerts
from .builder import SELECTOR, UP_MAPPINGS, UP_STEPS, Dashboard, host_filesystems

FOLDER = "Infrastructure"
# Layers besides dashboards this one needs.
LAYERS = ()


def dashboard(values: dict) -> Dashboard:
    sel = SELECTOR
    used = 'sum by (instance) (pg_stat_database_numbackends{' + sel + '}) / on (instance) max by (instance) (pg_settings_max_connections{' + sel + '}) * 100'
    dbfs = host_filesystems() + ',mountpoint="' + alerts.settings(values)["DatabaseDiskFull"]["mountpoint"] + '"'
    rows = [
        {"title": "At a glance", "panels": [
          {"type": "stat", "title": "PostgreSQL", "steps": UP_STEPS, "mappings": UP_MAPPINGS,
           "description": "Whether postgres_exporter reaches the server.",
           "targets": [{"expr": 'min(pg_up{' + sel + '})'}]},
          {"type": "stat", "title": "Connections used", "unit": "percent", "alert": "PostgresHighConnections", "decimals": 1,
           "description": "Connections in use in percent of max_connections.",
           "targets": [{"expr": used, "legend": "{{instance}}"}]},
          {"type": "stat", "title": "Transactions", "unit": "ops",
           "targets": [{"expr": 'sum(rate(pg_stat_database_xact_commit{' + sel + '}[$__rate_interval]) + rate(pg_stat_database_xact_rollback{' + sel + '}[$__rate_interval]))'}]},
          {"type": "stat", "title": "Cache hit ratio", "unit": "percentunit", "decimals": 2,
           "steps": [{"color": "red", "value": None}, {"color": "orange", "value": 0.9}, {"color": "green", "value": 0.99}],
           "description": "Blocks found in shared buffers, since the statistics were reset.",
           "targets": [{"expr": 'sum(pg_stat_database_blks_hit{' + sel + '}) / (sum(pg_stat_database_blks_hit{' + sel + '}) + sum(pg_stat_database_blks_read{' + sel + '}))'}]},
          {"type": "stat", "title": "Database size", "unit": "bytes",
           "targets": [{"expr": 'sum(pg_database_size_bytes{' + sel + '})'}]},
          {"type": "stat", "title": "Database disk free", "unit": "percent", "alert": "DatabaseDiskFull", "below": True,
           "decimals": 1,
           "description": "Free space of the host filesystem holding the database (values.yaml alerts.DatabaseDiskFull.mountpoint), from node_exporter.",
           "targets": [{"expr": 'min(node_filesystem_avail_bytes{' + dbfs + '} / node_filesystem_size_bytes{' + dbfs + '} * 100)'}]},
        ]},
        {"title": "Connections", "panels": [
          {"title": "Connections used", "unit": "percent", "alert": "PostgresHighConnections", "min": 0, "max": 100,
           "targets": [{"expr": used, "legend": "{{instance}}"}]},
          {"title": "Connections by database", "unit": "short", "min": 0, "stack": True,
           "targets": [{"expr": 'sum by (datname) (pg_stat_database_numbackends{' + sel + '})', "legend": "{{datname}}"}]},
          {"title": "Sessions by state", "unit": "short", "min": 0, "stack": True,
           "targets": [{"expr": 'sum by (state) (pg_stat_activity_count{' + sel + '})', "legend": "{{state}}"}]},
        ]},
        {"title": "Throughput", "panels": [
          {"title": "Transactions", "unit": "ops", "min": 0,
           "targets": [{"expr": 'sum by (datname) (rate(pg_stat_database_xact_commit{' + sel + '}[$__rate_interval]))', "legend": "{{datname}} commit"},
                       {"expr": 'sum by (datname) (rate(pg_stat_database_xact_rollback{' + sel + '}[$__rate_interval]))', "legend": "{{datname}} rollback"}]},
          {"title": "Rows", "unit": "rowsps", "min": 0,
           "targets": [{"expr": 'sum(rate(pg_stat_database_tup_fetched{' + sel + '}[$__rate_interval]))', "legend": "fetched"},
                       {"expr": 'sum(rate(pg_stat_database_tup_returned{' + sel + '}[$__rate_interval]))', "legend": "returned"},
                       {"expr": 'sum(rate(pg_stat_database_tup_inserted{' + sel + '}[$__rate_interval]))', "legend": "inserted"},
                       {"expr": 'sum(rate(pg_stat_database_tup_updated{' + sel + '}[$__rate_interval]))', "legend": "updated"},
                       {"expr": 'sum(rate(pg_stat_database_tup_deleted{' + sel + '}[$__rate_interval]))', "legend": "deleted"}]},
          {"title": "Block reads", "unit": "short", "min": 0,
           "description": "Blocks per second found in shared buffers (hit) or read from disk or the OS cache (read).",
           "targets": [{"expr": 'sum(rate(pg_stat_database_blks_hit{' + sel + '}[$__rate_interval]))', "legend": "hit"},
                       {"expr": 'sum(rate(pg_stat_database_blks_read{' + sel + '}[$__rate_interval]))', "legend": "read"}]},
        ]},
        {"title": "Locks and storage", "panels": [
          {"title": "Locks by mode", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum by (mode) (pg_locks_count{' + sel + '})', "legend": "{{mode}}"}]},
          {"title": "Deadlocks and conflicts", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum(increase(pg_stat_database_deadlocks{' + sel + '}[$__rate_interval]))', "legend": "deadlocks"},
                       {"expr": 'sum(increase(pg_stat_database_conflicts{' + sel + '}[$__rate_interval]))', "legend": "conflicts"}]},
          {"title": "Database size", "unit": "bytes", "min": 0,
           "targets": [{"expr": 'sum by (datname) (pg_database_size_bytes{' + sel + '})', "legend": "{{datname}}"}]},
        ]},
    ]
    return Dashboard(
        folder=FOLDER,
        uid="postgresql",
        title="PostgreSQL",
        description="PostgreSQL as postgres_exporter sees it: connections against max_connections, transactions, rows, cache, locks and size; the connection threshold is the PostgresHighConnections alert threshold of values.yaml.",
        tags=["infrastructure", "postgresql"],
        vars_from="pg_up",
        links=[{"title": "Application", "url": "/d/application"}, {"title": "System Overview", "url": "/d/system-overview"}],
        rows=rows,
    )
