"""Logs in Elasticsearch."""

from __future__ import annotations

from .builder import UP_MAPPINGS, UP_STEPS, Dashboard

FOLDER = "Operations"
# Layers besides dashboards this one needs.
LAYERS = ('logs',)


def dashboard(values: dict) -> Dashboard:
    histogram = {"id": "3", "type": "date_histogram", "field": "@timestamp", "settings": {"interval": "auto", "min_doc_count": "0", "trimEdges": "0"}}
    by_level = {"id": "2", "type": "terms", "field": "log.level", "settings": {"size": "10", "order": "desc", "orderBy": "_count", "min_doc_count": "1"}}
    by_service = {"id": "2", "type": "terms", "field": "service.name", "settings": {"size": "10", "order": "desc", "orderBy": "_count", "min_doc_count": "1"}}
    rows = [
        {"title": "Volume", "panels": [
          {"title": "Log lines by level", "ds": "elasticsearch", "unit": "short", "stack": True, "w": 12,
           "targets": [{"query": "$query", "queryType": "lucene", "metrics": [{"id": "1", "type": "count"}], "bucketAggs": [by_level, histogram], "timeField": "@timestamp"}]},
          {"title": "Errors by service", "ds": "elasticsearch", "unit": "short", "stack": True, "w": 12,
           "targets": [{"query": "(" + "$query" + ") AND log.level:(error OR ERROR OR critical OR CRITICAL)", "queryType": "lucene", "metrics": [{"id": "1", "type": "count"}], "bucketAggs": [by_service, histogram], "timeField": "@timestamp"}]},
        ]},
        {"title": "Shipping from the apps", "panels": [
          {"type": "stat", "title": "Shippers connected", "steps": UP_STEPS, "mappings": UP_MAPPINGS,
           "description": "Whether every app process that logs is connected to Logstash (instrumentation/, log_shipper_connected).",
           "targets": [{"expr": 'min(log_shipper_connected)'}]},
          {"title": "Lines dropped", "unit": "short", "min": 0,
           "description": "Lines the apps' shippers gave up on, per second, by reason: they never reach Elasticsearch (alert LogShipperDroppingLines).",
           "steps": [{"color": "green", "value": None}, {"color": "red", "value": 0.000001}],
           "targets": [{"expr": 'sum by (job, reason) (rate(log_shipper_dropped_lines_total[$__rate_interval]))', "legend": "{{job}} {{reason}}"}]},
          {"title": "Lines sent", "unit": "short", "min": 0,
           "targets": [{"expr": 'sum by (job) (rate(log_shipper_sent_lines_total[$__rate_interval]))', "legend": "{{job}}"}]},
          {"title": "Waiting to be sent", "unit": "bytes", "min": 0,
           "description": "Bytes the shippers hold in memory or on disk until Logstash takes them.",
           "targets": [{"expr": 'sum by (job, buffer) (log_shipper_buffered_bytes)', "legend": "{{job}} {{buffer}}"}]},
        ]},
        {"title": "Lines", "panels": [
          {"type": "logs", "title": "Log lines", "ds": "elasticsearch", "h": 18,
           "description": "Newest first. A line's trace.id links to its trace in Jaeger" + (" (tracing layer)." if values["layers"]["tracing"] else "; turn on the tracing layer to follow it."),
           "options": {"showTime": True, "showLabels": False, "showCommonLabels": False, "wrapLogMessage": True, "prettifyLogMessage": False, "enableLogDetails": True, "dedupStrategy": "none", "sortOrder": "Descending"},
           "targets": [{"query": "$query", "queryType": "lucene", "metrics": [{"id": "1", "type": "logs"}], "bucketAggs": [], "timeField": "@timestamp"}]},
        ]},
    ]
    query_var = {"name": "query", "label": "Lucene query", "type": "textbox", "query": "*", "current": {"text": "*", "value": "*"}, "options": [{"selected": True, "text": "*", "value": "*"}], "hide": 0,
                 "description": "Filters every panel, e.g. service.name:api-gateway AND log.level:error, or trace.id:<id> for one trace's lines."}
    links = [{"title": "Traces", "url": "/d/traces"}] if values["layers"]["tracing"] else []
    return Dashboard(
        folder=FOLDER,
        uid="logs",
        title="Logs",
        description="The platform's logs in Elasticsearch (data stream logs-" + values["logstash"]["data_stream"]["dataset"] + "-*), as Logstash ships them. The trace view links here with query trace.id:<id>.",
        tags=["logs"],
        variables=[query_var],
        links=links + [{"title": "Application", "url": "/d/application"}],
        rows=rows,
    )
