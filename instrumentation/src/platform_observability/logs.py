"""Structured JSON logs with ECS field names, to stdout and to Logstash over TCP.

One JSON document per line, nested objects (`{"log": {"level": ...}}`), so the
bundle's Logstash pipeline (tcp input, json_lines codec) and Elasticsearch see ECS
fields directly. https://www.elastic.co/docs/reference/ecs/ecs-field-reference

Shipping never blocks or breaks the app: records go into a bounded in-memory queue;
one daemon thread per handler connects, sends, and reconnects with exponential backoff.
When the queue is full the newest line is dropped and counted
(log_shipper_dropped_lines_total), never waited for.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import queue
import random
import select
import socket
import sys
import threading
import time
import traceback
import weakref

from . import context

ECS_VERSION = "8.11.0"

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _put(doc: dict, dotted: str, value) -> None:
    """Set `a.b.c` as nested objects, the way Elasticsearch would expand it."""
    parts = dotted.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _trace_ids_otel():
    try:
        from opentelemetry import trace
    except ImportError:
        return None

    def ids():
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
        return None

    return ids


def _trace_ids_apm():
    if "elasticapm" not in sys.modules:  # only when the app itself uses the APM agent
        return None
    import elasticapm

    def ids():
        trace_id = elasticapm.get_trace_id()
        return (trace_id, elasticapm.get_span_id()) if trace_id else None

    return ids


class JsonFormatter(logging.Formatter):
    """ECS-shaped JSON: @timestamp, log.level, log.logger, message, service.*, process.*,
    trace.id/span.id (OpenTelemetry, else Elastic APM), http.request.id, user.id,
    error.* for exceptions, and every `extra=` key (dotted keys become nested objects)."""

    def __init__(self, service_name: str | None = None, environment: str | None = None,
                 static_fields: dict | None = None):
        super().__init__()
        self.service_name = service_name or os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("SERVICE_NAME")
        self.environment = environment or os.environ.get("DEPLOYMENT_ENVIRONMENT")
        self.static_fields = dict(static_fields or {})
        self._tracers = [f for f in (_trace_ids_otel(), _trace_ids_apm()) if f is not None]

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.to_dict(record), default=str, ensure_ascii=False, separators=(",", ":"))

    def to_dict(self, record: logging.LogRecord) -> dict:
        ts = _dt.datetime.fromtimestamp(record.created, tz=_dt.timezone.utc)
        doc: dict = {
            "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "log": {
                "level": record.levelname.lower(),
                "logger": record.name,
                "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
            },
            "message": record.getMessage(),
            "ecs": {"version": ECS_VERSION},
            "process": {"pid": record.process, "thread": {"name": record.threadName}},
        }
        if self.service_name:
            doc["service"] = {"name": self.service_name}
            if self.environment:
                doc["service"]["environment"] = self.environment
        request_id = context.request_id_var.get()
        if request_id:
            doc["http"] = {"request": {"id": request_id}}
        user_id = context.user_id_var.get()
        if user_id:
            doc["user"] = {"id": user_id}
        for ids in self._tracers:
            try:
                found = ids()
            except Exception:
                found = None
            if found:
                doc["trace"] = {"id": found[0]}
                if found[1]:
                    doc["span"] = {"id": found[1]}
                break
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            doc["error"] = {
                "type": exc_type.__name__,
                "message": str(exc),
                "stack_trace": "".join(traceback.format_exception(exc_type, exc, tb)),
            }
        elif record.stack_info:
            doc["error"] = {"stack_trace": record.stack_info}
        for key, value in self.static_fields.items():
            _put(doc, key, value)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                _put(doc, key, value)
        return doc


class _DroppedCounter:
    """log_shipper_dropped_lines_total{destination}: created on first use, once per process."""

    _metric = None
    _lock = threading.Lock()

    @classmethod
    def inc(cls, destination: str, n: int = 1) -> None:
        try:
            if cls._metric is None:
                with cls._lock:
                    if cls._metric is None:
                        from prometheus_client import Counter

                        cls._metric = Counter(
                            "log_shipper_dropped_lines_total",
                            "Log lines dropped because the log shipper's buffer was full or a line could not be encoded",
                            ["destination"],
                        )
            cls._metric.labels(destination).inc(n)
        except Exception:
            pass


class TcpJsonLinesHandler(logging.Handler):
    """Ship formatted records as JSON lines over TCP (Logstash `tcp` input, `json_lines`
    codec) without ever blocking or raising in the logging thread.

    emit() only encodes the record and puts it into a queue of at most `capacity` lines
    (dropping and counting when full). A daemon thread drains it: connect with
    `connect_timeout`, send with `send_timeout`, and on any error close, wait
    (exponential backoff from `backoff_min` to `backoff_max`, with jitter) and reconnect.
    A batch whose send failed is resent after reconnecting (at least once; a reset
    mid-send can duplicate lines). Fork-safe: a child process starts its own thread
    with an empty queue.
    """

    def __init__(self, host: str, port: int, *, capacity: int = 10_000, connect_timeout: float = 2.0,
                 send_timeout: float = 5.0, backoff_min: float = 0.5, backoff_max: float = 30.0,
                 batch: int = 256, level=logging.NOTSET):
        super().__init__(level)
        self.address = (host, int(port))
        self.destination = f"{host}:{port}"
        self.capacity = capacity
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.batch = batch
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self._init_process_state()
        _handlers.add(self)

    # -- state that must be fresh in each process --------------------------------------
    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.Queue[bytes] = queue.Queue(self.capacity)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sock: socket.socket | None = None
        self._pending: bytes | None = None

    def _after_fork(self) -> None:
        self._init_process_state()

    # -- the logging side: never blocks, never raises ----------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._stop.is_set():
                return
            line = (self.format(record) + "\n").encode("utf-8", "replace")
            if self._pid != os.getpid():  # forked without os.register_at_fork support
                self._init_process_state()
            if self._thread is None:
                self._start()
            self._queue.put_nowait(line)
        except queue.Full:
            self._drop()
        except Exception:
            self._drop()

    def _drop(self, n: int = 1) -> None:
        self.dropped += n
        _DroppedCounter.inc(self.destination, n)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"log-shipper-{self.destination}", daemon=True)
                self._thread.start()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- the sender thread -------------------------------------------------------------
    def _run(self) -> None:
        delay = self.backoff_min
        while not self._stop.is_set():
            if self._sock is None:
                try:
                    self._connect()
                    delay = self.backoff_min
                except OSError:
                    self._sleep(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, self.backoff_max)
                    continue
            chunk = self._next_chunk()
            if chunk is None:
                continue
            try:
                if self._peer_closed():
                    raise ConnectionResetError("peer closed the connection")
                self._sock.sendall(chunk)
                self.sent += chunk.count(b"\n")
                self._pending = None
            except OSError:
                self._pending = chunk
                self._close_socket()
                self._sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max)
        self._close_socket()

    def _connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.settimeout(self.send_timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._sock = sock
        self.connects += 1

    def _next_chunk(self) -> bytes | None:
        if self._pending is not None:
            return self._pending
        try:
            lines = [self._queue.get(timeout=0.5)]
        except queue.Empty:
            return None
        while len(lines) < self.batch:
            try:
                lines.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return b"".join(lines)

    def _peer_closed(self) -> bool:
        # Logstash never writes to us: a readable socket means EOF or a reset. Sending
        # into such a socket would "succeed" and lose the data, so reconnect first.
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable:
            return False
        try:
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _close_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # -- shutdown ----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the queue to drain; True when it did.
        Without a timeout (logging.shutdown() at exit calls it so) wait up to 2 s, and
        only while connected: an absent Logstash must not delay the app's exit."""
        if timeout is None:
            if self._sock is None:
                return not (self._queue.qsize() or self._pending)
            timeout = 2.0
        deadline = time.monotonic() + timeout
        while self._thread is not None and (self._queue.qsize() or self._pending) and time.monotonic() < deadline:
            time.sleep(0.01)
        return not (self._queue.qsize() or self._pending)

    def close(self) -> None:
        try:
            if self._thread is not None and self._pid == os.getpid():
                self.flush()
                self._stop.set()
                self._thread.join(timeout=1.0)
            self._stop.set()
        finally:
            super().close()


_handlers: "weakref.WeakSet[TcpJsonLinesHandler]" = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for handler in list(_handlers):
        handler._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)


def configure_logging(
    service_name: str | None = None,
    *,
    level: int | str = logging.INFO,
    stream=None,
    logstash: str | None = None,
    capture: tuple[str, ...] = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access", "celery"),
    **handler_options,
) -> TcpJsonLinesHandler | None:
    """Send every log record as JSON to stdout and, when `logstash` ("host:port", default
    the LOGSTASH_ADDRESS environment variable) is set, to Logstash. Replaces the root
    logger's handlers and makes the servers' own loggers (`capture`) propagate to it.
    Returns the Logstash handler (its `dropped` and `sent` counts), or None."""
    formatter = JsonFormatter(service_name)
    console = logging.StreamHandler(stream or sys.stdout)
    console.setFormatter(formatter)
    handlers: list[logging.Handler] = [console]
    address = logstash if logstash is not None else os.environ.get("LOGSTASH_ADDRESS", "")
    shipper = None
    if address:
        host, port = (address.rsplit(":", 1) + ["5000"])[:2] if ":" in address else (address, "5000")
        shipper = TcpJsonLinesHandler(host, int(port), **handler_options)
        shipper.setFormatter(formatter)
        handlers.append(shipper)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name in capture:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return shipper
