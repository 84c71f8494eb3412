"""The alert sink: Alertmanager's webhook (payload version 4) stored in the `alerts` table.

Alertmanager posts {"version": "4", "status": ..., "alerts": [{"status", "labels",
"annotations", "startsAt", "endsAt", "fingerprint", ...}, ...]} to every receiver of
alertmanager/alertmanager.yml; storing is idempotent (db.alerts), so its retries are safe.
A malformed payload is refused with 400 naming the field; Alertmanager logs that and
does not retry a 4xx.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, request

from db.alerts import AlertRecord, AlertRow, list_alerts, store_alerts
from db.models import ALERT_STATUSES
from exporter.params import Params
from exporter.render import json_response, records_response

sink = Blueprint("alerts", __name__, url_prefix="/api/v1")
MAX_ALERTS = 1000
# Alertmanager's "zero time": endsAt of an alert still firing.
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class BadPayload(ValueError):
    """The webhook body is not what Alertmanager sends; `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@sink.post("/alerts")
def receive():
    body = request.get_json(silent=True)
    alerts = parse_webhook(body)
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
    try:
        return AlertRecord(
            fingerprint=item.get("fingerprint"),
            status=item.get("status"),
            labels=item.get("labels"),
            annotations=item.get("annotations", {}),
            starts_at=_time(f"{where}.startsAt", item.get("startsAt"), required=True),
            ends_at=None if ends_at is None or ends_at <= _ZERO_TIME else ends_at,
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

