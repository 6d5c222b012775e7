"""HTTP for the smoke checks: GET only, within one deadline for the whole run.

ReadOnlySession refuses every method but GET and HEAD before anything leaves the
machine, so no check can create, change or send through a service's API by mistake.
A service that did not answer once is not asked again in the same run: the other checks
that need it fail at once with the same reason instead of each waiting for a timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

# Longest wait for one answer; a run never goes beyond its own deadline either.
REQUEST_TIMEOUT = 10.0


class SmokeError(Exception):
    """A check cannot get what it needs: the message says what and why."""


class Unreachable(SmokeError):
    pass


class NotSetUp(SmokeError):
    """What the command needs is not configured: the message says how to set it up."""


class OutOfTime(SmokeError):
    pass


class HttpStatus(SmokeError):
    def __init__(self, status: int, url: str, text: str):
        super().__init__(f"HTTP {status} from GET {url}: {text.strip()[:200]}")
        self.status = status
        self.text = text


class ReadOnlySession(requests.Session):
    def request(self, method, url, *args, **kwargs):
        if method.upper() not in ("GET", "HEAD"):
            raise PermissionError(f"make smoke is read-only: refused {method} {url}")
        return super().request(method, url, *args, **kwargs)


class Budget:
    """The time left for the run: each request gets at most what remains."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def timeout(self) -> float:
        left = self.end - time.monotonic()
        if left < 0.5:
            raise OutOfTime(f"not run: the run's {self.seconds:.0f} s were spent")
        return min(REQUEST_TIMEOUT, left)


@dataclass
class Endpoint:
    """How to reach one service: base URL and credentials (None when not given)."""

    name: str
    url: str | None
    auth: tuple[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True
    missing: str = ""  # why url is None: what to set


class Client:
    def __init__(self, endpoint: Endpoint, session: requests.Session, budget: Budget):
        self.endpoint = endpoint
        self.session = session
        self.budget = budget
        self.down: str | None = None

    @property
    def base(self) -> str:
        if not self.endpoint.url:
            raise SmokeError(f"no address for {self.endpoint.name}: {self.endpoint.missing}")
        return self.endpoint.url.rstrip("/")

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> requests.Response:
        url = self.base + path
        if self.down:
            raise Unreachable(self.down)
        try:
            return self.session.get(url, params=params, auth=self.endpoint.auth, verify=self.endpoint.verify,
                                    headers={**self.endpoint.headers, **(headers or {})},
                                    timeout=self.budget.timeout())
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.down = f"{self.endpoint.name} at {self.base} did not answer: {type(exc).__name__}: {reason(exc)}"
            raise Unreachable(self.down) from None
        except requests.RequestException as exc:
            raise SmokeError(f"GET {url}: {type(exc).__name__}: {reason(exc)}") from None

    def json(self, path: str, params: dict | None = None, ok: tuple[int, ...] = (200,)) -> Any:
        response = self.get(path, params)
        if response.status_code not in ok:
            raise HttpStatus(response.status_code, response.url, response.text)
        try:
            return response.json()
        except ValueError:
            raise SmokeError(f"GET {response.url}: not JSON: {response.text[:200]!r}") from None

    def ok(self, path: str) -> None:
        """The path answers 200 (health and readiness endpoints)."""
        response = self.get(path)
        if response.status_code != 200:
            raise HttpStatus(response.status_code, response.url, response.text)


def reason(exc: Exception) -> str:
    """The innermost cause of a requests error: 'Connection refused', not a repr chain."""
    text = str(exc)
    for marker in ("Errno", "Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            start = text.find("[Errno")
            return text[start:].split("'")[0].rstrip(")\"' ") if start >= 0 else marker
    return text[:200]
