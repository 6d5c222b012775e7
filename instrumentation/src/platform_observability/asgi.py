"""ASGI middleware for FastAPI and Starlette: request metrics labelled by route template,
a request id in the log context, and the /metrics endpoint.

Pure ASGI rather than BaseHTTPMiddleware: no extra task or body copy per request, so
the overhead stays in the microseconds (instrumentation/bench.py measures it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import sys
import time
from typing import Iterable

from starlette._utils import get_route_path  # what Route.matches() matches against
from starlette.requests import ClientDisconnect
from starlette.routing import Host, Match, Mount, Route

from . import context
from .metrics import HttpMetrics, exposition_registry, http_metrics, register_live_collector

log = logging.getLogger("platform_observability.access")

# Every request that no route matches (404s, scanners) shares this endpoint label, so
# the number of series never grows with the paths clients make up.
UNMATCHED = "unmatched"
# The status of a request whose client closed the connection before the response
# started: nginx's 499 ("client closed request"), so it never counts as a server error.
CLIENT_CLOSED = 499
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def trusted_networks(spec: Iterable[str] | None) -> tuple:
    """The proxies whose X-Forwarded-For is believed: addresses or CIDR networks, from the
    argument or else TRUSTED_PROXIES (comma separated). None trusted by default."""
    if spec is None:
        spec = [s for s in os.environ.get("TRUSTED_PROXIES", "").split(",") if s.strip()]
    return tuple(ipaddress.ip_network(s.strip(), strict=False) for s in spec)


def client_ip(scope, trusted: tuple) -> str | None:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not a trusted proxy (entries left of it were
    written by the client and prove nothing)."""
    peer = (scope.get("client") or (None,))[0]
    if not trusted or peer is None or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"
            for h in value.decode("latin-1").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            if not _trusted(hop, trusted):
                return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # a proxy we trust wrote something that is no address
    return hops[0] if hops else peer


def _trusted(address: str, trusted: tuple) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in trusted)


class RouteResolver:
    """The route template of a request, resolved the way the framework's router picks the
    route: the first route that matches fully, else the first that matches the path but
    not the method (a 405), through FastAPI's included routers (their effective, prefixed
    routes) and into mounted apps (mount prefix + the inner route). Matched on the scope
    as it arrives, before routing rewrites it. A request no route takes is `unmatched`;
    one that reaches a mounted app without routes of its own (static files, a WSGI app)
    is `<mount>/{path}`, the framework's own template for a mount.

    HTTP routes are matched with their own compiled path regex and method set (what
    their `matches()` checks, without building the child scope); mounts and any other
    route kind through `matches()`. The flattened route table is built on first use and
    rebuilt (at most once a second) when a request matches nothing, so routes added
    after the first request are found.
    """

    def __init__(self):
        self._tables: dict[int, tuple[float, list]] = {}

    def __call__(self, scope) -> str:
        app = scope.get("app")
        entry = self._tables.get(id(app))
        if entry is None:
            entry = self._build(app)
        found = _resolve(entry[1], scope)
        if found is None:
            if time.monotonic() - entry[0] > 1.0:
                found = _resolve(self._build(app)[1], scope)
        return found or UNMATCHED

    def _build(self, app) -> tuple[float, list]:
        entry = (time.monotonic(), _table(getattr(app, "routes", None) or ()))
        self._tables[id(app)] = entry
        return entry


def _table(routes, prefix: str = "") -> list:
    """[(full template, path regex or None, methods, matches, inner)] in routing order;
    for an HTTP route, matches is the literal start of its template (a cheap first test);
    inner is None for an endpoint, a table for a mount with routes, True for a mounted
    app without routes."""
    try:  # FastAPI >= 0.137.2: routes of included routers with their prefixes
        from fastapi.routing import iter_route_contexts
    except ImportError:
        contexts = [(route, route) for route in routes]
    else:
        contexts = [(context, context.original_route) for context in iter_route_contexts(routes)]
    table = []
    for route, original in contexts:
        if isinstance(original, (Mount, Host)):
            mount = prefix + (getattr(route, "path_format", "") or "").removesuffix("/{path}")
            inner = getattr(route, "routes", None)
            if inner:
                table.append((mount, None, None, route.matches, _table(inner, mount)))
            else:
                table.append((mount + "/{path}", None, None, route.matches, True))
        elif isinstance(original, Route):
            # the template's literal start: a path without it cannot match the regex
            literal = route.path_format.split("{", 1)[0]
            table.append((prefix + route.path_format, route.path_regex, route.methods, literal, None))
        elif getattr(route, "path_format", None):  # another kind of route: ask it
            table.append((prefix + route.path_format, None, None, route.matches, None))
    return table


def _resolve(table, scope) -> str | None:
    path = get_route_path(scope)
    method = scope["method"]
    partial = None
    for template, regex, methods, matches, inner in table:
        if regex is not None:  # matches is the literal start of the template
            if not path.startswith(matches) or regex.match(path) is None:
                continue
            if not methods or method in methods:
                return template
            if partial is None:
                partial = template
            continue
        try:
            match, child = matches(scope)
        except Exception:  # a route that cannot judge this scope does not take it
            continue
        if match is Match.FULL:
            if inner is None or inner is True:
                return template
            return _resolve(inner, {**scope, **child})
        if match is Match.PARTIAL and partial is None and inner is None:
            partial = template
    return partial


class PrometheusMiddleware:
    """Request metrics and, with `request_id_header`, the request's log context, in one
    pure-ASGI layer (one send wrapper, one clock reading for metrics and access log).

    Metrics: http_requests_total{method, endpoint, status} and
    http_request_duration_seconds{method, endpoint}; endpoint is the route template
    (`/api/v1/items/{item_id}`, see RouteResolver), never the raw path. A request whose
    client went away before the response started (a disconnect seen by the app, a
    cancelled request task) is counted with status 499, as nginx logs it, not as a 5xx:
    it is no error of the app. An OpenTelemetry server span around the request gets the
    same template as `http.route`, so metrics and traces name the route alike.

    Request context (`request_id_header`, e.g. "X-Request-ID"): the client's request id
    when well-formed, else a new one, goes into the log context (http.request.id) and is
    echoed in the response (unless the app sets the header itself); the user id context
    starts empty. With `access_log`, as the monitoring guide's apps logged: "request
    started" (http.request.method, url.path, client.ip), then "request completed" (with
    http.response.status_code and event.duration), or "request failed" at ERROR with the
    exception when the app raised. client.ip is the peer's address, or, behind proxies
    listed in `trusted_proxies` (default TRUSTED_PROXIES), the address they forwarded.
    """

    def __init__(self, app, metrics: HttpMetrics | None = None, exclude: Iterable[str] = (), *,
                 request_id_header: str | None = None, access_log: bool = False,
                 trusted_proxies: Iterable[str] | None = None):
        self.app = app
        self.metrics = metrics or http_metrics()
        self.exclude = frozenset(exclude)
        self.header = request_id_header.lower().encode("latin-1") if request_id_header else None
        self.access_log = access_log
        self.trusted = trusted_networks(trusted_proxies)
        self.resolve = RouteResolver()
        self._disconnects = (asyncio.CancelledError, ClientDisconnect)
        # Label lookups cached per label set: .labels() takes a lock and builds a key on
        # every call. The cache is bounded by the number of routes x methods x statuses.
        self._counters: dict[tuple[str, str, int], object] = {}
        self._histograms: dict[tuple[str, str], object] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket" and self.header is not None:
                tokens = self._enter(scope)
                try:
                    await self.app(scope, receive, send)
                finally:
                    self._leave(tokens)
            else:
                await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        endpoint = self.resolve(scope)
        span = _server_span() if endpoint is not UNMATCHED else None
        header = self.header
        if header is not None:
            tokens = self._enter(scope)
            request_id = tokens[2]
            if self.access_log:
                fields = {"http.request.method": scope["method"], "url.path": scope["path"],
                          "client.ip": client_ip(scope, self.trusted)}
                log.info("request started", extra=fields)
        status = 0
        gone = False

        async def send_status(message):
            nonlocal status, gone
            if message["type"] == "http.response.start":
                status = message["status"]
                if header is not None:
                    message = _with_header(message, header, request_id)
                if span is not None:  # the span may end with the body: name it now
                    _name_span(span, scope["method"], endpoint)
            try:
                await send(message)
            except OSError:
                gone = True
                raise

        async def watch_receive():
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        try:
            await self.app(scope, watch_receive, send_status)
        except self._disconnects:
            gone = True
            raise
        except Exception:
            if header is not None and self.access_log:
                log.error("request failed", exc_info=True,
                          extra={**fields, "event.duration": int((time.perf_counter() - start) * 1e9)})
            raise
        finally:
            elapsed = time.perf_counter() - start
            if not status:  # no response started: the client left, or the app failed
                status = CLIENT_CLOSED if gone else 500
                if span is not None:
                    _name_span(span, scope["method"], endpoint)
            if endpoint not in self.exclude:
                method = scope["method"]
                if method not in _METHODS:
                    method = "OTHER"
                self._observe(method, endpoint, status, elapsed)
            if header is not None:
                if self.access_log:
                    log.info("request completed", extra={**fields, "http.response.status_code": status,
                                                         "event.duration": int(elapsed * 1e9)})
                self._leave(tokens)

    def _enter(self, scope):
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == self.header:
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = context.new_request_id()
        return context.request_id_var.set(request_id), context.user_id_var.set(None), request_id.encode("latin-1")

    @staticmethod
    def _leave(tokens) -> None:
        context.request_id_var.reset(tokens[0])
        context.user_id_var.reset(tokens[1])

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


def _with_header(message, header: bytes, value: bytes):
    headers = message.get("headers", ())
    for name, _ in headers:
        if name == header:  # the app's own wins (ASGI header names are lowercase)
            return message
    return {**message, "headers": [*headers, (header, value)]}


def _server_span():
    """The recording OpenTelemetry span around this middleware (the server span of a
    traced app), or None."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span = trace.get_current_span()
    return span if span.is_recording() else None


def _name_span(span, method: str, endpoint: str) -> None:
    """Give the server span our route template, so metrics and traces name a request's
    route alike: contrib's FastAPI instrumentation names a request to a mounted app by
    the mount alone (`/sub`)."""
    if span.is_recording():
        span.set_attribute("http.route", endpoint)
        span.update_name(f"{method} {endpoint}")


class MetricsApp:
    """GET /metrics as an ASGI app: prometheus_client's make_asgi_app (text or OpenMetrics
    by the Accept header, gzip, `name[]` filtering) over exposition_registry(). A class,
    not a function, so Starlette's Route mounts it as an ASGI app, not as an endpoint."""

    def __init__(self, registry=None):
        from prometheus_client import make_asgi_app

        self._app = make_asgi_app(registry if registry is not None else exposition_registry())

    async def __call__(self, scope, receive, send):
        await self._app(scope, receive, send)


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
    trusted_proxies: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    metrics: HttpMetrics | None = None,
):
    """Add request metrics, the request-id log context (PrometheusMiddleware) and, unless
    metrics_path is None or the app already routes it, GET /metrics (MetricsApp) to a
    FastAPI or Starlette app. Call before the app starts serving."""
    app.add_middleware(PrometheusMiddleware, metrics=metrics, exclude=exclude,
                       request_id_header=request_id_header, access_log=access_log,
                       trusted_proxies=trusted_proxies)
    if metrics_path is not None and not any(getattr(r, "path", None) == metrics_path for r in app.router.routes):
        app.router.routes.append(Route(metrics_path, MetricsApp(), methods=["GET"], include_in_schema=False))
    return app
