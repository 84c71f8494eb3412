"""One small HTTP server for /metrics, /healthz, /readyz and /status.

Why a plain WSGI app on waitress (bot.telemetry.http_server): the bot must not depend on
a web framework (Flask belongs to the exporter), yet its server must stay bounded under a
flood of idle or half-sent connections — waitress keeps connections in one poll loop and
runs requests on a fixed pool of 4 threads, with idle and size limits, the same server
library and profile as the exporter.  A scrape or a health probe never touches the trading
thread: it only calls the providers, which read state the engine already keeps (no broker
calls in a probe).  The default bind is 127.0.0.1; compose binds 0.0.0.0 on its own network.

- ``/healthz`` (liveness): 200 while the loop is turning, 503 when it has stalled — the
  supervisor restarts the process on 503.
- ``/readyz`` (readiness): 200 when every check passes; the body names each check.
- ``/status``: a JSON snapshot for humans: the same account, equity and positions that
  /metrics already gives Prometheus, nothing more (no settings, no secrets; error texts
  pass through the log redactor), so it needs no token of its own (README, Security).
- ``/metrics``: Prometheus text, or OpenMetrics (with exemplars) when the scraper asks.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from prometheus_client.exposition import choose_encoder, gzip_accepted

from bot.telemetry.http_server import TELEMETRY_LIMITS, BackgroundServer, ServerLimits
from bot.telemetry.metrics import BotMetrics
from bot.telemetry.redaction import REDACTOR as _REDACTOR

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, dict[str, Any]]]

STALL_CYCLES = 3  # the loop counts as stalled after this many missed cycle intervals


class LivenessTracker:
    """The loop calls :meth:`beat` once per cycle; alive while the last beat is recent.

    ``cycle_seconds`` is the WALL-clock interval between cycles (the engine converts
    simulated time); alive means the last beat (or creation, before the first beat) is
    younger than ``STALL_CYCLES`` intervals. Uses time.monotonic, immune to clock jumps.
    """

    def __init__(self, cycle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not cycle_seconds > 0:
            raise ValueError(f"cycle_seconds must be > 0, got {cycle_seconds!r}")
        self.cycle_seconds = float(cycle_seconds)
        self._clock = clock
        self._last_beat = clock()
        self._beats = 0

    def beat(self) -> None:
        self._last_beat = self._clock()
        self._beats += 1

    @property
    def max_age_seconds(self) -> float:
        return STALL_CYCLES * self.cycle_seconds

    def age_seconds(self) -> float:
        return self._clock() - self._last_beat

    def alive(self) -> bool:
        return self.age_seconds() < self.max_age_seconds

    def check(self) -> tuple[bool, dict[str, Any]]:
        """A ready-made ``liveness`` callable for :class:`TelemetryServer`."""
        age = self.age_seconds()
        return age < self.max_age_seconds, {
            "last_beat_age_seconds": round(age, 3),
            "max_age_seconds": self.max_age_seconds,
            "beats": self._beats,
        }


def _json_default(value: Any) -> Any:
    return str(value)  # Decimal, datetime, enums…: readable, exact


ENDPOINTS = ("/metrics", "/healthz", "/readyz", "/status")


class TelemetryServer:
    """Serves the telemetry endpoints on one port from a daemon thread (``port=0``: any free port)."""

    def __init__(
        self,
        metrics: BotMetrics,
        host: str = "127.0.0.1",
        port: int = 8000,
        status_provider: Callable[[], dict[str, Any]] = dict,
        liveness: Check = lambda: (True, {}),
        readiness: Check = lambda: (True, {}),
        limits: ServerLimits = TELEMETRY_LIMITS,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self._requested_port = port
        self.status_provider = status_provider
        self.liveness = liveness
        self.readiness = readiness
        self.limits = limits
        self._server: BackgroundServer | None = None

    @property
    def port(self) -> int:
        """The port actually bound (meaningful after start())."""
        if self._server is None:
            return self._requested_port
        return self._server.port

    def start(self) -> None:
        if self._server is not None:
            return
        server = BackgroundServer(self.wsgi_app, self.host, self._requested_port, self.limits,
                                  ident="tradewatch-telemetry", thread_name="telemetry-http")
        self._server = server
        server.start()
        log.info("telemetry server listening", extra={"host": self.host, "port": self.port})

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    # -- the WSGI application ---------------------------------------------------------------

    def wsgi_app(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/").rstrip("/") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path not in ENDPOINTS:
            status, ctype, body, headers = self._json(404, {"error": "not found", "endpoints": list(ENDPOINTS)})
        elif method not in ("GET", "HEAD"):
            status, ctype, body, headers = self._json(405, {"error": f"{method[:10]} not allowed: GET only"})
            headers = [*headers, ("Allow", "GET, HEAD")]
        elif path == "/metrics":
            status, ctype, body, headers = self.render_metrics(environ.get("HTTP_ACCEPT"),
                                                               environ.get("HTTP_ACCEPT_ENCODING"))
        elif path == "/healthz":
            status, ctype, body, headers = self._json(*self.render_check(self.liveness, "alive", "stalled",
                                                                         "details"))
        elif path == "/readyz":
            status, ctype, body, headers = self._json(*self.render_check(self.readiness, "ready", "not_ready",
                                                                         "checks"))
        else:
            status, ctype, body, headers = self._json(*self.render_status())
        start_response(f"{status} {HTTPStatus(status).phrase}", [
            ("Content-Type", ctype), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"), *headers])
        return [b"" if method == "HEAD" else body]

    @staticmethod
    def _json(status: int, payload: dict) -> tuple[int, str, bytes, list]:
        return status, "application/json", json.dumps(payload, default=_json_default).encode("utf-8"), []

    # -- endpoint bodies (status code, content type, body, extra headers) ----------------

    def render_metrics(self, accept: str | None, accept_encoding: str | None) -> tuple[int, str, bytes, list]:
        encoder, content_type = choose_encoder(accept or "")
        body = encoder(self.metrics.registry)
        headers = []
        if gzip_accepted(accept_encoding or ""):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        return 200, content_type, body, headers

    def render_check(self, check: Check, ok_word: str, fail_word: str, details_key: str) -> tuple[int, dict]:
        try:
            ok, details = check()
        except Exception as exc:
            log.warning("health check raised", extra={"endpoint": details_key, "error": repr(exc)})
            ok, details = False, {"error": _REDACTOR.redact_text(f"{exc.__class__.__name__}: {exc}")}
        return (200 if ok else 503), {"status": ok_word if ok else fail_word, details_key: details}

    def render_status(self) -> tuple[int, dict]:
        try:
            return 200, self.status_provider()
        except Exception as exc:
            log.warning("status provider raised", extra={"error": repr(exc)})
            return 500, {"error": _REDACTOR.redact_text(f"{exc.__class__.__name__}: {exc}")}
