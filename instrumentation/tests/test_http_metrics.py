"""Names, labels and values of the HTTP metrics the alerts read; bounded cardinality."""

from __future__ import annotations

import time

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from conftest import samples, value
from platform_observability.asgi import UNMATCHED, PrometheusMiddleware, instrument_app
from platform_observability.metrics import HttpMetrics


def make_app(registry):
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/api/items/{item_id}")
    def item(item_id: int):
        return {"item": item_id}

    @app.get("/api/fail")
    def fail():
        raise HTTPException(status_code=503, detail="failing on purpose")

    @app.get("/api/crash")
    def crash():
        raise RuntimeError("boom")

    instrument_app(app, metrics=HttpMetrics(registry))
    return app


def test_names_labels_and_status_strings(registry):
    client = TestClient(make_app(registry), raise_server_exceptions=False)
    assert client.get("/api/items/1").status_code == 200
    assert client.get("/api/items/2").status_code == 200
    assert client.get("/api/fail").status_code == 503
    assert client.get("/api/crash").status_code == 500
    text = generate_latest(registry)
    assert value(text, "http_requests_total", method="GET", endpoint="/api/items/{item_id}", status="200") == 2
    assert value(text, "http_requests_total", method="GET", endpoint="/api/fail", status="503") == 1
    assert value(text, "http_requests_total", method="GET", endpoint="/api/crash", status="500") == 1
    names = {n for n, _, _ in samples(text)}
    assert {"http_requests_total", "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_count", "http_request_duration_seconds_sum"} <= names
    for name, labels, _ in samples(text):
        if name == "http_requests_total":
            assert set(labels) == {"method", "endpoint", "status"}
        if name == "http_request_duration_seconds_bucket":
            assert set(labels) == {"method", "endpoint", "le"}
    assert value(text, "http_request_duration_seconds_count", method="GET", endpoint="/api/items/{item_id}") == 2
    assert value(text, "http_request_duration_seconds_bucket", method="GET", endpoint="/api/fail", le="+Inf") == 1


def test_unmatched_paths_share_one_endpoint(registry):
    client = TestClient(make_app(registry))
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/api/items/not-an-int").status_code == 422  # matched route, bad param
    text = generate_latest(registry)
    assert value(text, "http_requests_total", endpoint=UNMATCHED, status="404") == 1
    assert value(text, "http_requests_total", endpoint="/api/items/{item_id}", status="422") == 1


def test_ten_thousand_distinct_urls_give_bounded_series(registry):
    import asyncio

    app = make_app(registry)

    async def get(path):  # straight ASGI calls: 10,000 TestClient requests take half a minute
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                   "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
                   "query_string": b"", "headers": [], "client": ("127.0.0.1", 1), "server": ("t", 80)},
                  receive, send)

    async def run():
        for i in range(5000):
            await get(f"/api/items/{i}")
            await get(f"/random/{i}/path")

    asyncio.run(run())
    series = [(n, l) for n, l, _ in samples(generate_latest(registry)) if n.startswith("http_request")]
    endpoints = {l["endpoint"] for _, l in series}
    assert endpoints == {"/api/items/{item_id}", UNMATCHED}
    # 2 counters + 2 x (buckets + sum + count) histogram series, independent of the URL count
    assert len(series) < 50, len(series)
    assert value(generate_latest(registry), "http_requests_total", endpoint=UNMATCHED, status="404") == 5000


def test_unknown_methods_collapse(registry):
    client = TestClient(make_app(registry))
    client.request("BREW", "/health")
    client.request("FOO", "/health")
    text = generate_latest(registry)
    methods = {l["method"] for n, l, _ in samples(text) if n == "http_requests_total"}
    assert methods == {"OTHER"}


def test_plain_starlette_routes_and_mounts(registry):
    async def hello(request):
        return PlainTextResponse("hi")

    app = Starlette(routes=[
        Route("/users/{user_id:int}", hello),
        Mount("/v2", routes=[Route("/orders/{order_id}", hello)]),
    ])
    app.add_middleware(PrometheusMiddleware, metrics=HttpMetrics(registry))
    client = TestClient(app)
    client.get("/users/7")
    client.get("/v2/orders/abc")
    client.get("/v2/nothing")
    client.post("/users/7")
    text = generate_latest(registry)
    assert value(text, "http_requests_total", endpoint="/users/{user_id}", status="200") == 1
    assert value(text, "http_requests_total", endpoint="/v2/orders/{order_id}", status="200") == 1
    assert value(text, "http_requests_total", endpoint=UNMATCHED, status="404") == 1  # no route inside the mount
    assert value(text, "http_requests_total", method="POST", endpoint="/users/{user_id}", status="405") == 1


def routed_app():
    """Routers as real apps use them: one router included at two prefixes, nested
    routers, a mounted FastAPI app and a mounted Starlette app."""
    app = FastAPI()
    users = APIRouter(prefix="/users")

    @users.get("/{uid}")
    def user(uid: int):
        return {"uid": uid}

    inner = APIRouter(prefix="/inner")

    @inner.get("/things/{thing}")
    def thing(thing: str):
        return {"thing": thing}

    outer = APIRouter(prefix="/outer")
    outer.include_router(inner)
    app.include_router(users, prefix="/api/v1")
    app.include_router(users, prefix="/api/v2")
    app.include_router(outer, prefix="/api")
    sub = FastAPI()

    @sub.get("/reports/{rid}")
    def report(rid: str):
        return {"rid": rid}

    app.mount("/sub", sub)

    async def page(request):
        return PlainTextResponse("page")

    app.mount("/legacy", Starlette(routes=[Route("/pages/{name}", page)]))
    return app


ROUTED = [
    ("/api/v1/users/1", "/api/v1/users/{uid}"),
    ("/api/v2/users/2", "/api/v2/users/{uid}"),
    ("/api/outer/inner/things/x", "/api/outer/inner/things/{thing}"),
    ("/sub/reports/7", "/sub/reports/{rid}"),
    ("/legacy/pages/home", "/legacy/pages/{name}"),
]


def test_routers_nested_routers_and_mounts_give_full_templates(registry):
    app = routed_app()
    instrument_app(app, metrics=HttpMetrics(registry))
    client = TestClient(app)
    for path, _ in ROUTED:
        assert client.get(path).status_code == 200, path
    assert client.get("/users/1").status_code == 404  # the router's own path is not served
    assert client.get("/sub/nothing").status_code == 404
    text = generate_latest(registry)
    for _, template in ROUTED:
        assert value(text, "http_requests_total", method="GET", endpoint=template, status="200") == 1, template
    assert value(text, "http_requests_total", endpoint=UNMATCHED, status="404") == 2
    endpoints = {l["endpoint"] for n, l, _ in samples(text) if n == "http_requests_total"}
    assert endpoints == {t for _, t in ROUTED} | {UNMATCHED}


def test_routes_added_after_the_first_request_are_found(registry):
    app = FastAPI()
    instrument_app(app, metrics=HttpMetrics(registry))
    client = TestClient(app)
    assert client.get("/metrics").status_code == 200
    late = APIRouter(prefix="/late")

    @late.get("/{x}")
    def x(x: int):
        return {}

    app.include_router(late)
    deadline = time.monotonic() + 5
    while value(generate_latest(registry), "http_requests_total", endpoint="/late/{x}") is None:
        assert time.monotonic() < deadline, "a route added after the first request stays unmatched"
        assert client.get("/late/1").status_code == 200
        time.sleep(0.3)


def call_asgi(app, path: str, receive, method: str = "POST"):
    """One request straight through ASGI; returns the messages the app sent."""
    sent = []

    async def send(message):
        sent.append(message)

    async def run():
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                   "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
                   "query_string": b"", "headers": [(b"content-length", b"100")],
                   "client": ("127.0.0.1", 1), "server": ("t", 80)}, receive, send)

    return run, sent


def test_client_disconnect_is_499_not_500(registry):
    import asyncio

    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request):
        await request.body()
        return {}

    @app.post("/slow")
    async def slow():
        await asyncio.sleep(30)

    instrument_app(app, metrics=HttpMetrics(registry))

    async def gone():  # the client closed the connection before sending the body
        return {"type": "http.disconnect"}

    run, _ = call_asgi(app, "/upload", gone)
    with pytest.raises(Exception):  # Starlette's ClientDisconnect, re-raised to the server
        asyncio.run(run())

    async def cancel_after_start():
        async def receive():
            await asyncio.sleep(30)

        run, _ = call_asgi(app, "/slow", receive)
        task = asyncio.ensure_future(run())
        await asyncio.sleep(0.05)
        task.cancel()  # what a server does with the task of a request whose client left
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_after_start())
    text = generate_latest(registry)
    assert value(text, "http_requests_total", endpoint="/upload", status="499") == 1
    assert value(text, "http_requests_total", endpoint="/slow", status="499") == 1
    assert not [l for n, l, _ in samples(text) if n == "http_requests_total" and l["status"].startswith("5")]


def test_an_app_that_sees_the_disconnect_and_stops_is_499(registry):
    import asyncio

    async def listener(scope, receive, send):  # waits for the body, finds the client gone
        if (await receive())["type"] == "http.disconnect":
            return

    app = FastAPI()
    app.mount("/listen", listener)
    instrument_app(app, metrics=HttpMetrics(registry))

    async def gone():
        return {"type": "http.disconnect"}

    run, sent = call_asgi(app, "/listen/x", gone)
    asyncio.run(run())
    assert sent == []
    assert value(generate_latest(registry), "http_requests_total", endpoint="/listen/{path}", status="499") == 1


def test_a_client_closing_mid_body_under_uvicorn_is_499(registry):
    import asyncio
    import socket
    import threading

    import uvicorn

    from conftest import free_port

    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request):
        return {"size": len(await request.body())}

    instrument_app(app, metrics=HttpMetrics(registry))
    port = free_port()
    # log_config/log_level None: leave the process's logging (other tests') as it is
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level=None,
                                           lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port)) as s:  # a complete upload
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            assert b" 200 " in s.recv(1024)
        with socket.create_connection(("127.0.0.1", port)) as s:  # 5 of 1000 bytes, then gone
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nhello")
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        while value(generate_latest(registry), "http_requests_total", endpoint="/upload", status="499") != 1:
            assert time.monotonic() < deadline, generate_latest(registry).decode()
            time.sleep(0.05)
        text = generate_latest(registry)
        assert value(text, "http_requests_total", endpoint="/upload", status="200") == 1
        assert value(text, "http_requests_total", endpoint="/upload", status="500") is None
    finally:
        server.should_exit = True
        thread.join(10)


def test_an_app_error_is_still_500_after_the_body_was_read(registry):
    import asyncio

    app = FastAPI()

    @app.post("/broken")
    async def broken(request: Request):
        await request.body()
        raise RuntimeError("a bug, not a disconnect")

    instrument_app(app, metrics=HttpMetrics(registry))
    messages = [{"type": "http.request", "body": b"x" * 100, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    run, sent = call_asgi(app, "/broken", receive)
    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert sent and sent[0]["status"] == 500
    assert value(generate_latest(registry), "http_requests_total", endpoint="/broken", status="500") == 1


def test_metrics_endpoint_serves_exposition_format():
    app = FastAPI()
    instrument_app(app)  # the default registry, as an app uses it
    client = TestClient(app)
    client.get("/metrics")
    response = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(response.text, "http_requests_total", endpoint="/metrics", status="200") >= 1
    assert client.post("/metrics").status_code == 405
    # Prometheus asks for OpenMetrics and gzip; a name[] filter narrows the families
    response = client.get("/metrics", params={"name[]": "http_requests_total"},
                          headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.rstrip().endswith("# EOF")  # httpx has unzipped it
    families = {line.split()[2] for line in response.text.splitlines() if line.startswith("# TYPE")}
    assert families == {"http_requests"}


def test_existing_metrics_route_is_kept(registry):
    app = FastAPI()

    @app.get("/metrics")
    def own():
        return {"own": True}

    instrument_app(app, metrics=HttpMetrics(registry))
    assert TestClient(app).get("/metrics").json() == {"own": True}


def test_request_id_is_echoed_or_generated(registry):
    from platform_observability import context

    app = FastAPI()
    seen = {}

    @app.get("/who")
    def who():
        seen["rid"] = context.get_request_id()
        return {}

    instrument_app(app, metrics=HttpMetrics(registry))
    client = TestClient(app)
    r = client.get("/who", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" == seen["rid"]
    r = client.get("/who", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32
    assert context.get_request_id() is None  # reset after the request


def test_app_set_request_id_header_is_not_duplicated(registry):
    app = FastAPI()

    @app.get("/own")
    def own(response: Response):
        response.headers["X-Request-ID"] = "from-app"
        return {}

    instrument_app(app, metrics=HttpMetrics(registry))
    r = TestClient(app).get("/own")
    assert r.headers.get_list("x-request-id") == ["from-app"]


@pytest.mark.parametrize("request_id_header", [None, "X-Request-ID"])
def test_middleware_passes_lifespan_through(request_id_header, registry):
    from contextlib import asynccontextmanager

    started = []

    @asynccontextmanager
    async def lifespan(app):
        started.append(True)
        yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(PrometheusMiddleware, metrics=HttpMetrics(registry), request_id_header=request_id_header)
    with TestClient(app):
        pass
    assert started == [True]


def test_tracking_active_users_twice_keeps_one_family():
    from platform_observability import InMemoryActiveUsers, set_user_id
    from platform_observability.asgi import track_active_users
    from platform_observability.metrics import exposition_registry

    track_active_users(InMemoryActiveUsers())
    tracker = InMemoryActiveUsers()
    track_active_users(tracker)
    set_user_id("u1")
    set_user_id("u2")
    set_user_id(None)
    text = generate_latest(exposition_registry()).decode()
    assert text.count("# TYPE active_users gauge") == 1
    assert value(text, "active_users") == 2 == tracker.count()
