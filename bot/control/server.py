"""The control endpoint: a small WSGI app on its own bounded waitress listener, loopback by default.

Why a separate listener and not /control/ on the telemetry server: the telemetry port is meant to
be scraped from elsewhere (compose binds it on 0.0.0.0 for Prometheus), the control port is for
an operator on the bot's host only (CONTROL_HOST 127.0.0.1), and the two want different request
limits (control takes small JSON bodies). Same server library and bounds as the telemetry server
(bot.telemetry.http_server); plain WSGI, no web framework in the bot.

- every request needs `Authorization: Bearer <token>` (the token file, bot.control.token),
  compared in constant time; a wrong or missing token is a JSON 401, counted, and logged (the
  first and then every 100th, so a flood does not flood the log); the token is never logged;
- `GET /control/status`, `POST /control/<pause|resume|close-all|reload-strategies>` with a JSON
  body `{"symbol": ..., "strategy": ...}`; who sends it is the `X-Operator: user@host` header (or an
  "actor" field); bad input is a JSON 400/404/405.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from ..telemetry.http_server import BackgroundServer, ServerLimits
from .desk import COMMANDS, OPTIONS, ControlDesk
from .token import matches

log = logging.getLogger("bot.control")

CONTROL_LIMITS = ServerLimits(threads=2, connection_limit=64, max_request_header_size=8 * 1024,
                              max_request_body_size=4096)
PREFIX = "/control/"
FIELD_LIMIT = 64
STATUS_BY_RESULT = {"ok": 200, "refused": 409, "failed": 500}


class BadRequest(Exception):
    pass


def _text_field(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > FIELD_LIMIT or not value.isprintable():
        raise BadRequest(f"{name}: expected a printable string of at most {FIELD_LIMIT} characters")
    return value.strip()


class ControlApp:
    def __init__(self, desk: ControlDesk, token: str):
        self.desk = desk
        self._token = token

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        status, payload = self.handle(environ)
        body = json.dumps(payload, default=str).encode("utf-8")
        start_response(f"{status} {HTTPStatus(status).phrase}", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return [body]

    def handle(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        action = path[len(PREFIX):].rstrip("/") if path.startswith(PREFIX) else None
        if action not in COMMANDS:
            return 404, {"error": "not found", "commands": sorted(COMMANDS)}
        if not self._authorised(environ.get("HTTP_AUTHORIZATION")):
            refused = self.desk.count("auth", "unauthorized")
            if refused == 1 or refused % 100 == 0:
                log.warning("control request refused: missing or wrong token (%d so far)", refused,
                            extra={"remote": environ.get("REMOTE_ADDR"), "path": path[:80]})
            return 401, {"error": "missing or wrong control token"}
        wanted = "GET" if action == "status" else "POST"
        if method != wanted:
            return 405, {"error": f"{method[:10]} not allowed: {wanted} {PREFIX}{action}"}
        try:
            body = self._body(environ) if method == "POST" else {}
            actor = _text_field(body, "actor") or _text_field({"actor": environ.get("HTTP_X_OPERATOR")}, "actor") or "unknown"
            args = {name: _text_field(body, name) for name in OPTIONS.get(action, ()) if body.get(name) is not None}
            unknown = set(body) - {"actor", *OPTIONS.get(action, ())}
            if unknown:
                raise BadRequest(f"unknown option {sorted(unknown)[0]!r} for {action}")
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        if "symbol" in args:
            args["symbol"] = args["symbol"].upper()
        result, payload = self.desk.execute(action, args, actor)
        return STATUS_BY_RESULT[result], payload

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return matches(self._token, header[len("Bearer "):].strip())

    @staticmethod
    def _body(environ: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length > CONTROL_LIMITS.max_request_body_size:
            raise BadRequest("body too large")
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequest("body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body


class ControlServer:
    """The control app served from a daemon thread (`port=0`: any free port)."""

    def __init__(self, app: ControlApp, host: str, port: int):
        self._server = BackgroundServer(app, host, port, CONTROL_LIMITS, ident="tradewatch-control",
                                        thread_name="control-http")

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._server.start()
        log.info("control endpoint listening", extra={"port": self.port})

    def stop(self) -> None:
        self._server.stop()
