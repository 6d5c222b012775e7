"""Tracing with OpenTelemetry over OTLP (Jaeger v2 takes OTLP natively), or the Elastic
APM agent. Every import is lazy: without the `tracing`/`apm` extras nothing here loads,
and a missing instrumentation package disables that one instrumentation with a warning.

The exporter follows the standard OTEL_* environment variables
(OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://jaeger:4318; OTEL_SERVICE_NAME; ...).
https://opentelemetry.io/docs/languages/sdk-configuration/otlp-exporter/
"""

from __future__ import annotations

import importlib
import logging
import os

log = logging.getLogger(__name__)

_provider = None


def configure_tracing(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    app=None,
    engine=None,
    redis: bool = True,
    celery: bool = False,
    exporter=None,
) -> dict[str, bool]:
    """Set up an OpenTelemetry tracer provider exporting over OTLP/HTTP, then instrument
    what is given: the FastAPI `app`, the SQLAlchemy `engine`, Redis clients, Celery.
    Returns which instrumentations are active. Safe to call more than once.

    Celery prefork: call it in the worker at import (the SDK's batch processor restarts
    its thread in each forked child) with celery=True.
    """
    global _provider
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    enabled: dict[str, bool] = {}
    if _provider is None:
        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "unknown_service"
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(transaction_ids())
        provider.add_span_processor(BatchSpanProcessor(exporter or otlp_exporter(endpoint)))
        trace.set_tracer_provider(provider)
        _provider = provider
    enabled["provider"] = True

    def attempt(name, fn):
        try:
            enabled[name] = fn() is not False
        except ImportError as exc:
            log.warning("tracing: %s instrumentation unavailable (%s)", name, exc)
            enabled[name] = False

    def supported(name: str, instrumentor) -> bool:
        """Contrib instrumentations declare the library versions they support and skip,
        silently, any other (e.g. SQLAlchemy 2.1 for opentelemetry-instrumentation-sqlalchemy
        0.66b2): say so, and report the instrumentation as off."""
        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

        conflict = get_dependency_conflicts(instrumentor.instrumentation_dependencies())
        if conflict is not None:
            log.warning("tracing: %s instrumentation off: %s", name, conflict)
        return conflict is None

    if app is not None:
        def fastapi():
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

            # The scrape and health checks are no traces, unless the standard variables say
            # otherwise (read here: contrib reads them once, when it is first imported).
            excluded = (os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS")
                        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS") or "/metrics,/health")
            if not supported("fastapi", FastAPIInstrumentor()):
                return False
            FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=excluded)
        attempt("fastapi", fastapi)
    if engine is not None:
        def sqlalchemy():
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            instrumentor = SQLAlchemyInstrumentor()
            if not supported("sqlalchemy", instrumentor):
                return False
            instrumentor.instrument(engine=engine, tracer_provider=_provider)
        attempt("sqlalchemy", sqlalchemy)


    def global_instrumentor(module: str, cls: str):
        """Instrument a library process-wide, once (Redis, Celery)."""
        def instrument():
            instrumentor = getattr(importlib.import_module(module), cls)()
            if not supported(cls.removesuffix("Instrumentor").lower(), instrumentor):
                return False
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=_provider)
        return instrument

    if redis:
        attempt("redis", global_instrumentor("opentelemetry.instrumentation.redis", "RedisInstrumentor"))
    if celery:
        attempt("celery", global_instrumentor("opentelemetry.instrumentation.celery", "CeleryInstrumentor"))
    return enabled


def transaction_ids():
    """A span processor keeping, for each span in progress, the id of its trace's first
    span in this process (the server span of a request, a task's span): Elastic's
    `transaction.id`, which the JSON logs carry (logs.CorrelationFilter)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    from .logs import local_roots

    class _TransactionIds(SpanProcessor):
        def on_start(self, span, parent_context=None):
            span_id = span.get_span_context().span_id
            parent = trace.get_current_span(parent_context).get_span_context()
            if parent.is_valid and not parent.is_remote:
                local_roots[span_id] = local_roots.get(parent.span_id, parent.span_id)
            else:
                local_roots[span_id] = span_id

        def on_end(self, span):
            local_roots.pop(span.get_span_context().span_id, None)

    return _TransactionIds()


def otlp_exporter(endpoint: str | None = None):
    """OTLP over HTTP/protobuf to `endpoint` (the collector's base URL, e.g.
    http://jaeger:4318), else to OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT as the SDK reads them."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint:
        return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    return OTLPSpanExporter()


def shutdown_tracing() -> None:
    """Flush and stop the exporter (call at shutdown so the last spans are sent)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def configure_apm(app=None, *, service_name: str | None = None, server_url: str | None = None,
                  celery: bool = False, **config):
    """Elastic APM agent instead of OpenTelemetry: instruments the Starlette/FastAPI `app`
    (and Celery tasks with celery=True); the JSON logs then carry its trace ids.
    ELASTIC_APM_* environment variables work as usual (e.g. ELASTIC_APM_SECRET_TOKEN)."""
    import elasticapm
    from elasticapm.contrib.starlette import ElasticAPM, make_apm_client

    settings = {k.upper(): v for k, v in config.items()}
    if service_name:
        settings["SERVICE_NAME"] = service_name
    if server_url:
        settings["SERVER_URL"] = server_url
    client = make_apm_client(settings)
    if app is not None:
        app.add_middleware(ElasticAPM, client=client)
    if celery:
        from elasticapm.contrib.celery import register_exception_tracking, register_instrumentation

        register_exception_tracking(client)
        register_instrumentation(client)
    elasticapm.instrument()
    return client
