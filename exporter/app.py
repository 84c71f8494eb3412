"""The exporter's Flask application: /metrics, /healthz, the REST API and the alert sink.

Errors are answered, never raised: a bad parameter or payload is a 400 naming it, an
unknown path a 404, a database that cannot be read a 503; all as JSON.  A 500 would
mean a bug, and is logged with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import column, select, table
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from db import migrate
from db.database import Database
from db.reading import reading
from exporter.alerts import BadPayload, sink
from exporter.api import api
from exporter.metrics import build_registry
from exporter.params import BadParameter
from exporter.render import json_response

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(database: Database, clock: Callable[[], datetime] = utc_now) -> Flask:
    """The WSGI application over an open store (the caller owns `database` and disposes of it)."""
    app = Flask("exporter")
    app.config.update(DATABASE=database, CLOCK=clock, MAX_CONTENT_LENGTH=MAX_BODY_BYTES)
    registry = build_registry(database, clock)
    expected_revision = migrate.head_revision()

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})

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
        return json_response({"error": str(exc), "parameter": exc.parameter}, status=400)

    @app.errorhandler(BadPayload)
    def bad_payload(exc: BadPayload) -> Response:
        return json_response({"error": str(exc), "field": exc.field}, status=400)

    @app.errorhandler(SQLAlchemyError)
    def database_error(exc: SQLAlchemyError) -> Response:
        log.warning("request failed on the database: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0][:200])
        return json_response({"error": "the database is not available"}, status=503)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return json_response({"error": exc.description or exc.name}, status=exc.code or 500)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return json_response({"error": "internal error"}, status=500)
