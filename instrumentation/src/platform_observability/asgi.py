"""ASGI middleware for FastAPI and Starlette: request metrics labelled by route template,
a request id in the log context, and the /metrics endpoint.

Pure ASGI rather than BaseHTTPMiddleware: no extra task or body copy per request, so
the overhead stays in the microseconds (instrumentation/bench.py measures it).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Iterable

from . import context
from .metrics import CONTENT_TYPE_LATEST, HttpMetrics, http_metrics, register_live_collector, render_latest

log = logging.getLogger("platform_observability.access")

# Every request that no route matches (404s, scanners) shares this endpoint label, so
# the number of series never grows with the paths clients make up.
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _route_template(scope, path: str, root_path: str) -> str:
    # FastAPI (and Starlette >= 1.0) put the matched route here. Inside a Mount it is the
    # Mount itself or the inner route without the mount's prefix: match again then.
    route = scope.get("route")
    if route is not None and scope.get("root_path", "") == root_path and not hasattr(route, "routes"):
        return getattr(route, "path_format", None) or route.path
    app = scope.get("app")  # plain Starlette: find the route the router took
    router = getattr(app, "router", None)
    if router is None:
        return UNMATCHED
    # The router has rewritten root_path (and more) in place: match on the scope as it came in.
    original = dict(scope, path=path, root_path=root_path)
    return _match(getattr(router, "routes", ()), original, "") or UNMATCHED


def _match(routes, scope, prefix) -> str | None:
    from starlette.routing import Match, Mount

    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = dict(scope)
            inner.update(child)
            found = _match(route.routes, inner, prefix + route.path)
            return found if found is not None else prefix + route.path
        return prefix + (getattr(route, "path_format", None) or getattr(route, "path", "") or "")
    return None


class PrometheusMiddleware:
    """http_requests_total{method, endpoint, status} and
    http_request_duration_seconds{method, endpoint}; endpoint is the route template
    (`/api/items/{item_id}`), never the raw path."""

    def __init__(self, app, metrics: HttpMetrics | None = None, exclude: Iterable[str] = ()):
        self.app = app
        self.metrics = metrics or http_metrics()
        self.exclude = frozenset(exclude)
        # Label lookups cached per label set: .labels() takes a lock and builds a key on
        # every call. The cache is bounded by the number of routes x methods x statuses.
        self._counters: dict[tuple[str, str, int], object] = {}
        self._histograms: dict[tuple[str, str], object] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering
        path, root_path = scope["path"], scope.get("root_path", "")

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - start
            endpoint = _route_template(scope, path, root_path)
            if endpoint not in self.exclude:
                method = scope["method"]
                if method not in _METHODS:
                    method = "OTHER"
                self._observe(method, endpoint, status, elapsed)

    def _observe(self, method: str, endpoint: str, status: int, elapsed: float) -> None:
        key = (method, endpoint, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.requests.labels(method, endpoint, str(status))
        counter.inc()
        hkey = (method, endpoint)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = self.metrics.duration.labels(method, endpoint)
        histogram.observe(elapsed)


class RequestContextMiddleware:
    """Puts a request id (the client's X-Request-ID when well-formed, else a new one) into
    the log context and echoes it in the response. Optionally logs one JSON access line
    per request (http.request.method, url.path, http.response.status_code, event.duration)."""

    def __init__(self, app, header: str = "X-Request-ID", access_log: bool = False):
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.access_log = access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == self.header:
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = context.new_request_id()
        rid_token = context.request_id_var.set(request_id)
        uid_token = context.user_id_var.set(None)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == self.header for name, _ in headers):  # the app's own wins
                    message = dict(message, headers=headers + [(self.header, request_id.encode("latin-1"))])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log and scope["type"] == "http":
                log.info(
                    "%s %s %s", scope["method"], scope.get("path", ""), status,
                    extra={
                        "http.request.method": scope["method"],
                        "url.path": scope.get("path", ""),
                        "http.response.status_code": status,
                        "event.duration": int((time.perf_counter() - start) * 1e9),
                    },
                )
            context.request_id_var.reset(rid_token)
            context.user_id_var.reset(uid_token)


def metrics_response():
    """A Starlette Response with this process's (or all processes') metrics."""
    from starlette.responses import Response

    return Response(render_latest(), media_type=CONTENT_TYPE_LATEST)


def _metrics_endpoint(request):  # sync: Starlette runs it in its thread pool
    return metrics_response()


def track_active_users(tracker) -> None:
    """Count users passed to set_user_id() with `tracker` (InMemoryActiveUsers for one
    process, RedisActiveUsers for several) and export the count as active_users."""
    global _active_users
    from .metrics import ActiveUsersCollector, unregister_live_collector

    context.set_active_users_tracker(tracker)
    if _active_users is not None:  # one active_users family per exposition
        unregister_live_collector(_active_users)
    _active_users = ActiveUsersCollector(tracker)
    register_live_collector(_active_users)


_active_users = None


def instrument_app(
    app,
    *,
    metrics_path: str | None = "/metrics",
    request_id_header: str = "X-Request-ID",
    access_log: bool = False,
    exclude: Iterable[str] = (),
    metrics: HttpMetrics | None = None,
):
    """Add request metrics, the request-id context and (unless metrics_path is None or the
    app already routes it) a GET /metrics endpoint to a FastAPI or Starlette app.
    Call before the app starts serving."""
    from starlette.routing import Route

    app.add_middleware(PrometheusMiddleware, metrics=metrics, exclude=exclude)
    app.add_middleware(RequestContextMiddleware, header=request_id_header, access_log=access_log)
    if metrics_path is not None and not any(getattr(r, "path", None) == metrics_path for r in app.router.routes):
        app.router.routes.append(Route(metrics_path, _metrics_endpoint, methods=["GET"], include_in_schema=False))
    return app
