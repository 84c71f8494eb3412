"""One small HTTP server for /metrics, /healthz, /readyz and /status.

Why stdlib http.server in a daemon thread: the bot must not depend on a web framework
(Flask belongs to the exporter), and a scrape or a health probe must never touch the
trading thread — each request runs on its own thread and only calls the providers,
which should read state the engine already keeps (no broker calls in a probe).

- ``/healthz`` (liveness): 200 while the loop is turning, 503 when it has stalled — the
  supervisor restarts the process on 503.
- ``/readyz`` (readiness): 200 when every check passes; the body names each check.
- ``/status``: a JSON snapshot for humans.
- ``/metrics``: Prometheus text, or OpenMetrics (with exemplars) when the scraper asks.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder, gzip_accepted

from bot.telemetry.metrics import BotMetrics

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


class TelemetryServer:
    """Serves the telemetry endpoints on one port from a daemon thread (``port=0``: any free port)."""

    def __init__(
        self,
        metrics: BotMetrics,
        host: str = "0.0.0.0",
        port: int = 8000,
        status_provider: Callable[[], dict[str, Any]] = dict,
        liveness: Check = lambda: (True, {}),
        readiness: Check = lambda: (True, {}),
    ) -> None:
        self.metrics = metrics
        self.host = host
        self._requested_port = port
        self.status_provider = status_provider
        self.liveness = liveness
        self.readiness = readiness
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (meaningful after start())."""
        if self._server is None:
            return self._requested_port
        return self._server.server_address[1]

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self.host, self._requested_port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="telemetry-http", daemon=True)
        self._thread.start()
        log.info("telemetry server listening", extra={"host": self.host, "port": self.port})

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

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
            ok, details = False, {"error": f"{exc.__class__.__name__}: {exc}"}
        return (200 if ok else 503), {"status": ok_word if ok else fail_word, details_key: details}

    def render_status(self) -> tuple[int, dict]:
        try:
            return 200, self.status_provider()
        except Exception as exc:
            log.warning("status provider raised", extra={"error": repr(exc)})
            return 500, {"error": f"{exc.__class__.__name__}: {exc}"}


def _handler_for(owner: TelemetryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "tradewatch-telemetry"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urlsplit(self.path).path.rstrip("/") or "/"
            try:
                if path == "/metrics":
                    status, ctype, body, headers = owner.render_metrics(
                        self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
                    self._reply(status, ctype, body, headers)
                elif path == "/healthz":
                    self._json(*owner.render_check(owner.liveness, "alive", "stalled", "details"))
                elif path == "/readyz":
                    self._json(*owner.render_check(owner.readiness, "ready", "not_ready", "checks"))
                elif path == "/status":
                    self._json(*owner.render_status())
                else:
                    self._json(404, {"error": "not found", "endpoints": ["/metrics", "/healthz", "/readyz",
                                                                         "/status"]})
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

        def _json(self, status: int, payload: dict) -> None:
            body = json.dumps(payload, default=_json_default).encode("utf-8")
            self._reply(status, "application/json", body, [])

        def _reply(self, status: int, content_type: str, body: bytes, headers: list) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("telemetry request: " + format, *args)

    return Handler
