"""JSON log format (ECS fields, request/user/trace ids) and log shipping that never
blocks or raises, whether the TCP peer is absent, slow, or resets the connection."""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import threading
import time

from conftest import free_port
from platform_observability import context
from platform_observability.logs import JsonFormatter, TcpJsonLinesHandler, configure_logging


def make_logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def format_one(msg="hello %s", *args, **kwargs) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api-gateway", environment="test"))
    make_logger(handler, "fmt").info(msg, *args, **kwargs)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    return json.loads(line)


def test_ecs_fields():
    doc = format_one("hello %s", "world", extra={"event.duration": 1500, "labels": {"shard": "a"}})
    assert doc["message"] == "hello world"
    assert doc["log"]["level"] == "info" and doc["log"]["logger"] == "fmt"
    assert doc["ecs"]["version"].startswith("8.")
    assert doc["service"] == {"name": "api-gateway", "environment": "test"}
    assert doc["@timestamp"].endswith("Z") and "T" in doc["@timestamp"]
    assert doc["event"] == {"duration": 1500}  # dotted extra keys become objects
    assert doc["labels"] == {"shard": "a"}
    assert isinstance(doc["process"]["pid"], int)
    assert "http" not in doc and "user" not in doc and "trace" not in doc


def test_request_and_user_ids():
    rid = context.request_id_var.set("req-1")
    uid = context.user_id_var.set(None)
    try:
        context.set_user_id(42)
        doc = format_one("x")
    finally:
        context.request_id_var.reset(rid)
        context.user_id_var.reset(uid)
    assert doc["http"]["request"]["id"] == "req-1"
    assert doc["user"]["id"] == "42"


def test_exception_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = make_logger(handler, "exc")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("failed")
    doc = json.loads(stream.getvalue())
    assert doc["error"]["type"] == "ValueError" and doc["error"]["message"] == "bad value"
    assert "Traceback" in doc["error"]["stack_trace"]
    assert doc["log"]["level"] == "error"


def test_unserialisable_extra_does_not_break_the_line():
    doc = format_one("x", extra={"thing": object()})
    assert doc["thing"].startswith("<object")


def test_configure_logging_writes_json_to_the_stream():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        stream = io.StringIO()
        assert configure_logging("svc", stream=stream, logstash="") is None
        logging.getLogger("uvicorn.error").info("from uvicorn")
        doc = json.loads(stream.getvalue().splitlines()[-1])
        assert doc["message"] == "from uvicorn" and doc["service"]["name"] == "svc"
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


# --- shipping -------------------------------------------------------------------------

class Collector:
    """A JSON-lines TCP server on loopback, like Logstash's tcp input."""

    def __init__(self, port: int | None = None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines: list[dict] = []
        self.connections = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        buf = b""
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.append(json.loads(line))

    def close(self):
        self._stop = True
        self.sock.close()


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def shipper(port, **kw) -> TcpJsonLinesHandler:
    kw.setdefault("backoff_min", 0.05)
    kw.setdefault("backoff_max", 0.2)
    handler = TcpJsonLinesHandler("127.0.0.1", port, **kw)
    handler.setFormatter(JsonFormatter("test"))
    return handler


def test_lines_arrive_as_json_lines():
    server = Collector()
    handler = shipper(server.port)
    logger = make_logger(handler, "ship.ok")
    try:
        for i in range(500):
            logger.info("line %d", i)
        assert wait(lambda: len(server.lines) == 500), len(server.lines)
        assert [d["message"] for d in server.lines] == [f"line {i}" for i in range(500)]
        assert handler.dropped == 0 and handler.sent == 500
    finally:
        handler.close()
        server.close()


def test_absent_peer_never_blocks_nor_raises_and_counts_drops():
    port = free_port()  # nothing listens here
    handler = shipper(port, capacity=100)
    logger = make_logger(handler, "ship.absent")
    try:
        started = time.perf_counter()
        for i in range(5000):
            logger.info("line %d", i)
        elapsed = time.perf_counter() - started
        assert elapsed < 2.0, f"5000 log calls took {elapsed:.2f}s with the peer absent"
        assert handler.queued <= 100
        assert handler.dropped >= 4900
        time.sleep(0.5)
        assert handler.connects == 0
        # the peer appears: the handler reconnects (backoff capped at 0.2 s) and delivers
        server = Collector(port)
        try:
            assert wait(lambda: len(server.lines) >= 100), len(server.lines)
            logger.info("after")
            assert wait(lambda: server.lines[-1]["message"] == "after")
        finally:
            server.close()
    finally:
        handler.close()


def test_dropped_lines_counter_is_exported():
    from prometheus_client import REGISTRY

    port = free_port()
    handler = shipper(port, capacity=1)
    logger = make_logger(handler, "ship.counter")
    try:
        for _ in range(10):
            logger.info("x")
        got = REGISTRY.get_sample_value("log_shipper_dropped_lines_total", {"destination": f"127.0.0.1:{port}"})
        assert got is not None and got >= 9
    finally:
        handler.close()


def test_slow_peer_never_blocks():
    # Accepts the connection but never reads: the kernel buffers fill, then send blocks
    # (in the shipper's thread only, up to send_timeout).
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    handler = shipper(server.getsockname()[1], capacity=1000, send_timeout=2.0)
    logger = make_logger(handler, "ship.slow")
    payload = "x" * 2000
    try:
        worst = 0.0
        for i in range(20000):
            t = time.perf_counter()
            logger.info("%s %d", payload, i)
            worst = max(worst, time.perf_counter() - t)
        # A call that waited on the socket would take the 2 s send timeout; allow for a
        # loaded CI machine's scheduling hiccups, not for blocking.
        assert worst < 1.0, f"a log call took {worst * 1000:.1f} ms"
        assert handler.dropped > 0
        assert handler.queued <= 1000
    finally:
        handler.close()
        server.close()


def test_reset_peer_reconnects_without_raising():
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4)
    handler = shipper(port)
    logger = make_logger(handler, "ship.reset")
    try:
        logger.info("first")
        conn, _ = listener.accept()
        conn.recv(65536)
        # RST instead of FIN: SO_LINGER with a zero timeout
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        listener.close()
        for i in range(50):
            logger.info("during %d", i)  # must neither raise nor block
            time.sleep(0.005)
        server = Collector(port)
        try:
            logger.info("after reset")
            assert wait(lambda: any(d["message"] == "after reset" for d in server.lines))
            assert handler.connects >= 2
        finally:
            server.close()
    finally:
        handler.close()


def test_emit_survives_a_broken_formatter():
    class Broken(logging.Formatter):
        def format(self, record):
            raise RuntimeError("formatter bug")

    handler = TcpJsonLinesHandler("127.0.0.1", free_port())
    handler.setFormatter(Broken())
    logger = make_logger(handler, "ship.broken")
    logger.info("x")  # no exception, no traceback
    assert handler.dropped == 1
    handler.close()


def test_close_does_not_hang_when_peer_absent():
    handler = shipper(free_port())
    logger = make_logger(handler, "ship.close")
    for _ in range(100):
        logger.info("x")
    t = time.perf_counter()
    handler.flush()  # what logging.shutdown() does at exit
    handler.close()
    assert time.perf_counter() - t < 1.5  # no waiting on a peer that is not there


def test_forked_child_ships_its_own_lines():
    import os

    server = Collector()
    handler = shipper(server.port)
    logger = make_logger(handler, "ship.fork")
    try:
        logger.info("parent")
        assert wait(lambda: len(server.lines) == 1)
        pid = os.fork()
        if pid == 0:  # child: a fresh queue and sender thread
            try:
                logger.info("child")
                ok = handler.flush(5.0)
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert wait(lambda: any(d["message"] == "child" for d in server.lines))
    finally:
        handler.close()
        server.close()
