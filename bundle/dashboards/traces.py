"""Traces in Jaeger."""

from __future__ import annotations

from .builder import Dashboard

FOLDER = "Operations"
# Layers besides dashboards this one needs.
LAYERS = ('tracing',)


def dashboard(values: dict) -> Dashboard:
    jaeger = values["grafana"]["datasources"]["jaeger"]
    # Replaces the table's own link (open the trace in Explore), so that one comes first.
    id_links = [
        {"title": "Open in Explore", "url": "", "internal": {"datasourceUid": jaeger["uid"], "datasourceName": jaeger["name"], "query": {"query": "${__value.raw}"}}},
        {"title": "Show this trace below", "url": "/d/traces?var-service=${service}&var-trace_id=${__value.raw}&${__url_time_range}"},
    ]
    if values["layers"]["logs"]:
        id_links.append({"title": "Logs of this trace", "url": "/d/logs?var-query=trace.id:${__value.raw}&${__url_time_range}"})
    rows = [
        {"title": "Find a trace", "panels": [
          {"type": "table", "title": "Recent traces of $service", "ds": "jaeger", "w": 14, "h": 10,
           "description": "The newest traces of the service. Click a trace ID to open it here or its logs.",
           "overrides": [{"matcher": {"id": "byName", "options": "traceID"}, "properties": [{"id": "links", "value": id_links}]}],
           "targets": [{"queryType": "search", "service": "$service", "limit": 20}]},
          {"type": "nodeGraph", "title": "Service dependencies", "ds": "jaeger", "w": 10, "h": 10,
           "targets": [{"queryType": "dependencyGraph"}]},
        ]},
        {"title": "Trace", "panels": [
          {"type": "traces", "title": "Trace $trace_id", "ds": "jaeger", "h": 16,
           "description": "The trace chosen in the table above" + ("; a span's logs button opens its lines in Elasticsearch." if values["layers"]["logs"] else "."),
           "targets": [{"query": "$trace_id"}]},
        ]},
    ]
    variables = [
        {"name": "service", "label": "Service", "type": "textbox", "query": "api-gateway", "current": {"text": "api-gateway", "value": "api-gateway"}, "options": [{"selected": True, "text": "api-gateway", "value": "api-gateway"}], "hide": 0,
         "description": "Service name as the app reports it to Jaeger (OpenTelemetry service.name)."},
        {"name": "trace_id", "label": "Trace ID", "type": "textbox", "query": "", "current": {"text": "", "value": ""}, "options": [{"selected": True, "text": "", "value": ""}], "hide": 0,
         "description": "Set by the links in the table."},
    ]
    links = [{"title": "Application", "url": "/d/application"}]
    if values["layers"]["logs"]:
        links.append({"title": "Logs", "url": "/d/logs"})
    return Dashboard(
        folder=FOLDER,
        uid="traces",
        title="Traces",
        description="Traces in Jaeger: find one by service, see the service graph, read a trace and jump to its logs by trace id. Latency panels of the Application dashboard link here through their exemplars.",
        tags=["traces"],
        variables=variables,
        links=links,
        rows=rows,
    )
