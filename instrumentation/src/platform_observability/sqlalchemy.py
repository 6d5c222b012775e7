"""Slow query logging from SQLAlchemy engine events.

Every statement that takes longer than the threshold is logged as a warning with
`event.duration` (nanoseconds, ECS), `db.system`, and `db.statement` (without its
parameters unless asked: they may hold personal data), and counted in
db_slow_queries_total. The threshold comes from the argument, else the
SLOW_QUERY_THRESHOLD_MS environment variable, else 1000 ms (the monitoring guide's 1 s).
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("platform_observability.slow_query")

_counter = None


def _slow_counter():
    global _counter
    if _counter is None:
        from prometheus_client import Counter

        _counter = Counter("db_slow_queries_total", "SQL statements slower than the slow-query threshold", ["db_system"])
    return _counter


def log_slow_queries(engine, threshold_ms: float | None = None, *, include_parameters: bool = False,
                     max_statement_length: int = 2000, logger: logging.Logger | None = None):
    """Listen on `engine` (an Engine, AsyncEngine, or the Engine class for all engines)."""
    from sqlalchemy import event

    if threshold_ms is None:
        threshold_ms = float(os.environ.get("SLOW_QUERY_THRESHOLD_MS", "1000"))
    threshold = threshold_ms / 1000.0
    out = logger or log
    target = getattr(engine, "sync_engine", engine)  # AsyncEngine wraps a sync one

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("_obs_query_start", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        stack = conn.info.get("_obs_query_start")
        if not stack:
            return
        elapsed = time.perf_counter() - stack.pop()
        if elapsed < threshold:
            return
        system = conn.dialect.name
        fields = {
            "event.duration": int(elapsed * 1e9),
            "db.system": system,
            "db.statement": statement[:max_statement_length],
            "db.operation.batch": bool(executemany),
        }
        if include_parameters:
            fields["db.parameters"] = repr(parameters)[:max_statement_length]
        try:
            _slow_counter().labels(system).inc()
        except Exception:
            pass
        out.warning("slow query: %.1f ms (threshold %.0f ms)", elapsed * 1000, threshold_ms, extra=fields)

    def on_error(exception_context):
        conn = exception_context.connection
        if conn is not None:
            stack = conn.info.get("_obs_query_start")
            if stack:
                stack.pop()

    event.listen(target, "before_cursor_execute", before)
    event.listen(target, "after_cursor_execute", after)
    event.listen(target, "handle_error", on_error)
    return target
