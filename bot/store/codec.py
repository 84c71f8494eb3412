"""Exact JSON for spooled calls: records, Decimal, datetime and date come back equal to what went in.

Plain `json` would turn Decimal into float (money is never a float here) and
cannot encode datetimes; tagged objects keep each value's type and digits.
Records are named by module and class and may come only from the `db`
package (nothing else is ever imported from a spool file), so a record added
there later is spooled without changes here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_RECORD, _DECIMAL, _DATETIME, _DATE = "$record", "$decimal", "$datetime", "$date"


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    if isinstance(value, datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, date):
        return {_DATE: value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
        cls = type(value)
        return {_RECORD: f"{cls.__module__}:{cls.__qualname__}", "fields": fields}
    raise TypeError(f"cannot spool a {type(value).__name__}: {value!r}")


def _decode(obj: dict[str, Any]) -> Any:
    if _DECIMAL in obj:
        return Decimal(obj[_DECIMAL])
    if _DATETIME in obj:
        return datetime.fromisoformat(obj[_DATETIME])
    if _DATE in obj:
        return date.fromisoformat(obj[_DATE])
    if _RECORD in obj:
        return _record_class(obj[_RECORD])(**obj["fields"])
    return obj


def _record_class(name: str) -> type:
    module, _, qualname = name.partition(":")
    if not (module == "db" or module.startswith("db.")) or not qualname.isidentifier():
        raise ValueError(f"spooled record type {name!r} is not a db record")
    cls = getattr(importlib.import_module(module), qualname, None)
    if cls is None or not dataclasses.is_dataclass(cls):
        raise ValueError(f"spooled record type {name!r} is not a db record")
    return cls


def dumps(arguments: dict[str, Any]) -> str:
    """A call's bound arguments (name -> value) as JSON text."""
    return json.dumps(arguments, default=_encode, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> dict[str, Any]:
    """The inverse of `dumps`."""
    return json.loads(text, object_hook=_decode)
