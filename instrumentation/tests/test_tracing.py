"""OpenTelemetry: FastAPI spans, trace ids in the JSON logs; Elastic APM as an option."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from conftest import subprocess_env
from platform_observability import instrument_app
from ecs_logging import StdlibFormatter

from platform_observability.logs import CorrelationFilter
from platform_observability.metrics import HttpMetrics

pytest.importorskip("opentelemetry.sdk")


def capture(name: str):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StdlibFormatter())
    handler.addFilter(CorrelationFilter("svc"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_fastapi_spans_and_trace_ids_in_logs(registry):
    from tracing_helpers import clear_spans, exporter, finished_spans

    from platform_observability.tracing import configure_tracing

    logger, stream = capture("traced")
    app = FastAPI()

    @app.get("/api/items/{item_id}")
    def item(item_id: int):
        logger.info("inside")
        return {}

    instrument_app(app, metrics=HttpMetrics(registry))
    enabled = configure_tracing("svc", app=app, exporter=exporter(), redis=False)
    assert enabled["fastapi"]
    clear_spans()
    TestClient(app).get("/api/items/3", headers={"X-Request-ID": "r-9"})
    doc = json.loads(stream.getvalue())
    spans = [s for s in finished_spans() if s.attributes.get("http.route") == "/api/items/{item_id}"]
    assert spans, [s.name for s in finished_spans()]
    assert doc["trace"]["id"] == format(spans[0].context.trace_id, "032x")
    assert len(doc["span"]["id"]) == 16
    assert doc["http"]["request"]["id"] == "r-9"


def test_metric_route_equals_span_http_route(registry):
    """Routers at two prefixes, nested routers, a mounted FastAPI and a mounted Starlette
    app: the metric's endpoint and the server span's http.route are the same template."""
    from prometheus_client import generate_latest
    from test_http_metrics import ROUTED, routed_app
    from tracing_helpers import clear_spans, exporter, finished_spans

    from conftest import value
    from platform_observability.tracing import configure_tracing

    app = routed_app()
    instrument_app(app, metrics=HttpMetrics(registry))
    configure_tracing("svc", app=app, exporter=exporter(), redis=False)
    client = TestClient(app)
    for path, template in ROUTED:
        clear_spans()
        assert client.get(path).status_code == 200
        servers = [s for s in finished_spans() if s.kind.name == "SERVER" and s.attributes.get("url.path", s.attributes.get("http.target")) == path]
        assert servers, [(s.name, dict(s.attributes)) for s in finished_spans()]
        assert servers[0].attributes["http.route"] == template, path
        assert servers[0].name == f"GET {template}"
        assert value(generate_latest(registry), "http_requests_total", endpoint=template, status="200") == 1


def test_fastapi_excluded_urls_variable_is_honoured(monkeypatch, registry):
    from tracing_helpers import clear_spans, exporter, finished_spans

    from platform_observability.tracing import configure_tracing

    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/quiet")
    app = FastAPI()

    @app.get("/quiet")
    def quiet():
        return {}

    @app.get("/health")
    def health():
        return {}

    instrument_app(app, metrics=HttpMetrics(registry))
    configure_tracing("svc", app=app, exporter=exporter(), redis=False)
    clear_spans()
    client = TestClient(app)
    client.get("/quiet")
    client.get("/health")  # excluded by default only: the variable replaces the default
    routes = {s.attributes.get("http.route") for s in finished_spans() if s.kind.name == "SERVER"}
    assert routes == {"/health"}


def test_otlp_exporter_posts_protobuf_to_v1_traces():
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from platform_observability.tracing import otlp_exporter

    received = []

    class Collector(BaseHTTPRequestHandler):  # stands in for Jaeger v2's OTLP/HTTP receiver
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        provider = TracerProvider()  # local, not the global one
        provider.add_span_processor(SimpleSpanProcessor(otlp_exporter(f"http://127.0.0.1:{server.server_port}/")))
        with provider.get_tracer("t").start_as_current_span("unit-of-work"):
            pass
        provider.shutdown()
    finally:
        server.shutdown()
    assert received and received[0][0] == "/v1/traces"
    assert received[0][1] == "application/x-protobuf" and b"unit-of-work" in received[0][2]


def test_no_trace_fields_outside_a_span():
    logger, stream = capture("untraced")
    logger.info("outside")
    assert "trace" not in json.loads(stream.getvalue())


# One app, logging and a tracer set up in the order given, in a fresh process each (the
# tracer provider, the APM agent and its log record factory are process-wide). Prints
# the log line written inside a request handler, inside a span of its own for OTel.
CORRELATION = textwrap.dedent("""
    import io, json, logging, sys
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from platform_observability import configure_logging, instrument_app

    tracer_kind, order = sys.argv[1], sys.argv[2]
    stream = io.StringIO()
    app = FastAPI()
    seen = {}

    @app.get("/work")
    def work():
        if tracer_kind == "otel":
            from opentelemetry import trace

            server = trace.get_current_span().get_span_context()
            seen["transaction"] = format(server.span_id, "016x")
            with trace.get_tracer("t").start_as_current_span("child") as child:
                seen["span"] = format(child.get_span_context().span_id, "016x")
                seen["trace"] = format(child.get_span_context().trace_id, "032x")
                logging.getLogger("app").info("inside")
        else:
            import elasticapm

            seen["trace"] = elasticapm.get_trace_id()
            seen["transaction"] = elasticapm.get_transaction_id()
            logging.getLogger("app").info("inside")
        return {}

    def logs():
        configure_logging("svc", stream=stream, logstash="")

    def tracer():
        if tracer_kind == "otel":
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            from platform_observability.tracing import configure_tracing

            configure_tracing("svc", app=app, exporter=InMemorySpanExporter(), redis=False)
        else:
            from platform_observability.tracing import configure_apm

            seen["client"] = configure_apm(app, service_name="svc", disable_send=True, central_config=False,
                                           cloud_provider="none", instrument=False)

    for step in (logs, tracer) if order == "logs-first" else (tracer, logs):
        step()
    instrument_app(app)
    TestClient(app).get("/work")
    line = next(l for l in stream.getvalue().splitlines() if '"inside"' in l)
    seen.pop("client", None)
    print(json.dumps({"line": json.loads(line), "seen": seen}))
""")


@pytest.mark.parametrize("order", ["logs-first", "tracer-first"])
@pytest.mark.parametrize("tracer", ["otel", "apm"])
def test_trace_transaction_and_span_ids_in_logs_whatever_the_order(tracer, order):
    if tracer == "apm":
        pytest.importorskip("elasticapm")
    out = subprocess.run([sys.executable, "-c", CORRELATION, tracer, order], env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    line, seen = result["line"], result["seen"]
    assert line["trace"]["id"] == seen["trace"] and len(seen["trace"]) == 32
    assert line["transaction"]["id"] == seen["transaction"] and len(seen["transaction"]) == 16
    # OTel: the child span the line was written in; APM: no span open, the transaction is it
    assert line["span"]["id"] == seen.get("span", seen["transaction"])
    assert line["http"]["request"]["id"]
    assert not [key for key in line if key.startswith("elasticapm")], sorted(line)
    assert line["service"]["name"] == "svc"


# --------------------------------------------------------------------------- manual spans


def test_the_readmes_manual_span_example_nests_its_spans(registry):
    """instrumentation/README.md, manual spans: the guide's process_lecture example."""
    pytest.importorskip("opentelemetry.sdk")
    import asyncio

    from tracing_helpers import exporter, finished_spans

    from platform_observability.tracing import configure_tracing

    configure_tracing("svc", exporter=exporter(), redis=False)
    from opentelemetry import trace

    tracer = trace.get_tracer("lectures")

    async def extract_text(lecture_id):
        return "text"

    async def generate_embeddings(text):
        return [0.1]

    async def store_embeddings(embeddings):
        return None

    async def process_lecture(lecture_id: int):
        with tracer.start_as_current_span("process_lecture") as span:
            span.set_attribute("lecture_id", lecture_id)
            with tracer.start_as_current_span("ocr_extraction"):
                text = await extract_text(lecture_id)
            with tracer.start_as_current_span("generate_embeddings"):
                embeddings = await generate_embeddings(text)
            with tracer.start_as_current_span("store_embeddings"):
                await store_embeddings(embeddings)
            return {"status": "processed"}

    assert asyncio.run(process_lecture(42)) == {"status": "processed"}
    spans = {s.name: s for s in finished_spans() if s.name in
             ("process_lecture", "ocr_extraction", "generate_embeddings", "store_embeddings")}
    parent = spans["process_lecture"]
    assert parent.attributes["lecture_id"] == 42
    for child in ("ocr_extraction", "generate_embeddings", "store_embeddings"):
        assert spans[child].parent.span_id == parent.context.span_id
        assert spans[child].context.trace_id == parent.context.trace_id
