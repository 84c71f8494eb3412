"""The records' fast yes (db.validation._plainly_good) only says yes where the field checks find nothing.

Why it exists: every signal, order and snapshot the engine builds is checked on construction
(issue 16: a frame or two per field). Every refusal must keep its exact message, so anything
the fast yes does not clearly accept goes through the field-by-field checks.
"""

import dataclasses
import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from db import records, validation
from db.validation import _checks, _plainly_good, check_record
from db.vocabulary import TEXT_LIMITS

RECORD_TYPES = [cls for cls in vars(records).values()
                if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == records.__name__]

ODD_VALUES = [
    None, 0, 1, -1, True, False, 0.0, 1.5, float("nan"), float("inf"), Decimal("1.5"), Decimal("NaN"),
    Decimal("-Infinity"), "", "x", "HOLD", "BUY", "open", "x" * 5000, datetime(2026, 1, 5, 12, tzinfo=UTC),
    datetime(2026, 1, 5, 12), datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=2))),
    datetime(2026, 1, 5).date(), b"bytes", [1], {"a": 1},
]


GOOD = {
    str: ["x", "HOLD", "EURUSD", "y" * 30], float: [0.0, 0.25, -3.5], Decimal: [Decimal("1.1"), Decimal("-2")],
    datetime: [datetime(2026, 1, 5, 12, tzinfo=UTC)], int: [0, 7, 123456789], bool: [True, False],
}


def _full_check(record, choices):
    """What check_record raises (its type, or None) with the fast yes switched off."""
    saved = validation._plainly_good
    validation._plainly_good = lambda _record, _choices: False
    try:
        check_record(record, choices)
    except (TypeError, ValueError) as exc:
        return type(exc)
    finally:
        validation._plainly_good = saved
    return None


@pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
def test_the_fast_yes_never_accepts_what_the_field_checks_refuse(cls):
    rng = random.Random(cls.__name__)
    fields = [(name, kind) for name, _where, kind, _optional in _checks(cls)]
    names = [name for name, _kind in fields]
    checked = accepted = 0
    for _ in range(400):  # mostly good values of each field's type, now and then an odd one
        values = {name: rng.choice(GOOD.get(kind, ODD_VALUES)) if rng.random() < 0.9 else rng.choice(ODD_VALUES)
                  for name, kind in fields}
        record = object.__new__(cls)  # no __post_init__: the checks are called below
        for name, value in values.items():
            object.__setattr__(record, name, value)
        for choices in (None, {names[0]: ("x", "HOLD")}):
            checked += 1
            if _plainly_good(record, choices):
                accepted += 1
                assert _full_check(record, choices) is None, values
    assert checked == 800
    if all(kind in GOOD for _name, kind in fields):
        assert accepted > 5  # the fast yes is exercised, not only its refusals


def test_plainly_good_records_pass_fast_and_bad_ones_keep_their_messages():
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    good = dict(account="123", time=now, cycle_id="c", correlation_id="k", symbol="EURUSD", strategy="ma",
                signal="HOLD", confidence=0.5, reason="r", price=Decimal("1.1"))
    record = records.SignalRecord(**good)
    assert _plainly_good(record, {"signal": ("BUY", "SELL", "HOLD")})
    for field, bad, error, text in [
        ("price", 1.1, TypeError, "SignalRecord.price must be a Decimal, got float 1.1"),
        ("time", now.replace(tzinfo=None), ValueError, "SignalRecord.time must be timezone-aware"),
        ("signal", "WAIT", ValueError, "SignalRecord.signal must be one of"),
        ("reason", "x" * (TEXT_LIMITS.get("reason", 10**6) + 1), ValueError, "longer than"),
        ("confidence", float("nan"), ValueError, "must be finite"),
    ]:
        if field == "reason" and "reason" not in TEXT_LIMITS:
            continue
        with pytest.raises(error, match=text.replace(".", r"\.")[:40]):
            records.SignalRecord(**{**good, field: bad})
    # int where a Decimal or float is allowed: not "plainly good", still accepted by the full check
    check_record(records.SignalRecord(**{**good, "price": Decimal(1), "confidence": 1}), {"signal": ("HOLD",)})
    assert len(RECORD_TYPES) >= 10
