"""Reference instrumentation for the Python platform the observability bundle watches.

    from platform_observability import configure_logging, instrument_app
    configure_logging("api-gateway")
    instrument_app(app)                   # http_requests_total, ..., GET /metrics

Submodules: metrics (names and /metrics), asgi (FastAPI/Starlette), celery, logs,
tracing, sqlalchemy, context. Only prometheus_client is imported eagerly.
"""

from .context import InMemoryActiveUsers, RedisActiveUsers, get_request_id, get_user_id, set_user_id
from .logs import CorrelationFilter, TcpJsonLinesHandler, configure_logging
from .metrics import business_metrics, exposition_registry, http_metrics, task_metrics

__version__ = "0.2.0"  # the package version (pyproject.toml reads it from here)


def instrument_app(app, **kwargs):
    """See platform_observability.asgi.instrument_app."""
    from .asgi import instrument_app as _instrument_app

    return _instrument_app(app, **kwargs)


def instrument_celery(app, **kwargs):
    """See platform_observability.celery.instrument_celery."""
    from .celery import instrument_celery as _instrument_celery

    return _instrument_celery(app, **kwargs)


__all__ = [
    "InMemoryActiveUsers", "RedisActiveUsers", "CorrelationFilter", "TcpJsonLinesHandler",
    "business_metrics", "configure_logging", "get_request_id", "get_user_id", "http_metrics",
    "instrument_app", "instrument_celery", "exposition_registry", "set_user_id", "task_metrics",
]
