"""Logs in Elasticsearch."""

from __future__ import annotations

from .builder import Dashboard

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
