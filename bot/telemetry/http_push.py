"""Tiny HTTP POST client shared by the Loki and Alertmanager senders.

Why not urllib.request: a sender thread stuck in a request to a hung server must be
interruptible at shutdown. With http.client we keep a handle on the live connection,
so :meth:`Pusher.abort` (called from another thread) shuts its socket down and the
blocked call returns at once. Retry policy lives here too so both senders agree on it.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import random
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class Response:
    """Status, headers and body of one completed POST."""

    status: int
    headers: Message
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """429 and 5xx are the server's way of saying "later"; other 4xx will never succeed."""
        return self.status == 429 or self.status >= 500


def validate_base_url(url: str, what: str) -> urllib.parse.SplitResult:
    """Parse an ``http(s)://host[:port][/prefix]`` base URL or raise a one-line ValueError."""
    parts = urllib.parse.urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid {what} URL {url!r}: expected http(s)://host[:port]")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"invalid {what} URL {url!r}: {exc}") from None
    return parts


def _basic_auth(parts: urllib.parse.SplitResult) -> str | None:
    """``Basic …`` header for ``http://user:password@host`` URLs (e.g. Loki behind a proxy)."""
    if not parts.username:
        return None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class Pusher:
    """POSTs to one fixed endpoint, one request at a time, abortable from another thread."""

    def __init__(self, url: str, path: str, what: str) -> None:
        parts = validate_base_url(url, what)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        base = parts.path.rstrip("/")
        self._path = base if base.endswith(path) else base + path  # accept the full endpoint URL too
        self._auth_header = _basic_auth(parts)
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None

    @property
    def target(self) -> str:
        """The endpoint without credentials, for messages."""
        port = f":{self._port}" if self._port else ""
        return f"{'https' if self._https else 'http'}://{self._host}{port}{self._path}"

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        """Send one POST; raises OSError (incl. timeouts) and http.client.HTTPException on transport failure."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=max(timeout, 0.001))
        if self._auth_header:
            headers = {**headers, "Authorization": self._auth_header}
        with self._lock:
            self._conn = conn
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            reply = conn.getresponse()
            return Response(reply.status, reply.headers, reply.read())
        finally:
            with self._lock:
                self._conn = None
            conn.close()

    def abort(self) -> None:
        """Break the request in flight, if any (used when a close() deadline has passed)."""
        with self._lock:
            conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds asked for by a Retry-After header (delta-seconds or HTTP-date); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, min_backoff: float, max_backoff: float, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt`` (0-based): the server's Retry-After if given, else
    exponential with full jitter between half and all of ``min_backoff * 2**attempt``; always capped."""
    if retry_after is not None:
        return min(retry_after, max_backoff)
    ceiling = min(max_backoff, min_backoff * (2 ** min(attempt, 32)))
    return random.uniform(ceiling / 2, ceiling)
