"""The exporter's Flask application: /metrics, /healthz, the REST API and the alert sink.

Errors are answered, never raised: a bad parameter or payload is a 400 naming it, an
unknown path a 404, a database that cannot be read a 503; all as JSON, and every 4xx names
the `parameter` at fault (`path`, `method`, `body`, `Authorization` for the transport ones).
A 500 would mean a bug, and is logged with its traceback (tests/test_exporter_fuzz.py).

Authentication runs before any body is read (exporter.auth): every write (the alert sink)
needs the sink token, and the read endpoints under /api/v1 need the API token when one is
configured; /metrics and /healthz stay open for Prometheus and the container healthcheck.
Refusals are counted: tradewatch_exporter_unauthorized_requests_total{endpoint},
tradewatch_exporter_requests_refused_total{code}; tradewatch_exporter_alert_sink_enabled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, Response, request
from prometheus_client import Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import column, select, table
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from db import migrate
from db.database import Database
from db.reading import reading
from exporter.alerts import BadPayload, sink
from exporter.api import api
from exporter.auth import bearer, token_matches
from exporter.exposition import render
from exporter.metrics import build_registry
from exporter.params import BadParameter
from exporter.render import json_response

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


def utc_now() -> datetime:
    return datetime.now(UTC)


_READ_METHODS = ("GET", "HEAD", "OPTIONS")
# The transport-level parameter a 4xx of werkzeug refers to.
_HTTP_PARAMETER = {401: "Authorization", 404: "path", 405: "method", 413: "body", 415: "Content-Type"}


def create_app(database: Database, clock: Callable[[], datetime] = utc_now, sink_token: str | None = None,
               api_token: str | None = None, metrics_max_age_seconds: float = 0.0) -> Flask:
    """The WSGI application over an open store (the caller owns `database` and disposes of it).

    `sink_token`: required (as `Authorization: Bearer ...`) by every write; None refuses all writes.
    `api_token`: required by the /api/v1 reads when set.
    `metrics_max_age_seconds`: how long /metrics may reuse figures of a changed store (exporter/figures.py).
    """
    app = Flask("exporter")
    app.config.update(DATABASE=database, CLOCK=clock, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    registry = build_registry(database, clock, metrics_max_age_seconds)
    expected_revision = migrate.head_revision()
    unauthorized = Counter("tradewatch_exporter_unauthorized_requests", "Requests refused for a missing or wrong "
                           "bearer token, by endpoint (sink: writes, api: reads).", ["endpoint"], registry=registry)
    refused = Counter("tradewatch_exporter_requests_refused", "Requests answered with a 4xx, by status code.",
                      ["code"], registry=registry)
    sink_enabled = Gauge("tradewatch_exporter_alert_sink_enabled",
                         "1 if the alert sink accepts writes (EXPORTER_SINK_TOKEN is set).", registry=registry)
    sink_enabled.set(1 if sink_token else 0)
    for endpoint in ("sink", "api"):
        unauthorized.labels(endpoint)

    @app.before_request
    def authenticate() -> Response | None:
        """Runs before the body is read: an unauthenticated request costs no parsing and writes nothing."""
        if request.method not in _READ_METHODS:
            if sink_token is None:
                return json_response({"error": "the alert sink is off: EXPORTER_SINK_TOKEN is not set",
                                      "parameter": "Authorization"}, status=503)
            if not token_matches(bearer(request.headers.get("Authorization")), sink_token):
                unauthorized.labels("sink").inc()
                return _unauthorized("a write needs the sink token: Authorization: Bearer <EXPORTER_SINK_TOKEN>")
        elif api_token is not None and request.path.startswith("/api/"):
            if not token_matches(bearer(request.headers.get("Authorization")), api_token):
                unauthorized.labels("api").inc()
                return _unauthorized("the API needs its token: Authorization: Bearer <EXPORTER_API_TOKEN>")
        return None

    @app.after_request
    def count_refusals(response: Response) -> Response:
        if 400 <= response.status_code < 500:
            refused.labels(str(response.status_code)).inc()
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render(registry), status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/healthz")
    def healthz() -> Response:
        revision = schema_revision(database)
        if revision is None:
            return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
        if revision != expected_revision:
            return json_response(
                {"status": "unavailable", "database": "reachable", "schema": revision, "expected": expected_revision},
                status=503,
            )
        return json_response({"status": "ok", "database": "reachable", "schema": revision})

    app.register_blueprint(api)
    app.register_blueprint(sink)
    _install_error_handlers(app)
    return app


def _unauthorized(message: str) -> Response:
    response = json_response({"error": message, "parameter": "Authorization"}, status=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="tradewatch-exporter"'
    return response


def schema_revision(database: Database) -> str | None:
    """The schema revision the database reports, None if it cannot be read (read-only: no ping write)."""
    version = table("alembic_version", column("version_num"))
    try:
        with reading(database) as connection:
            return connection.execute(select(version.c.version_num)).scalar_one_or_none() or ""
    except SQLAlchemyError as exc:
        log.warning("database not readable: %s", str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200])
        return None


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(BadParameter)
    def bad_parameter(exc: BadParameter) -> Response:
        return json_response({"error": str(exc), "parameter": exc.parameter[:64]}, status=400)

    @app.errorhandler(BadPayload)
    def bad_payload(exc: BadPayload) -> Response:
        return json_response({"error": str(exc), "field": exc.field, "parameter": exc.field},
                             status=exc.status)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError) -> Response:
        log.warning("request failed on the database: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0][:200])
        return json_response({"error": "the database is not available"}, status=503)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        body = {"error": exc.description or exc.name}
        if 400 <= code < 500:
            body["parameter"] = _HTTP_PARAMETER.get(code, "request")
        return json_response(body, status=code)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return json_response({"error": "internal error"}, status=500)
