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


def clear_spans():
    """Forget every span so far, including those of earlier tests still queued in the
    batch processor (a plain clear() lets them arrive afterwards, depending on test order)."""
    finished_spans()
    _exporter.clear()
