"""The alert sink: Alertmanager's webhook (payload version 4) stored in the `alerts` table.

Alertmanager posts {"version": "4", "status": ..., "alerts": [{"status", "labels",
"annotations", "startsAt", "endsAt", "fingerprint", ...}, ...]} to every receiver of
alertmanager/alertmanager.yml; storing is idempotent (db.alerts), so its retries are safe.
A malformed payload is refused with 400 naming the field; Alertmanager logs that and
does not retry a 4xx.  The body is parsed here, not by Flask, so that its limits are ours:
at most 1 MiB (413, exporter.app), nested at most MAX_DEPTH levels, no NUL character
(PostgreSQL refuses it in text and JSONB) and no lone surrogate (not encodable as UTF-8).
Only a request carrying the sink token gets here (exporter.app authenticates first).
A resolved alert must carry its endsAt (not before its startsAt): db.alerts applies it
only when it is newer than the stored state.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, request

from db.alerts import AlertRecord, AlertRow, list_alerts, store_alerts
from db.models import ALERT_STATUSES
from exporter.params import Params
from exporter.render import json_response, records_response

sink = Blueprint("alerts", __name__, url_prefix="/api/v1")
MAX_ALERTS = 1000
MAX_DEPTH = 8  # a webhook body is 4 deep (body > alerts > alert > labels)
# Alertmanager's "zero time": endsAt of an alert still firing.
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class BadPayload(ValueError):
    """The webhook body is not what Alertmanager sends; `field` says where."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


@sink.post("/alerts")
def receive():
    if request.mimetype != "application/json":
        raise BadPayload("Content-Type", "the body must be application/json (Alertmanager webhook payload)", 415)
    alerts = parse_webhook(decode_body(request.get_data(cache=False)))
    store_alerts(current_app.config["DATABASE"], alerts, received_at=current_app.config["CLOCK"]())
    return json_response({"stored": len(alerts)})


@sink.get("/alerts")
def history():
    params = Params(request.args, {"status", "limit", "cursor"})
    limit = params.limit()
    rows = list_alerts(
        current_app.config["DATABASE"],
        status=params.choice("status", ALERT_STATUSES),
        limit=limit,
        before_id=params.before_id(),
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else None
    return records_response(rows, AlertRow, params.format(), extra={"next_cursor": next_cursor}, headers=headers)


def decode_body(raw: bytes) -> Any:
    """The JSON document of a request body, refused (BadPayload "body") when unusable."""
    try:
        document = json.loads(raw)
    except RecursionError:
        raise BadPayload("body", f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also UnicodeDecodeError and integers over 4300 digits
        raise BadPayload("body", "the body is not valid JSON") from None
    check_document(document)
    return document


def check_document(document: Any) -> None:
    """Depth and characters of every value, iteratively (a deep document must not recurse here)."""
    pending: list[tuple[Any, str, int]] = [(document, "body", 1)]
    while pending:
        value, where, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise BadPayload("body", f"the body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, where)
                pending.append((item, f"{where}.{key[:40]}" if where != "body" else key[:40], depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, where)


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise BadPayload(where, f"{where} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPayload(where, f"{where} is not valid Unicode (a lone surrogate)") from None


def parse_webhook(body: Any) -> list[AlertRecord]:
    """The alerts of an Alertmanager webhook body, or BadPayload naming the first bad field."""
    if not isinstance(body, dict):
        raise BadPayload("body", "the body must be a JSON object (Alertmanager webhook payload)")
    if body.get("version") != "4":
        raise BadPayload("version", f"only webhook payload version \"4\" is understood, got {body.get('version')!r}")
    items = body.get("alerts")
    if not isinstance(items, list):
        raise BadPayload("alerts", "alerts must be a list")
    if len(items) > MAX_ALERTS:
        raise BadPayload("alerts", f"at most {MAX_ALERTS} alerts per request")
    return [_alert(f"alerts[{index}]", item) for index, item in enumerate(items)]


def _alert(where: str, item: Any) -> AlertRecord:
    if not isinstance(item, dict):
        raise BadPayload(where, f"{where} must be an object")
    ends_at = _time(f"{where}.endsAt", item.get("endsAt"), required=False)
    if ends_at is not None and ends_at <= _ZERO_TIME:
        ends_at = None
    starts_at = _time(f"{where}.startsAt", item.get("startsAt"), required=True)
    if item.get("status") == "resolved":
        if ends_at is None:
            raise BadPayload(f"{where}.endsAt", f"{where}.endsAt is required when the alert is resolved")
        if ends_at < starts_at:  # type: ignore[operator]
            raise BadPayload(f"{where}.endsAt", f"{where}.endsAt is before its startsAt")
    try:
        return AlertRecord(
            fingerprint=item.get("fingerprint"),
            status=item.get("status"),
            labels=item.get("labels"),
            annotations=item.get("annotations", {}),
            starts_at=starts_at,  # type: ignore[arg-type]
            ends_at=ends_at,
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadPayload):
            raise
        raise BadPayload(where, f"{where}: {exc}") from None


def _time(where: str, value: Any, required: bool) -> datetime | None:
    if value is None or value == "":
        if required:
            raise BadPayload(where, f"{where} is required")
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise BadPayload(where, f"{where} must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise BadPayload(where, f"{where} must carry a time zone, got {value!r}")
        return moment.astimezone(UTC) if moment > _ZERO_TIME else _ZERO_TIME
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, BadPayload):
            raise
        raise BadPayload(where, f"{where} must be an RFC 3339 time, got {value!r}") from None

