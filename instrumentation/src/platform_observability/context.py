"""Per-request context the JSON logs carry: request id and user id (contextvars, so each
asyncio task and each thread sees its own)."""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)

_tracker = None


def new_request_id() -> str:
    return os.urandom(16).hex()  # as random as uuid4().hex, a quarter of its cost


def get_request_id() -> str | None:
    return request_id_var.get()


def get_user_id() -> str | None:
    return user_id_var.get()


def set_user_id(user_id) -> None:
    """Call once the request is authenticated: the user id goes into every log line of the
    request and counts the user as active (when a tracker is set with track_active_users)."""
    value = None if user_id is None else str(user_id)
    user_id_var.set(value)
    if value is not None and _tracker is not None:
        try:
            _tracker.seen(value)
        except Exception as exc:  # a tracker outage must not fail the request
            log.debug("active users tracker: %s", exc)


def set_active_users_tracker(tracker) -> None:
    global _tracker
    _tracker = tracker


class InMemoryActiveUsers:
    """Users seen in the last `window` seconds, in this process. Right for one process;
    with several workers use RedisActiveUsers, or each worker counts only its own users."""

    def __init__(self, window: float = 300.0):
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, user_id: str) -> None:
        with self._lock:
            self._seen[user_id] = time.monotonic()

    def count(self) -> int:
        cutoff = time.monotonic() - self.window
        with self._lock:
            for user in [u for u, t in self._seen.items() if t < cutoff]:
                del self._seen[user]
            return len(self._seen)


class RedisActiveUsers:
    """Users seen in the last `window` seconds, shared by every process through one Redis
    sorted set (member = user id, score = last seen). Writes are throttled per user to one
    every `window / 10` seconds per process, so a busy user costs no Redis round trip."""

    def __init__(self, client, key: str = "platform_observability:active_users", window: float = 300.0):
        self.client = client
        self.key = key
        self.window = window
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, user_id: str) -> None:
        now = time.time()
        with self._lock:
            last = self._written.get(user_id)
            if last is not None and now - last < self.window / 10:
                return
            self._written[user_id] = now
            if len(self._written) > 100_000:  # bounded memory: forget the oldest half
                for user, _ in sorted(self._written.items(), key=lambda i: i[1])[:50_000]:
                    del self._written[user]
        self.client.zadd(self.key, {user_id: now})

    def count(self) -> int:
        now = time.time()
        pipe = self.client.pipeline()
        pipe.zremrangebyscore(self.key, "-inf", now - self.window)
        pipe.zcard(self.key)
        pipe.expire(self.key, int(self.window) * 2)
        return int(pipe.execute()[1])
