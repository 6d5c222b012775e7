"""ECS JSON logs to stdout and to Logstash over TCP.

Formatting is ecs-logging's StdlibFormatter (https://www.elastic.co/docs/reference/ecs/logging/python):
one ECS document per line, Elastic APM's trace/transaction/span ids mapped to ECS.
CorrelationFilter adds what it does not know: the service, the request and user ids,
and the ids of the current OpenTelemetry span, looked up at each record, so they are
there whichever of logging, OpenTelemetry and the APM agent was set up first.

Shipping (TcpJsonLinesHandler) never blocks or raises in the logging thread and
survives the destination going away: lines go into a byte-bounded memory buffer and,
with a disk buffer, onto disk while the destination is unreachable; one daemon thread
per process connects, sends, and reconnects with backoff whatever goes wrong. What it
has to drop is counted (log_shipper_dropped_lines_total), and whether it is connected
is a gauge (log_shipper_connected).
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import random
import selectors
import socket
import sys
import threading
import time
import weakref

from . import context

log = logging.getLogger(__name__)

MiB = 1024 * 1024


# -- correlation ---------------------------------------------------------------------------

class CorrelationFilter(logging.Filter):
    """Adds ECS fields to each record it sees (as dotted attributes, which ecs-logging
    nests): service.name and service.environment (default: OTEL_SERVICE_NAME or
    SERVICE_NAME, DEPLOYMENT_ENVIRONMENT); http.request.id and user.id from the request
    context; trace.id, transaction.id and span.id from the current OpenTelemetry span
    (transaction.id: the span that started the trace's work in this process, as Elastic
    names it, known for spans of a tracer set up by configure_tracing), else from the
    Elastic APM agent. Put it on handlers: records that propagate from child loggers pass
    a handler's filters, not a logger's."""

    def __init__(self, service_name: str | None = None, environment: str | None = None):
        super().__init__()
        # On the record, not in StdlibFormatter(extra=...): with the APM agent's
        # elasticapm_service_name also there, that raises a merge conflict
        # (https://github.com/elastic/ecs-logging-python/blob/main/ecs_logging/_stdlib.py).
        self.service = {
            "service.name": service_name or os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("SERVICE_NAME"),
            "service.environment": environment or os.environ.get("DEPLOYMENT_ENVIRONMENT"),
        }

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for key, value in self.service.items():
            if value:
                fields[key] = value
        request_id = context.request_id_var.get()
        if request_id:
            fields["http.request.id"] = request_id
        user_id = context.user_id_var.get()
        if user_id:
            fields["user.id"] = user_id
        if fields.get("elasticapm_trace_id"):  # the APM agent's record factory was there
            if not fields.get("elasticapm_span_id"):  # the transaction is the current span
                fields["span.id"] = fields.get("elasticapm_transaction_id")
            return True
        ids = _otel_ids() or _apm_ids()
        if ids is not None:
            fields["trace.id"], fields["transaction.id"], fields["span.id"] = ids
        return True


def _otel_ids():
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    root = local_roots.get(span_context.span_id)
    return (format(span_context.trace_id, "032x"), None if root is None else format(root, "016x"),
            format(span_context.span_id, "016x"))


def _apm_ids():
    if "elasticapm" not in sys.modules:  # only when the app itself uses the APM agent
        return None
    import elasticapm

    trace_id = elasticapm.get_trace_id()
    if not trace_id:
        return None
    transaction_id = elasticapm.get_transaction_id()
    return trace_id, transaction_id, elasticapm.get_span_id() or transaction_id


# span id -> the id of the local root span of its trace in this process, for spans in
# progress; kept by tracing.transaction_ids(), a span processor configure_tracing installs.
local_roots: dict[int, int] = {}


# -- shipping ------------------------------------------------------------------------------

class _DiskBuffer:
    """Lines waiting on disk, oldest first, in segment files of this process under
    `directory` (named <ns since epoch>-<pid>.spool, each held with an exclusive flock
    while the process lives). Segments whose owner died (unlocked) are adopted and sent
    first, so lines survive a restart of the app too. At least once: a segment read
    again after a crash can repeat lines."""

    def __init__(self, directory: str, max_bytes: int, segment_bytes: int = 8 * MiB):
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        os.makedirs(directory, exist_ok=True)
        self._segments: collections.deque[list] = collections.deque()  # [path, fd, size]
        self._offset = 0  # read position in the first segment
        self.bytes = 0  # not yet sent
        for name in sorted(os.listdir(directory)):
            if name.endswith(".spool"):
                self._adopt(os.path.join(directory, name))

    def _adopt(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live process's own
            os.close(fd)
            return
        size = os.fstat(fd).st_size
        self._segments.append([path, fd, size])
        self.bytes += size

    def append(self, data: bytes) -> bool:
        """Append whole lines; False (nothing written) when the buffer is full."""
        if self.bytes + len(data) > self.max_bytes:
            return False
        if not self._segments or self._segments[-1][2] >= self.segment_bytes:
            path = os.path.join(self.directory, f"{time.time_ns():020d}-{os.getpid()}.spool")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._segments.append([path, fd, 0])
        segment = self._segments[-1]
        written = 0
        while written < len(data):
            written += os.write(segment[1], data[written:])
        segment[2] += len(data)
        self.bytes += len(data)
        return True

    def read(self, max_bytes: int) -> bytes:
        """Whole lines from the oldest unsent ones, up to max_bytes (one line at least)."""
        if not self._segments:
            return b""
        path, fd, size = self._segments[0]
        data = os.pread(fd, min(max_bytes, size - self._offset), self._offset)
        end = data.rfind(b"\n") + 1
        if end == 0 and data:  # a line longer than max_bytes
            rest = os.pread(fd, size - self._offset, self._offset)
            end = rest.find(b"\n") + 1 or len(rest)
            data = rest
        return data[:end]

    def commit(self, n: int) -> None:
        """The first n bytes read were sent."""
        self._offset += n
        self.bytes -= n
        path, fd, size = self._segments[0]
        if self._offset >= size:
            self._segments.popleft()
            self._offset = 0
            os.unlink(path)
            os.close(fd)

    def close(self) -> None:
        """Keep the files (what is unsent goes out with the next process) and release them."""
        while self._segments:
            os.close(self._segments.popleft()[1])

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's descriptors without touching its locks."""
        for segment in self._segments:
            os.close(segment[1])
        self._segments.clear()


class TcpJsonLinesHandler(logging.Handler):
    """Ship formatted records as JSON lines over TCP (Logstash `tcp` input, `json_lines`
    codec) without ever blocking or raising in the logging thread.

    emit() formats the record and appends the line to a memory buffer of at most
    `memory_bytes`; a full buffer drops the line and counts it. One daemon thread per
    process connects (`connect_timeout`), sends batches of up to `batch_bytes`
    (`send_timeout`), and on any error, OSError or not, closes the connection, logs the
    error once, and reconnects with exponential backoff (`backoff_min` to `backoff_max`,
    with jitter). Before each batch it checks whether the peer closed the connection
    (the peer never writes to us: readable means gone), so a Logstash that went away is
    noticed before a batch is sent into the void; a batch whose send failed is sent
    again (at least once: a reset mid-send can repeat lines).

    With `buffer_dir`, lines that cannot be sent go to disk (at most `buffer_bytes`)
    instead of waiting in memory, and are sent first, in order, once the destination is
    back: a Logstash restart loses nothing. Fork-safe: a child process starts with an
    empty buffer and its own thread.
    """

    def __init__(self, host: str, port: int, *, memory_bytes: int = 16 * MiB, buffer_dir: str | None = None,
                 buffer_bytes: int = 1024 * MiB, connect_timeout: float = 2.0, send_timeout: float = 5.0,
                 backoff_min: float = 0.5, backoff_max: float = 30.0, batch_bytes: int = 256 * 1024,
                 level=logging.NOTSET):
        super().__init__(level)
        from .metrics import shipper_metrics

        self.address = (host, int(port))
        self.destination = f"{host}:{port}"
        self.memory_bytes = memory_bytes
        self.buffer_dir = buffer_dir
        self.buffer_bytes = buffer_bytes
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.batch_bytes = batch_bytes
        self._metrics = metrics = shipper_metrics()
        self._dropped = {reason: metrics.dropped.labels(self.destination, reason)
                         for reason in ("memory_full", "buffer_full", "unencodable")}
        self._sent = metrics.sent.labels(self.destination)
        self._buffered = {kind: metrics.buffered.labels(self.destination, kind) for kind in ("memory", "disk")}
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self._closed = False
        self._disk: _DiskBuffer | None = None
        self._init_process_state()
        _handlers.add(self)

    # -- state that must be fresh in each process --------------------------------------
    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._lines: collections.deque[bytes] = collections.deque()
        self._memory = 0  # bytes in _lines
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._pending: tuple[bytes, bool] | None = None  # (batch, from disk), sent again after a failure
        self._connected = None  # log_shipper_connected's child, once the sender runs
        self._delay = self.backoff_min
        self._retry_at = 0.0
        self._reported: set[str] = set()

    def _after_fork(self) -> None:
        if self._sock is not None:  # the parent's connection: close our copy only
            self._sock.close()
        if self._selector is not None:
            self._selector.close()
        if self._disk is not None:
            self._disk.forget_after_fork()
            self._disk = None
        self._init_process_state()

    # -- the logging side: never blocks, never raises ----------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            return
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self._drop("unencodable")
            return
        try:
            if self._pid != os.getpid():  # forked without os.register_at_fork support
                self._init_process_state()
            if self._thread is None:
                self._start()
            with self._mutex:
                full = self._memory + len(line) > self.memory_bytes
                if not full:
                    self._lines.append(line)
                    self._memory += len(line)
            if full:
                self._drop("memory_full")
            else:
                self._wake.set()
        except Exception:
            self._drop("memory_full")

    def _drop(self, reason: str, n: int = 1) -> None:
        self.dropped += n
        self._dropped[reason].inc(n)

    def _start(self) -> None:
        with self._mutex:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"log-shipper-{self.destination}", daemon=True)
                self._thread.start()

    @property
    def queued(self) -> int:
        """Bytes waiting, in memory and on disk."""
        return self._memory + (self._disk.bytes if self._disk is not None else 0) + \
            (len(self._pending[0]) if self._pending else 0)

    # -- the sender thread -------------------------------------------------------------
    def _run(self) -> None:
        # Created here, in the process that sends: a process that never logs (an idle
        # pool process) must not report itself disconnected.
        self._connected = self._metrics.connected.labels(self.destination)
        while True:
            try:
                if self.buffer_dir and self._disk is None:
                    self._disk = _DiskBuffer(self.buffer_dir, self.buffer_bytes)
                if not self._step():
                    break
            except Exception as exc:  # a bug or a broken disk buffer: the shipper lives on
                self._disconnect(exc)
                self._stop.wait(max(0.0, self._retry_at - time.monotonic()))
        self._close_socket()

    def _step(self) -> bool:
        """One round: connect, spill or send. False once stopped and nothing is left."""
        if self._sock is None:
            if time.monotonic() >= self._retry_at:
                try:
                    self._connect()
                except OSError as exc:
                    self._disconnect(exc)
            if self._sock is None:
                self._spill()
                self._publish()
                if self._stop.is_set():
                    return False
                self._wake.wait(max(0.0, min(self._retry_at - time.monotonic(), 0.5)))
                self._wake.clear()
                return True
        if self._disk is not None and self._disk.bytes:
            self._spill()  # keep the order: newer lines queue behind the disk's
        batch = self._pending or self._next_batch()
        self._publish()
        if batch is None:
            if self._stop.is_set():
                return False
            self._wake.wait(0.5)
            self._wake.clear()
            return True
        self._pending = batch
        data, from_disk = batch
        try:
            if self._peer_closed():
                raise ConnectionResetError("the destination closed the connection")
            self._sock.sendall(data)
        except OSError as exc:  # waiting for the retry happens above, spilling to disk meanwhile
            self._disconnect(exc)
            return True
        self._pending = None
        if from_disk:
            self._disk.commit(len(data))
        lines = data.count(b"\n")
        self.sent += lines
        self._sent.inc(lines)
        if self._reported:
            log.info("log shipper: sending to %s again", self.destination)
            self._reported.clear()
        self._delay = self.backoff_min
        return True

    def _next_batch(self) -> tuple[bytes, bool] | None:
        if self._disk is not None and self._disk.bytes:
            return self._disk.read(self.batch_bytes), True
        data = self._take_from_memory()
        return (data, False) if data is not None else None

    def _spill(self) -> None:
        """Memory (and a failed batch from memory) to the disk buffer, if there is one."""
        if self._disk is None:
            return
        if self._pending is not None and not self._pending[1]:
            if not self._disk.append(self._pending[0]):
                self._drop("buffer_full", self._pending[0].count(b"\n"))
            self._pending = None
        while True:
            batch = self._take_from_memory()
            if batch is None:
                return
            if not self._disk.append(batch):
                self._drop("buffer_full", batch.count(b"\n"))

    def _take_from_memory(self) -> bytes | None:
        lines, size = [], 0
        with self._mutex:
            while self._lines and (not lines or size + len(self._lines[0]) <= self.batch_bytes):
                line = self._lines.popleft()
                lines.append(line)
                size += len(line)
            self._memory -= size
        return b"".join(lines) if lines else None

    def _publish(self) -> None:
        self._buffered["memory"].set(self._memory + (len(self._pending[0]) if self._pending and not self._pending[1] else 0))
        self._buffered["disk"].set(self._disk.bytes if self._disk is not None else 0)

    def _connect(self) -> None:
        sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        sock.settimeout(self.send_timeout)  # CPython waits with poll(): no fd limit
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        self._sock, self._selector = sock, selector
        self.connects += 1
        self._connected.set(1)

    def _peer_closed(self) -> bool:
        # Logstash never writes to us: a readable socket means EOF or a reset. Sending
        # into such a socket would "succeed" and lose the data, so reconnect first.
        if not self._selector.select(0):
            return False
        try:
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _disconnect(self, exc: BaseException) -> None:
        self._close_socket()
        kind = f"{type(exc).__name__}: {getattr(exc, 'errno', '')}"
        if kind not in self._reported:  # once per kind of error until sending works again
            self._reported.add(kind)
            log.warning("log shipper: cannot send to %s (%s: %s); buffering and retrying",
                        self.destination, type(exc).__name__, exc)
        self._retry_at = time.monotonic() + self._backoff()

    def _backoff(self) -> float:
        delay = self._delay * random.uniform(0.8, 1.2)
        self._delay = min(self._delay * 2, self.backoff_max)
        return delay

    def _close_socket(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self._connected is not None:
            self._connected.set(0)

    # -- shutdown ----------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds until everything is sent; True when it was.
        Without a timeout (logging.shutdown() at exit calls it so) wait up to 2 s, and
        only while connected: an absent Logstash must not delay the app's exit."""
        if timeout is None:
            if self._sock is None:
                return not self.queued
            timeout = 2.0
        deadline = time.monotonic() + timeout
        while self._thread is not None and self.queued and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not self.queued

    def close(self) -> None:
        """Send what can be sent within flush()'s limits, stop the thread, keep the disk
        buffer's files for the next process."""
        try:
            if not self._closed and self._thread is not None and self._pid == os.getpid():
                self.flush()
                self._stop.set()
                self._wake.set()
                self._thread.join(timeout=1.0)  # a daemon: a send stuck past this is left behind
            self._closed = True
            self._stop.set()
            if self._disk is not None and (self._thread is None or not self._thread.is_alive()):
                self._disk.close()
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
    environment: str | None = None,
    capture: tuple[str, ...] = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access", "celery"),
    log_file: str | None = None,
    log_file_max_bytes: int = 10 * 1024 * 1024,
    log_file_backups: int = 10,
    **handler_options,
) -> TcpJsonLinesHandler | None:
    """Send every log record as ECS JSON to stdout and, when `logstash` ("host:port",
    default the LOGSTASH_ADDRESS environment variable) is set, to Logstash; with
    LOG_BUFFER_DIR set (or buffer_dir=...), through a disk buffer; with `log_file`
    (default the LOG_FILE environment variable) also to that file, rotated at
    `log_file_max_bytes` keeping `log_file_backups` old files (the monitoring guide's
    10 MB x 10). Replaces (and closes) the root logger's handlers and makes the servers'
    own loggers (`capture`) propagate to it. Returns the Logstash handler, or None."""
    import ecs_logging

    formatter = ecs_logging.StdlibFormatter()
    correlation = CorrelationFilter(service_name, environment)
    console = logging.StreamHandler(stream or sys.stdout)
    handlers: list[logging.Handler] = [console]
    path = log_file if log_file is not None else os.environ.get("LOG_FILE", "")
    if path:
        from logging.handlers import RotatingFileHandler

        handlers.append(RotatingFileHandler(path, maxBytes=log_file_max_bytes, backupCount=log_file_backups,
                                            encoding="utf-8"))
    address = logstash if logstash is not None else os.environ.get("LOGSTASH_ADDRESS", "")
    shipper = None
    if address:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "5000")
        handler_options.setdefault("buffer_dir", os.environ.get("LOG_BUFFER_DIR") or None)
        shipper = TcpJsonLinesHandler(host, int(port), **handler_options)
        handlers.append(shipper)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(correlation)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name in capture:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        logger.propagate = True
    return shipper
