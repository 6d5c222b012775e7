"""One in-memory span exporter for the whole test session: the OpenTelemetry tracer
provider is global and can be set only once per process."""

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter = InMemorySpanExporter()


def exporter():
    return _exporter


def finished_spans():
    from platform_observability import tracing

    tracing._provider.force_flush()
    return _exporter.get_finished_spans()
