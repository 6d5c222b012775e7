"""ECS JSON logs (ecs-logging, request/user/trace ids) and log shipping that never blocks
or raises and loses nothing with a disk buffer, whether the TCP peer is absent, slow,
resets the connection, or restarts."""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import free_port, subprocess_env
from platform_observability import context
from ecs_logging import StdlibFormatter

from platform_observability.logs import CorrelationFilter, TcpJsonLinesHandler, configure_logging


def make_logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def json_handler(stream, service="api-gateway", environment="test") -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StdlibFormatter())
    handler.addFilter(CorrelationFilter(service, environment))
    return handler


def format_one(msg="hello %s", *args, **kwargs) -> dict:
    stream = io.StringIO()
    make_logger(json_handler(stream), "fmt").info(msg, *args, **kwargs)
    line = stream.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    return json.loads(line)


def field(doc: dict, dotted: str):
    """An ECS field, nested or dotted (ecs-logging writes log.level dotted)."""
    if dotted in doc:
        return doc[dotted]
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def test_ecs_fields():
    doc = format_one("hello %s", "world", extra={"event.duration": 1500, "labels": {"shard": "a"}})
    assert doc["message"] == "hello world"
    assert field(doc, "log.level") == "info" and field(doc, "log.logger") == "fmt"
    assert field(doc, "ecs.version")
    assert doc["service"] == {"name": "api-gateway", "environment": "test"}
    assert doc["@timestamp"].endswith("Z") and "T" in doc["@timestamp"]
    assert doc["event"] == {"duration": 1500}  # dotted extra keys become objects
    assert doc["labels"] == {"shard": "a"}
    assert isinstance(field(doc, "process.pid"), int)
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
    logger = make_logger(json_handler(stream), "exc")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("failed")
    doc = json.loads(stream.getvalue())
    assert doc["error"]["type"] == "ValueError" and doc["error"]["message"] == "bad value"
    assert "test_exception_fields" in doc["error"]["stack_trace"]
    assert field(doc, "log.level") == "error"


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


def test_configure_logging_again_closes_the_replaced_shipper():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    server = Collector()
    try:
        first = configure_logging("svc", stream=io.StringIO(), logstash=f"127.0.0.1:{server.port}")
        logging.getLogger("replace").warning("one")
        assert wait(lambda: len(server.lines) == 1)
        thread = first._thread
        second = configure_logging("svc", stream=io.StringIO(), logstash=f"127.0.0.1:{server.port}")
        assert wait(lambda: not thread.is_alive(), 5), "the replaced shipper's thread still runs"
        assert first._sock is None
        assert first not in root.handlers and second in root.handlers
        logging.getLogger("replace").warning("two")
        assert wait(lambda: [d["message"] for d in server.lines] == ["one", "two"])
        second.close()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        server.close()


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
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            if self._stop:
                conn.close()
                return
            self.connections += 1
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.append(json.loads(line))

    def close(self):
        """Stop listening and close every connection, as a stopping Logstash does."""
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (Linux)
        except OSError:
            pass
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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
    handler.setFormatter(StdlibFormatter())
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
    handler = shipper(port, memory_bytes=100 * 400)
    logger = make_logger(handler, "ship.absent")
    try:
        started = time.perf_counter()
        for i in range(5000):
            logger.info("line %d", i)
        elapsed = time.perf_counter() - started
        # A deadline against blocking (a call that waited for the peer would wait for each
        # reconnect), not a speed target: make bench-instrumentation measures the cost.
        assert elapsed < 10.0, f"5000 log calls took {elapsed:.2f}s with the peer absent"
        assert handler.queued <= 100 * 400
        assert handler.dropped >= 4800
        time.sleep(0.5)
        assert handler.connects == 0
        # the peer appears: the handler reconnects (backoff capped at 0.2 s) and delivers
        server = Collector(port)
        try:
            assert wait(lambda: len(server.lines) == 5000 - handler.dropped), len(server.lines)  # all kept
            logger.info("after")
            assert wait(lambda: server.lines[-1]["message"] == "after")
        finally:
            server.close()
    finally:
        handler.close()


def test_shipper_metrics_are_exported():
    from prometheus_client import REGISTRY

    port = free_port()
    handler = shipper(port, memory_bytes=1)  # no line fits
    logger = make_logger(handler, "ship.counter")
    dest = f"127.0.0.1:{port}"
    try:
        # nothing logged, nothing to send: no "disconnected" from an idle process
        assert REGISTRY.get_sample_value("log_shipper_connected", {"destination": dest}) is None
        for _ in range(10):
            logger.info("x")
        assert REGISTRY.get_sample_value("log_shipper_dropped_lines_total",
                                         {"destination": dest, "reason": "memory_full"}) == 10
        assert wait(lambda: REGISTRY.get_sample_value("log_shipper_connected", {"destination": dest}) == 0)
        server = Collector(port)
        try:
            handler.memory_bytes = 1 << 20
            logger.info("now it fits")
            assert wait(lambda: REGISTRY.get_sample_value("log_shipper_sent_lines_total", {"destination": dest}) == 1)
            assert REGISTRY.get_sample_value("log_shipper_connected", {"destination": dest}) == 1
        finally:
            server.close()
        logger.info("into the closed connection")  # noticed before sending: reconnect fails
        assert wait(lambda: REGISTRY.get_sample_value("log_shipper_connected", {"destination": dest}) == 0)
        assert wait(lambda: REGISTRY.get_sample_value("log_shipper_buffered_bytes",
                                                      {"destination": dest, "buffer": "memory"}) > 0)  # kept to resend
    finally:
        handler.close()


def test_slow_peer_never_blocks():
    # Accepts the connection but never reads: the kernel buffers fill, then send blocks
    # (in the shipper's thread only, up to send_timeout).
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    handler = shipper(server.getsockname()[1], memory_bytes=1000 * 2500, send_timeout=2.0)
    logger = make_logger(handler, "ship.slow")
    payload = "x" * 2000
    try:
        worst = 0.0
        for i in range(20000):
            t = time.perf_counter()
            logger.info("%s %d", payload, i)
            worst = max(worst, time.perf_counter() - t)
        # A call that waited on the socket would take the 2 s send timeout, so any call
        # shorter than it did not wait (a deadline, not a speed target).
        assert worst < 2.0, f"a log call took {worst * 1000:.1f} ms"
        assert handler.dropped > 0
        assert handler.queued <= 1000 * 2500 + handler.batch_bytes
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
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("log_shipper_dropped_lines_total",
                                     {"destination": handler.destination, "reason": "unencodable"}) >= 1
    handler.close()


def test_close_does_not_hang_when_peer_absent():
    handler = shipper(free_port())
    logger = make_logger(handler, "ship.close")
    for _ in range(100):
        logger.info("x")
    t = time.perf_counter()
    handler.flush()  # what logging.shutdown() does at exit
    handler.close()
    # A deadline against hanging: close() gives up on the shipper's thread after 1 s, and a
    # loaded machine may add its own delays (not a speed target).
    assert time.perf_counter() - t < 5.0


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


def test_socket_fd_above_1024_keeps_shipping():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"the hard limit of open files is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200 if hard == resource.RLIM_INFINITY else min(hard, 4096), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    server = Collector()
    handler = shipper(server.port)
    logger = make_logger(handler, "ship.highfd")
    try:
        logger.info("first")
        assert wait(lambda: len(server.lines) == 1), "nothing arrived"
        assert handler._sock.fileno() >= 1024
        for i in range(300):
            logger.info("line %d", i)
        assert wait(lambda: len(server.lines) == 301), len(server.lines)
        assert handler._thread.is_alive() and handler.dropped == 0
    finally:
        handler.close()
        server.close()
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_any_error_in_the_sender_is_survived_and_logged_once(caplog):
    server = Collector()
    handler = shipper(server.port)
    logger = make_logger(handler, "ship.bug")
    faults = [ValueError("a bug in the sender"), TypeError("another"), ValueError("a bug in the sender")]
    real = handler._peer_closed

    def faulty():
        if faults:
            raise faults.pop(0)
        return real()

    handler._peer_closed = faulty
    try:
        with caplog.at_level(logging.WARNING, logger="platform_observability.logs"):
            for i in range(20):
                logger.info("line %d", i)
            assert wait(lambda: len(server.lines) == 20), len(server.lines)
        assert [d["message"] for d in server.lines] == [f"line {i}" for i in range(20)]
        warnings = [r.getMessage() for r in caplog.records if r.name == "platform_observability.logs"]
        assert len(warnings) == 2, warnings  # ValueError once (it came twice), TypeError once
        assert handler._thread.is_alive()
    finally:
        handler.close()
        server.close()


def test_destination_down_then_up_loses_nothing_with_the_disk_buffer(tmp_path):
    port = free_port()
    server = Collector(port)
    handler = shipper(port, buffer_dir=str(tmp_path / "buffer"), memory_bytes=256 * 1024)
    logger = make_logger(handler, "ship.restart")
    logged = 0

    def log_lines(n):
        nonlocal logged
        for _ in range(n):
            logger.info("line %d %s", logged, "x" * 200)
            logged += 1
            if logged % 50 == 0:
                time.sleep(0.001)  # a real app does something else between log calls

    try:
        log_lines(1000)
        assert wait(lambda: len(server.lines) == 1000), len(server.lines)
        server.close()  # Logstash stops
        time.sleep(0.2)
        log_lines(5000)  # ~1.3 MB: five times the memory buffer
        assert wait(lambda: handler._disk is not None and handler._disk.bytes > 256 * 1024)
        assert list((tmp_path / "buffer").glob("*.spool"))
        time.sleep(0.5)
        server = Collector(port)  # ... and is back
        log_lines(1000)
        got = lambda: sorted(int(d["message"].split()[1]) for d in server.lines)  # noqa: E731
        assert wait(lambda: len(server.lines) >= 6000, 30), (len(server.lines), handler.dropped, handler.queued, sorted(set(range(1000, 7000)) - set(got()))[:5], sorted(set(range(1000, 7000)) - set(got()))[-5:])
        assert handler.flush(10)
        received = [int(d["message"].split()[1]) for d in server.lines]
        assert handler.dropped == 0
        assert logged == 7000 and len(received) == 6000 and sorted(received) == list(range(1000, 7000))
        assert received == sorted(received)  # in order
        assert not list((tmp_path / "buffer").glob("*.spool"))  # all sent, nothing left
    finally:
        handler.close()
        server.close()


def test_without_disk_buffer_the_loss_is_counted(tmp_path):
    port = free_port()
    handler = shipper(port, memory_bytes=64 * 1024)
    logger = make_logger(handler, "ship.nodisk")
    try:
        for i in range(2000):
            logger.info("line %d %s", i, "x" * 200)
        server = Collector(port)
        try:
            assert wait(lambda: handler.queued == 0 and handler._pending is None)
            time.sleep(0.2)
            assert len(server.lines) + handler.dropped == 2000
            assert handler.dropped > 1000
        finally:
            server.close()
    finally:
        handler.close()


def test_lines_buffered_on_disk_survive_a_restart_of_the_app(tmp_path):
    port = free_port()
    buffer_dir = tmp_path / "buffer"
    first = shipper(port, buffer_dir=str(buffer_dir))
    logger = make_logger(first, "ship.apprestart")
    for i in range(300):
        logger.info("before restart %d", i)
    assert wait(lambda: first._disk is not None and first._disk.bytes > 0 and not first._memory)
    first.close()  # the app exits while Logstash is down: the lines stay on disk
    assert list(buffer_dir.glob("*.spool"))
    server = Collector(port)
    second = shipper(port, buffer_dir=str(buffer_dir))  # the app again
    logger = make_logger(second, "ship.apprestart")
    try:
        logger.info("after restart")
        assert wait(lambda: len(server.lines) == 301), len(server.lines)
        assert [d["message"] for d in server.lines] == [f"before restart {i}" for i in range(300)] + ["after restart"]
    finally:
        second.close()
        server.close()


MEMORY = textwrap.dedent("""
    import logging, sys
    from ecs_logging import StdlibFormatter
    from platform_observability.logs import TcpJsonLinesHandler

    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

    handler = TcpJsonLinesHandler("127.0.0.1", int(sys.argv[1]), backoff_min=0.05, backoff_max=0.2)
    handler.setFormatter(StdlibFormatter())
    logger = logging.getLogger("mem")
    logger.addHandler(handler)
    logger.propagate = False
    big = "x" * 100_000
    logger.warning("warm up")
    before = rss()
    for i in range(12_000):
        logger.warning("%d %s", i, big)
    print(rss() - before, handler.dropped, handler.queued)
""")


def test_memory_is_bounded_in_bytes_under_large_lines():
    out = subprocess.run([sys.executable, "-c", MEMORY, str(free_port())], env=subprocess_env(),
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    growth, dropped, queued = (int(x) for x in out)
    assert queued <= 16 * 1024 * 1024 + 256 * 1024
    assert dropped >= 12_000 - 16 * 1024 * 1024 // 100_000 - 2
    assert growth < 64 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"
