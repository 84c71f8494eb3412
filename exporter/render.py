"""Answers as JSON (the default) or CSV (`?format=csv`), with exact money.

Why money is a string in JSON: a JSON number is a binary float for most readers, and
"0.10" + "0.20" must stay 0.30.  Dates and times are ISO 8601 (UTC); ratios are numbers,
and a ratio that does not exist (NaN, infinite, or undefined) is null.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Response

JSON_TYPE = "application/json"
CSV_TYPE = "text/csv; charset=utf-8"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


_AS_IS = frozenset({str, int, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}  # per type: its dataclass fields, or None (not one)
_UNSEEN: Any = object()


def plain(value: Any) -> Any:
    """A value as JSON-ready data."""
    kind = type(value)
    if kind in _AS_IS:  # most values of a page of trades: a fast path before the checks below
        return value
    names = _FIELD_NAMES.get(kind, _UNSEEN)
    if names is _UNSEEN:  # fields() and is_dataclass() cost more than the values: once per type
        names = _FIELD_NAMES[kind] = (
            tuple(f.name for f in fields(value)) if is_dataclass(value) and not isinstance(value, type) else None
        )
    if names is not None:  # the fields' plain values inline: a page has thousands (a call each cost more)
        result = {}
        for name in names:
            field_value = getattr(value, name)
            field_kind = type(field_value)
            if field_kind in _AS_IS:
                result[name] = field_value
            elif field_kind is Decimal:
                result[name] = str(field_value)
            else:
                result[name] = plain(field_value)
        return result
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(plain(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(text + "\n", status=status, mimetype=JSON_TYPE, headers=headers)


def ready_json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """json_response of a body that is JSON-ready already (str, int, float, bool, None, lists and dicts of
    them, as db's *_plain readers give): no walk through plain(), which costs more than a long list's dumps."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(text + "\n", status=status, mimetype=JSON_TYPE, headers=headers)


def safe_cell(text: str) -> str:
    """`text` as a spreadsheet shows it, never as a formula (see the module docstring)."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell(value: Any) -> str:
    """One CSV cell, escaped: money and times as in JSON, None empty, booleans true/false, documents as JSON."""
    return safe_cell(_cell_text(value))


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    rendered = plain(value)
    return rendered if isinstance(rendered, str) else str(rendered)


def csv_response(header: Sequence[str], rows: Iterable[Sequence[Any]], headers: dict[str, str] | None = None) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(str(name)) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return Response(buffer.getvalue(), mimetype="text/csv", content_type=CSV_TYPE, headers=headers)


def records_response(records: Sequence[Any], record_type: type, fmt: str, extra: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    """A list of dataclass records: {"items": [...], **extra} or a CSV table with one row per record."""
    if fmt == "csv":
        names = [f.name for f in fields(record_type)]
        return csv_response(names, ([getattr(r, n) for n in names] for r in records), headers=headers)
    return json_response({"items": list(records), **(extra or {})}, headers=headers)


def record_response(record: Any, fmt: str) -> Response:
    """One dataclass record: the JSON object, or a CSV header and one row."""
    if fmt == "csv":
        names = [f.name for f in fields(record)]
        return csv_response(names, [[getattr(record, n) for n in names]])
    return json_response(record)
