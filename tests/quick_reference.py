"""The schema's fast yes written field by field: the reference the compiled one is tested against.

`bot.gateway.schema` judges records with one compiled function per kind (bot.gateway.quickcheck);
this is the same fast yes as one plain function per field, easy to read against the full rules
(tests/test_broker_schema.py checks it only says yes where `_scalar` finds no problem, and
tests/test_gateway_quickcheck.py that the compiled functions answer exactly as it does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bot.gateway.schema import INT, NON_NEGATIVE, POSITIVE, SCHEMAS, TEXT, TIME, Context, Field


def field_quick(rule: Field) -> Callable[[Any, Context], bool]:
    """A fast yes for a plainly good scalar (a str, an int or a finite float well inside the rule).

    Why: every position, quote and account record is judged every cycle, and `_scalar` spent a few
    microseconds a field building the answer for the rare bad value.  This only ever says True where
    `_scalar` finds no problem; for anything else (False) `_scalar` judges the record and names
    the problem, so the reasons and their order are unchanged.
    """
    optional = rule.optional
    if rule.type == TEXT:
        max_len = rule.max_len if rule.max_len is not None else math.inf
        symbol = rule.symbol

        def text_ok(value: Any, context: Context) -> bool:
            if value is None:
                return optional
            return type(value) is str and len(value) <= max_len and (
                not symbol or (value != "" and context.symbol_known(value)))

        return text_ok
    whole, is_time, relative = rule.type == INT, rule.type == TIME, rule.relative
    positive, non_negative = rule.sign == POSITIVE, rule.sign == NON_NEGATIVE
    limit = rule.limit if rule.limit is not None else math.inf
    choices = rule.choices

    def number_ok(value: Any, context: Context) -> bool:
        if value is None:
            return optional
        kind = type(value)
        if kind is float:
            if not -math.inf < value < math.inf or (whole and not value.is_integer()):
                return False  # NaN fails the comparison too
        elif kind is not int:
            return False  # bools, numpy scalars, text: `_scalar` decides
        if is_time and optional and value == 0:
            return True
        if (positive and value <= 0) or (non_negative and value < 0) or not -limit < value < limit:
            return False
        if choices is not None and value not in choices:
            return False
        if is_time:
            first, last = context.window(relative)
            return first <= value <= last
        return True

    return number_ok


#: The fast yes of each field of each record kind judged value by value (not "bars": columns).
QUICK = {kind: tuple((rule.name, field_quick(rule)) for rule in fields)
         for kind, (fields, _across) in SCHEMAS.items() if kind != "bars"}
