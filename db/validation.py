"""One-line refusals for malformed records, before they reach the database.

Checks every field of a record against its annotation: Decimal fields take
Decimal (or int), never float; datetimes must be timezone-aware; text must fit
its column; None only where the annotation allows it.  Checking here gives the
same clear error on SQLite (which would store anything) and PostgreSQL.
"""

import dataclasses
import math
import types
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, Union, get_args, get_origin, get_type_hints

from db.vocabulary import TEXT_LIMITS


@cache
def _field_types(cls: type) -> tuple[tuple[str, type, bool], ...]:
    """(name, base type, None allowed) for each dataclass field."""
    hints = get_type_hints(cls)
    result = []
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        optional = False
        if get_origin(hint) in (Union, types.UnionType):
            members = [arg for arg in get_args(hint) if arg is not type(None)]
            optional = len(members) < len(get_args(hint))
            hint = members[0]
        result.append((field.name, hint, optional))
    return tuple(result)


@cache
def _checks(cls: type) -> tuple[tuple[str, str, type, bool], ...]:
    """(name, "Owner.name", base type, None allowed) per field: the error text's prefix made once per class."""
    return tuple((name, f"{cls.__name__}.{name}", kind, optional) for name, kind, optional in _field_types(cls))


def check_record(record: Any, choices: dict[str, tuple[str, ...]] | None = None) -> None:
    """Raise TypeError/ValueError naming the first field of `record` that the store would refuse."""
    if _plainly_good(record, choices):
        return
    for name, where, kind, optional in _checks(type(record)):
        value = getattr(record, name)
        if value is None:
            if not optional:
                raise ValueError(f"{where} is required")
            continue
        _check_value(where, name, kind, value)
        if choices and name in choices and value not in choices[name]:
            raise ValueError(f"{where} must be one of {', '.join(choices[name])}, got {value!r}")


def _plainly_good(record: Any, choices: dict[str, tuple[str, ...]] | None) -> bool:
    """A fast yes for a record whose every field is plainly good; anything else (False) is judged by
    the field-by-field checks, which name the problem. Why: the engine builds a record per signal,
    order and snapshot, and the checks cost a frame or two a field (issue 16)."""
    return _fast_yes(type(record), tuple(choices) if choices else ())(record, choices)


#: Per field type, an expression in `v` that is only True where `_check_value` finds nothing
#: (str: see _fast_yes; `isfinite`: math.isfinite).
_PLAIN = {
    float: "type(v) is float and isfinite(v)",
    Decimal: "type(v) is Decimal and v.is_finite()",
    datetime: "type(v) is datetime and v.tzinfo is not None and v.utcoffset() is not None",
    int: "type(v) is int",
    bool: "type(v) is bool",
}


@cache
def _fast_yes(cls: type, chosen: tuple[str, ...]) -> Callable[[Any, dict[str, tuple[str, ...]] | None], bool]:
    """The fast yes of one record class (with choices for the fields `chosen`), as one expression.

    Why generated (as `dataclasses` makes a class's __init__): a loop over the fields calling a test
    per field was ~60 % of a record's cost, and a signal, an order and a snapshot each build one
    per cycle; one `and` chain with the choices tested only for the fields that have them costs a
    third less than a statement or two per field (issue 16). A required field needs no None test of
    its own: None is no field type's type. The source is made from the class's annotations only
    (names, types, text limits) and the names of the fields with choices."""
    tests = []
    for name, kind, optional in _field_types(cls):
        if kind is str:
            limit = TEXT_LIMITS.get(name)
            test = "type(v) is str" + (f" and len(v) <= {int(limit)}" if limit is not None else "")
        else:
            test = _PLAIN.get(kind, "False")  # date and anything rarer: always the full check
        if name in chosen:
            test += f" and v in choices[{name!r}]"
        if optional:
            tests.append(f"((v := r.{name}) is None or {test})")
        else:  # every test but False begins with type(v): the field is read there
            tests.append("(" + test.replace("type(v)", f"type(v := r.{name})", 1) + ")")
    scope = {"Decimal": Decimal, "datetime": datetime, "isfinite": math.isfinite}
    exec("def fast_yes(r, choices):\n    return " + " and ".join(tests), scope)  # noqa: S102 - our own annotations
    return scope["fast_yes"]


def _check_value(where: str, name: str, kind: type, value: Any) -> None:
    if kind is Decimal:
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"{where} must be a Decimal, got {type(value).__name__} {value!r}")
        if not Decimal(value).is_finite():
            raise ValueError(f"{where} must be finite, got {value}")
    elif kind is datetime:
        if not isinstance(value, datetime):
            raise TypeError(f"{where} must be a datetime, got {type(value).__name__}")
        require_aware(where, value)
    elif kind is date:
        if not isinstance(value, date) or isinstance(value, datetime):
            raise TypeError(f"{where} must be a date, got {type(value).__name__}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, float | int):
            raise TypeError(f"{where} must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value}")
    elif kind is int or kind is bool or kind is str:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"{where} must be {kind.__name__}, got {type(value).__name__}")
        if kind is str and name in TEXT_LIMITS and len(value) > TEXT_LIMITS[name]:
            raise ValueError(f"{where} is longer than {TEXT_LIMITS[name]} characters: {value[:80]!r}")


def require_aware(where: str, value: datetime) -> None:
    """Refuse naive datetimes: the store keeps UTC and cannot guess a naive value's zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where} must be timezone-aware (UTC), got naive {value.isoformat()}")
