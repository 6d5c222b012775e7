"""Celery: task duration and failures from signals, queue depth read from the broker,
and the worker's /metrics server.

Prefork pool: tasks run in pool child processes, so their metrics only reach the
worker's /metrics with PROMETHEUS_MULTIPROC_DIR set (an empty, writable directory, set
before the worker starts). Without it, run `--pool solo` (or threads); the worker warns
at start when a prefork child would lose its metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping

from prometheus_client.core import GaugeMetricFamily

from .metrics import TaskMetrics, multiprocess_enabled, register_live_collector, task_metrics

log = logging.getLogger(__name__)


def instrument_celery(
    app,
    *,
    metrics_port: int | None = None,
    metrics_addr: str = "0.0.0.0",
    metrics: TaskMetrics | None = None,
    queue_length: bool = True,
    configure_logs: bool = False,
    service_name: str | None = None,
):
    """Connect the task metrics to `app`'s signals. With `metrics_port`, the worker's main
    process serves /metrics there once it is ready (every pool process's metrics with
    PROMETHEUS_MULTIPROC_DIR) and, unless queue_length is False, celery_queue_length for
    every queue the app knows (see QueueLengthCollector.queues). With `configure_logs`,
    Celery's own logging setup is replaced by platform_observability.logs.configure_logging
    (ECS JSON to stdout/Logstash)."""
    from celery import signals

    m = metrics or task_metrics()
    started: dict[str, float] = {}
    lock = threading.Lock()
    # The worker's main process's requests by task id, while it holds them.
    received: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    def ours(task) -> bool:  # signals are global: count our app's tasks only
        return getattr(task, "app", app) is app

    def on_received(request=None, **_):
        if request is not None:
            received[request.id] = request

    def on_prerun(task_id=None, **_):
        with lock:
            started[task_id] = time.perf_counter()

    def on_postrun(task_id=None, task=None, state=None, **_):
        # Sent after every run whatever its outcome, so the histogram's _count is the
        # denominator of HighTaskFailureRate. Not for a run cut short (no state: the
        # pool process was told to stop, at a hard time limit): the worker's main
        # process reports that one as a failure and counts its run (on_failure).
        with lock:
            began = started.pop(task_id, None)
        if began is not None and state is not None and task is not None and ours(task):
            m.duration.labels(task.name).observe(time.perf_counter() - began)

    def on_failure(sender=None, task_id=None, **_):
        if not ours(sender):
            return
        name = getattr(sender, "name", None) or "unknown"
        with lock:
            ran_here = task_id in started
        if ran_here:  # task_postrun follows and counts the run
            m.failures.labels(name).inc()
            return
        # Sent by the worker's main process: the pool process running the task died or
        # was killed (hard time limit, lost worker). Count the failure once (Celery
        # reports a hard time limit twice, from Request.on_timeout and on_failure:
        # https://github.com/celery/celery/blob/main/celery/worker/request.py) and its
        # run, from when the pool process took it.
        request = received.pop(task_id, None)
        if request is None:
            return
        m.failures.labels(name).inc()
        began = getattr(request, "time_start", None)
        m.duration.labels(name).observe(max(0.0, time.time() - began) if began else 0.0)

    def on_child_init(**_):
        if not multiprocess_enabled():
            log.warning(
                "prefork pool without PROMETHEUS_MULTIPROC_DIR: task metrics of pool processes "
                "will not reach the worker's /metrics; set it, or run --pool solo"
            )

    def on_child_shutdown(pid=None, **_):
        if multiprocess_enabled():
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())

    def on_ready(sender=None, **_):
        if metrics_port is None:
            return
        if queue_length and _queue_length is None:
            # The worker knows the queues it consumes (-Q) on top of the app's routing.
            export_queue_length(getattr(sender, "app", None) or app)
        serve_metrics(metrics_port, metrics_addr)

    # weak=False: the receivers are closures that would otherwise be collected at once.
    signals.task_received.connect(on_received, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_postrun.connect(on_postrun, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.worker_process_init.connect(on_child_init, weak=False)
    signals.worker_process_shutdown.connect(on_child_shutdown, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    if configure_logs:
        def on_setup_logging(loglevel=None, **_):
            from .logs import configure_logging

            configure_logging(service_name, level=loglevel or logging.INFO)

        signals.setup_logging.connect(on_setup_logging, weak=False)
    return m


_servers: dict[int, object] = {}


def serve_metrics(port: int, addr: str = "0.0.0.0"):
    """Serve exposition_registry() on http://addr:port/metrics from a daemon thread, once
    per port: prometheus_client's start_http_server (OpenMetrics, gzip, name[])."""
    from prometheus_client import start_http_server

    from .metrics import exposition_registry

    if port not in _servers:
        _servers[port], _ = start_http_server(port, addr, registry=exposition_registry())
    return _servers[port]


class QueueLengthCollector:
    """celery_queue_length{queue}: messages waiting in the broker (not tasks being run),
    by a passive queue declare through Kombu, so it works for Redis (sums the priority
    lists) and AMQP alike.

    A background thread polls every `interval` seconds with short timeouts; a scrape only
    reads the last values, so a slow or absent broker never slows /metrics down. While
    the broker is unreachable the last values are kept (the Redis/broker alerts say why).
    Export it from a process that runs even when the workers do not (the API), so a
    backlog is seen when no worker is left to serve it.
    """

    def __init__(self, app, queues=None, interval: float = 5.0, timeout: float = 2.0):
        self.app = app
        self._queues = list(queues) if queues else None
        self.interval = interval
        self.timeout = timeout
        self.values: dict[str, int] = {}
        self.errors = 0
        self.last_success: float | None = None
        self._thread: threading.Thread | None = None
        self._pid = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def queues(self) -> list[str]:
        """The queues given, else every queue the app knows: the default queue, the
        declared ones (task_queues), the ones task_routes sends tasks to (its mapping
        and glob entries; a routing function's queues cannot be listed: declare them in
        task_queues or pass them), and the ones declared in this process since (a
        worker's -Q queues, queues created while routing)."""
        if self._queues:
            return self._queues
        from celery.app.routes import MapRoute, prepare

        conf = self.app.conf
        found = [conf.task_default_queue or "celery"]
        found += [getattr(q, "name", q) for q in conf.task_queues or ()]
        for route in prepare(conf.task_routes):
            if isinstance(route, MapRoute):
                for options in [*route.map.values(), *route.patterns.values()]:
                    queue = options.get("queue") if isinstance(options, Mapping) else options
                    found.append(getattr(queue, "name", queue))
        found += list(self.app.amqp.queues)
        return list(dict.fromkeys(name for name in found if isinstance(name, str) and name))

    def poll(self) -> dict[str, int]:
        """Read every queue's depth from the broker once (raises on broker errors)."""
        from kombu.exceptions import ChannelError

        values = {}
        conn = self.app.connection_for_read(connect_timeout=self.timeout, transport_options={
            "socket_timeout": self.timeout, "socket_connect_timeout": self.timeout,
        })
        try:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=self.timeout)
            for name in self.queues():
                channel = conn.channel()
                try:
                    values[name] = channel.queue_declare(queue=name, passive=True).message_count
                except ChannelError:
                    values[name] = 0  # never declared, or (Redis) empty: nothing waits
                finally:
                    try:
                        channel.close()
                    except Exception:
                        pass
        finally:
            conn.release()
        return values

    def _poll_once(self) -> None:
        try:
            values = self.poll()
        except Exception as exc:
            self.errors += 1
            log.warning("celery_queue_length: broker unreachable (%s); keeping the last values", exc)
            return
        with self._lock:
            self.values.update(values)
        self.last_success = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll_once()
            self._stop.wait(self.interval)

    def start(self) -> "QueueLengthCollector":
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="celery-queue-length", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def describe(self):
        yield GaugeMetricFamily("celery_queue_length", "Messages waiting in a Celery broker queue", labels=["queue"])

    def collect(self):
        if self._thread is None or self._pid != os.getpid():
            self._poll_once()  # the first scrape gets a fresh value, not an empty family
            self.start()
        family = GaugeMetricFamily("celery_queue_length", "Messages waiting in a Celery broker queue", labels=["queue"])
        with self._lock:
            known = dict(self.values)
        for name in self.queues():
            if name in known:
                family.add_metric([name], known[name])
        yield family


def export_queue_length(app, queues=None, interval: float = 5.0) -> QueueLengthCollector:
    """Export celery_queue_length{queue} on this process's /metrics: the given queues,
    else every queue the app knows (QueueLengthCollector.queues). instrument_celery does
    it in the worker; do it in the API as well, so a backlog is seen with no worker up."""
    global _queue_length
    from .metrics import unregister_live_collector

    if _queue_length is not None:  # one celery_queue_length family per exposition
        _queue_length.stop()
        unregister_live_collector(_queue_length)
    _queue_length = QueueLengthCollector(app, queues, interval)
    register_live_collector(_queue_length)
    return _queue_length


_queue_length: QueueLengthCollector | None = None
