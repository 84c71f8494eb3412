"""What a plausible broker record looks like: one schema per record type, as data.

Why a table and not checks spread over the conversions: every record the terminal hands over
(deal, position, order, quote, bars, account, symbol, order reply) is judged once, at the gateway,
by the same small set of rules (type, finite, sign, range, enum, length, known symbol, time window
around the broker clock), and the reason a record fails is one word from `REASONS` that metrics,
logs and the quarantine table share. Hand-written rather than a validation library: the rules
are few, they judge plain dicts and numpy columns alike, and they must never raise on hostile
input (a pydantic model would turn NaN, 1e20 or a 10 000-character comment into exceptions we
would have to map back to these reasons anyway).

Limits: money below 1e12, prices below 1e9 and volumes below 1e8 still fit the store's NUMERIC
columns exactly on SQLite (15 significant digits) and PostgreSQL; text fits its column
(`db.vocabulary`). Times are epoch seconds of the trade server; they must lie between 2000 and
2100, and, once the broker clock is known (the newest quote), within `TIME_PAST` before it and
`TIME_FUTURE` after it (a year-3000 deal or a 1970 position is refused, a deal of last month is not).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np

from db.vocabulary import COMMENT_LEN, SYMBOL_LEN

from . import enums
from .quickcheck import QuickRule, compile_record

MONEY_LIMIT = 1e12
PRICE_LIMIT = 1e9
VOLUME_LIMIT = 1e8
INT64_LIMIT = 2**63
EPOCH_MIN = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
EPOCH_MAX = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
#: Records may be this much older than the broker clock (positions held for years, a long stop) ...
TIME_PAST = timedelta(days=3660)
#: ... and this much newer (the clock is the newest quote of one symbol, which may be stale for an hour).
TIME_FUTURE = timedelta(days=1)

#: Why a record is refused; the `reason` label of tradewatch_broker_records_rejected_total.
REASONS = (
    "missing", "type", "not_finite", "sign", "range", "enum", "length", "unknown_symbol", "time_window",
    "crossed", "not_monotonic", "flat", "ticket_conflict",
)

INT, NUMBER, TEXT, TIME = "int", "number", "text", "time"
ANY, POSITIVE, NON_NEGATIVE = "any", "positive", "non_negative"


@dataclass(frozen=True)
class Field:
    """The rule for one field. `optional`: may be missing (a time may also be 0, meaning "none")."""

    name: str
    type: str
    sign: str = ANY
    limit: float | None = None
    choices: frozenset[int] | None = None
    max_len: int | None = None
    symbol: bool = False
    optional: bool = False
    relative: bool = True  # times: also within the window around the broker clock


@dataclass(frozen=True)
class Problem:
    reason: str
    field: str | None
    detail: str


@dataclass(frozen=True)
class Context:
    """What judging needs beyond the record: the broker clock and which symbols the terminal knows."""

    clock: datetime | None
    symbol_known: Callable[[str], bool]

    def window(self, relative: bool) -> tuple[float, float]:
        if not relative or self.clock is None:
            return EPOCH_MIN, EPOCH_MAX
        return self._relative_window

    @cached_property
    def _relative_window(self) -> tuple[float, float]:
        """Worked out once per context (the guard makes one per broker clock), not once per time field."""
        now = self.clock.timestamp()
        return max(EPOCH_MIN, now - TIME_PAST.total_seconds()), min(EPOCH_MAX, now + TIME_FUTURE.total_seconds())


def _ticket(name: str, optional: bool = False, sign: str = POSITIVE) -> Field:
    return Field(name, INT, sign=sign if not optional else NON_NEGATIVE, limit=INT64_LIMIT, optional=optional)


def _money(name: str, sign: str = ANY, optional: bool = True) -> Field:
    return Field(name, NUMBER, sign=sign, limit=MONEY_LIMIT, optional=optional)


def _price(name: str, sign: str = POSITIVE, optional: bool = False) -> Field:
    return Field(name, NUMBER, sign=sign, limit=PRICE_LIMIT, optional=optional)


_SYMBOL = Field("symbol", TEXT, max_len=SYMBOL_LEN, symbol=True)
_COMMENT = Field("comment", TEXT, max_len=COMMENT_LEN, optional=True)
_MAGIC = _ticket("magic", optional=True)

#: One schema per record type: the field rules, then the rules across fields (reason, field, test).
SCHEMAS: dict[str, tuple[tuple[Field, ...], tuple[tuple[str, str, Callable[[Mapping[str, Any]], bool]], ...]]] = {
    "deal": ((
        _ticket("ticket"), _ticket("order", optional=True), _ticket("position_id", optional=True), _SYMBOL,
        Field("type", INT, choices=enums.TRADE_DEAL_TYPES), Field("entry", INT, choices=enums.DEAL_ENTRIES),
        Field("reason", INT, choices=enums.DEAL_REASONS, optional=True),
        Field("volume", NUMBER, sign=POSITIVE, limit=VOLUME_LIMIT), _price("price"),
        _money("profit"), _money("commission"), _money("swap"), _MAGIC, _COMMENT, Field("time", TIME),
    ), ()),
    # Balance operations (deposit, credit, charge, commission, ...): MT5 reports them with symbol "",
    # volume 0 and price 0, so those are accepted here and only here; a BUY/SELL deal so shaped is
    # judged by "deal" above and refused (unknown_symbol, sign).
    "balance_deal": ((
        _ticket("ticket"), _ticket("order", optional=True), _ticket("position_id", optional=True),
        Field("symbol", TEXT, max_len=SYMBOL_LEN, optional=True),
        Field("type", INT, choices=enums.NON_TRADE_DEAL_TYPES), Field("entry", INT, choices=enums.DEAL_ENTRIES),
        Field("reason", INT, choices=enums.DEAL_REASONS, optional=True),
        Field("volume", NUMBER, sign=NON_NEGATIVE, limit=VOLUME_LIMIT), _price("price", NON_NEGATIVE),
        _money("profit", optional=False), _money("commission"), _money("swap"), _MAGIC, _COMMENT, Field("time", TIME),
    ), ()),
    "position": ((
        _ticket("ticket"), _SYMBOL, Field("type", INT, choices=enums.POSITION_TYPES),
        Field("volume", NUMBER, sign=POSITIVE, limit=VOLUME_LIMIT), _price("price_open"), _price("price_current"),
        _price("sl", NON_NEGATIVE, optional=True), _price("tp", NON_NEGATIVE, optional=True),
        _money("profit"), _money("swap"), _MAGIC, _COMMENT, Field("time", TIME),
    ), ()),
    "order": ((
        _ticket("ticket"), _SYMBOL, Field("type", INT, choices=enums.ORDER_TYPES),
        Field("state", INT, choices=enums.ORDER_STATES, optional=True), _ticket("position_id", optional=True),
        Field("volume_initial", NUMBER, sign=NON_NEGATIVE, limit=VOLUME_LIMIT, optional=True),
        _price("price_open", NON_NEGATIVE, optional=True), _price("price_current", NON_NEGATIVE, optional=True),
        _MAGIC, _COMMENT, Field("time_setup", TIME, optional=True), Field("time_done", TIME, optional=True),
    ), ()),
    "quote": ((
        Field("time", TIME, relative=False), _price("bid"), _price("ask"),
    ), (("crossed", "ask", lambda r: r["ask"] >= r["bid"]),)),
    "bars": ((
        Field("time", TIME), _price("open"), _price("high"), _price("low"), _price("close"),
    ), (
        # first: every other check compares the columns element by element
        ("length", "time", lambda c: len({len(c[name]) for name in ("time", "open", "high", "low", "close")}) == 1),
        ("crossed", "high", lambda c: (c["high"] - np.maximum(c["open"], c["close"])).min() >= 0
                                      and (np.minimum(c["open"], c["close"]) - c["low"]).min() >= 0),
        # Compared, not differenced: np.diff of unsigned times wraps (a falling pair looks rising).
        ("not_monotonic", "time", lambda c: len(c["time"]) < 2 or bool((c["time"][1:] > c["time"][:-1]).all())),
        ("flat", "close", lambda c: c["high"].max() > c["low"].min()),
    )),
    "account": ((
        _ticket("login"), _money("balance", optional=False), _money("equity", optional=False), _money("profit"),
        _money("margin", NON_NEGATIVE), _money("margin_free"), _money("margin_level", NON_NEGATIVE),
        Field("leverage", INT, sign=NON_NEGATIVE, limit=1e9, optional=True),
        Field("currency", TEXT, max_len=16, optional=True),
    ), ()),
    "symbol": ((
        Field("digits", INT, sign=NON_NEGATIVE, limit=11), _price("point"),
        Field("trade_contract_size", NUMBER, sign=POSITIVE, limit=MONEY_LIMIT), _price("trade_tick_size"),
        _money("trade_tick_value", POSITIVE, optional=False), _money("trade_tick_value_loss", POSITIVE),
        Field("volume_min", NUMBER, sign=POSITIVE, limit=VOLUME_LIMIT),
        Field("volume_max", NUMBER, sign=POSITIVE, limit=VOLUME_LIMIT),
        Field("volume_step", NUMBER, sign=POSITIVE, limit=VOLUME_LIMIT),
        Field("trade_stops_level", INT, sign=NON_NEGATIVE, limit=1e9, optional=True),
        Field("trade_freeze_level", INT, sign=NON_NEGATIVE, limit=1e9, optional=True),
        Field("currency_profit", TEXT, max_len=16, optional=True),
    ), (("range", "volume_max", lambda r: r["volume_max"] >= r["volume_min"]),)),
    "order_result": ((
        Field("retcode", INT, sign=NON_NEGATIVE, limit=1e9), _ticket("order", optional=True),
        _ticket("deal", optional=True), Field("volume", NUMBER, sign=NON_NEGATIVE, limit=VOLUME_LIMIT, optional=True),
        _price("price", NON_NEGATIVE, optional=True),
    ), ()),
}

#: Kinds whose records never change once made (history): judged once per content. The others
#: (positions, quotes, bars, account, symbol, order replies) change every cycle: judged every
#: time, reported once per streak of the same reason.
IMMUTABLE_KINDS = frozenset({"deal", "balance_deal", "order"})


def check(kind: str, record: Any, context: Context) -> Problem | None:
    """The first problem of `record` against the schema of `kind`, or None when it is plausible."""
    fields, across = SCHEMAS[kind]
    if type(record) is not dict and not isinstance(record, Mapping):  # exact first: the ABC check costs
        return Problem("type", None, f"{kind} is a {type(record).__name__}, not a record")
    if kind == "bars":
        if _bars_plainly_good(record, context):
            return None
    quick = _RECORD_QUICK.get(kind)
    if quick is None or not quick(record, context):
        judge = _column if kind == "bars" else _scalar
        for rule in fields:
            problem = judge(rule, record.get(rule.name), context)
            if problem is not None:
                return problem
    for reason, name, holds in across:
        if not holds(record):
            return Problem(reason, name, f"{kind} fails the {reason} check on {name}")
    return None


def _scalar(rule: Field, value: Any, context: Context) -> Problem | None:
    name = rule.name
    if value is None or (rule.type == TIME and rule.optional and value == 0):
        return None if rule.optional else Problem("missing", name, f"{name} is missing")
    if rule.type == TEXT:
        if not isinstance(value, str):
            return Problem("type", name, f"{name} is a {type(value).__name__}, not text")
        if rule.max_len is not None and len(value) > rule.max_len:
            return Problem("length", name, f"{name} has {len(value)} characters (at most {rule.max_len})")
        if rule.symbol and not (value and context.symbol_known(value)):
            return Problem("unknown_symbol", name, f"{name} {value[:SYMBOL_LEN]!r} is not a symbol of the terminal")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Problem("type", name, f"{name} is a {type(value).__name__}, not a number")
    if not math.isfinite(value):
        return Problem("not_finite", name, f"{name} is {value}")
    if rule.type == INT and isinstance(value, float) and not value.is_integer():
        return Problem("type", name, f"{name} is {value}, not a whole number")
    return _bounds(rule, value, value, context)


def _column(rule: Field, values: Any, context: Context) -> Problem | None:
    name = rule.name
    if values is None or not isinstance(values, np.ndarray) or values.ndim != 1 or not len(values):
        return Problem("missing", name, f"{name} has no values")
    if values.dtype.kind not in "iuf":
        return Problem("type", name, f"{name} holds {values.dtype}, not numbers")
    low, high = float(values.min()), float(values.max())  # NaN and inf show in the extremes: one pass each
    if not (math.isfinite(low) and math.isfinite(high)):
        return Problem("not_finite", name, f"{name} holds {int(np.sum(~np.isfinite(values)))} non-finite values")
    return _bounds(rule, low, high, context)


_le, _lt = operator.le, operator.lt
_ARRAY_ONLY, _ONE_D, _NUMERIC_KINDS = {np.ndarray}, {1}, {"i", "u", "f"}
_ndim, _dtype_kind = operator.attrgetter("ndim"), operator.attrgetter("dtype.kind")


def _bars_plainly_good(record: Mapping[str, Any], context: Context) -> bool:
    """A fast yes for a plainly good bar batch: True only where the checks below find no problem.

    Why: every cycle judges each symbol's fetch whole (the window's overlap and the new bars), and
    the column-by-column checks cost ~25 us a batch of 13 bars. For plain 1-d numeric columns of
    one length this asks the same questions in a few C-level passes over Python lists
    (`all(map(operator.le, ...))`; numpy's per-call cost made a vectorised version slower at this
    size): times strictly increasing (so their extremes are the first and the last) and inside
    the window; for every bar `0 < low <= open, close <= high`, which with `max(high) < PRICE_LIMIT`
    bounds all four prices (positive, below the limit, finite: NaN fails every comparison, an
    infinity the bounds) and is the `crossed` rule; and `max(high) > min(low)`, the `flat` rule.
    Anything else (False) is judged by the full checks, which name the problem as before.
    """
    get = record.get
    columns = get("time"), get("open"), get("high"), get("low"), get("close")
    # Each column a 1-d numeric array, all of one length: asked of the five at once, in C.
    if set(map(type, columns)) != _ARRAY_ONLY or set(map(_ndim, columns)) != _ONE_D:
        return False
    if not set(map(_dtype_kind, columns)) <= _NUMERIC_KINDS:
        return False
    lengths = set(map(len, columns))
    if len(lengths) != 1 or not lengths.pop():
        return False
    times, opens, highs, lows, closes = map(np.ndarray.tolist, columns)
    first, last = context.window(True)
    return (first <= times[0] and times[-1] <= last and all(map(_lt, times, times[1:]))
            and all(map(_le, lows, opens)) and all(map(_le, lows, closes))
            and all(map(_le, opens, highs)) and all(map(_le, closes, highs))
            and min(lows) > 0 and max(highs) < PRICE_LIMIT and max(highs) > min(lows))


def _bounds(rule: Field, low: float, high: float, context: Context) -> Problem | None:
    """Sign, range, enum and time window of a value (or of a column's min and max)."""
    name = rule.name
    if rule.sign == POSITIVE and low <= 0:
        return Problem("sign", name, f"{name} is {low}, must be positive")
    if rule.sign == NON_NEGATIVE and low < 0:
        return Problem("sign", name, f"{name} is {low}, must not be negative")
    if rule.limit is not None and max(abs(low), abs(high)) >= rule.limit:
        return Problem("range", name, f"{name} is {high if abs(high) >= abs(low) else low}, beyond {rule.limit:g}")
    if rule.choices is not None and low not in rule.choices:
        return Problem("enum", name, f"{name} {low!r} is not one of {sorted(rule.choices)}")
    if rule.type == TIME:
        first, last = context.window(rule.relative)
        if low < first or high > last:
            moment = low if low < first else high
            return Problem("time_window", name, f"{name} {_when(moment)} is outside {_when(first)} .. {_when(last)}")
    return None


_BAR_COLUMNS = tuple(rule.name for rule in SCHEMAS["bars"][0])

def _quick_rule(rule: Field) -> QuickRule:
    """What a field's fast yes depends on, for `bot.gateway.quickcheck` to write out.

    A fast yes only ever says True where `_scalar` finds no problem; for anything else (False)
    `_scalar` judges the record and names the problem, so the reasons and their order are those of
    the full rules. Why: every position, quote and account record is judged every cycle, and
    `_scalar` spent a few microseconds a field building the answer for the rare bad value."""
    return QuickRule(
        rule.name, rule.type == TEXT, rule.optional, whole=rule.type == INT, is_time=rule.type == TIME,
        relative=rule.relative, positive=rule.sign == POSITIVE, non_negative=rule.sign == NON_NEGATIVE,
        limit=rule.limit if rule.limit is not None else math.inf, choices=rule.choices,
        max_len=rule.max_len if rule.max_len is not None else math.inf, symbol=rule.symbol,
    )


#: The fast yes of every record kind judged value by value (not "bars": columns), one compiled
#: function per kind (bot.gateway.quickcheck; tests/quick_reference.py is the per-field reference).
_RECORD_QUICK = {kind: compile_record(kind, [_quick_rule(rule) for rule in fields])
                 for kind, (fields, _across) in SCHEMAS.items() if kind != "bars"}


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch:g}"
