"""Which trades an analytics figure covers (`Selection`), and which rollup rows answer it exactly.

Why a module of its own: every figure of db.analytics starts here - a selection of broker days is
covered by whole-month rollup rows plus day rows at either end (or the one all-time row), read as
one UNION ALL of index range scans - and db.analytics keeps only the figures themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, String, Subquery, bindparam, cast, select, union_all

from db.ledger import ALL_TIME, month_start
from db.models import ANY, trade_rollups
from db.vocabulary import ACCOUNT_LEN, NAME_LEN, SYMBOL_LEN

_R = trade_rollups.c


@dataclass(frozen=True, slots=True)
class Selection:
    """Which closed trades a figure covers: one account, optionally a symbol, a strategy and UTC days."""

    account: str
    start: date | None = None  # first UTC day included
    end: date | None = None  # last UTC day included
    symbol: str | None = None
    strategy: str | None = None

    def __post_init__(self) -> None:
        _text("account", self.account, ACCOUNT_LEN, required=True)
        _text("symbol", self.symbol, SYMBOL_LEN)
        _text("strategy", self.strategy, NAME_LEN)
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
                raise TypeError(f"Selection.{name} must be a date, got {type(value).__name__}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"Selection.start {self.start} is after end {self.end}")

    @property
    def grain(self) -> tuple[str, str]:
        """The rollup (strategy, symbol) of the whole selection."""
        return (ANY if self.strategy is None else self.strategy, self.symbol or ANY)


def _text(name: str, value: object, limit: int, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value or len(value) > limit or value == ANY:
        raise ValueError(f"Selection.{name} must be a non-empty name of at most {limit} characters")


# -- which rollup rows cover a selection -------------------------------------------------------


def covering_periods(selection: Selection, all_time_ok: bool = True) -> list[tuple[str, date | None, date | None]]:
    """(span, first, end) row ranges covering the selected days exactly: whole months from month rows,
    the partial months at either end from day rows, or the all-time row when no days are chosen."""
    lo = selection.start
    hi = None if selection.end is None else selection.end + timedelta(days=1)  # exclusive
    if lo is None and hi is None and all_time_ok:
        return [("all", ALL_TIME, None)]
    first_month = None if lo is None else (lo if lo.day == 1 else next_month(lo))
    end_month = None if hi is None else month_start(hi)
    if first_month is not None and end_month is not None and first_month >= end_month:
        return [("day", lo, hi)]
    periods: list[tuple[str, date | None, date | None]] = [("month", first_month, end_month)]
    if lo is not None and lo < first_month:
        periods.append(("day", lo, first_month))
    if hi is not None and end_month < hi:
        periods.append(("day", end_month, hi))
    return periods


def covering(shape: tuple, columns: list, where: tuple) -> Subquery:
    """The rollup rows of `covering_periods` of that shape (period_values), as one UNION ALL of index range scans
    (an OR of the ranges would make SQLite scan every row of the account).  Bound: account, lo<k> and
    hi<k> for the k-th period, and whatever `where` binds."""
    parts = []
    for k, (span, no_lo, no_hi) in enumerate(shape):
        conditions = [_R.account == bindparam("account"), *where, _R.span == span]
        if span == "all":
            conditions.append(_R.period_start == ALL_TIME)
        if not no_lo and span != "all":
            conditions.append(_R.period_start >= bindparam(f"lo{k}"))
        if not no_hi:
            conditions.append(_R.period_start < bindparam(f"hi{k}"))
        parts.append(select(*columns).where(*conditions))
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("covering")


def period_values(selection: Selection, all_time_ok: bool = True) -> tuple[tuple, dict[str, object]]:
    """The shape of a selection's covering_periods ((span, no first, no end) each: what covering is built for)
    and the values of its bound parameters (the account's and the periods')."""
    periods = covering_periods(selection, all_time_ok)
    values: dict[str, object] = {"account": selection.account}
    for k, (_, lo, hi) in enumerate(periods):
        values[f"lo{k}"], values[f"hi{k}"] = lo, hi
    return tuple((span, lo is None, hi is None) for span, lo, hi in periods), values


# Every statement here is built once per shape and run as its compiled text (db.reading.prebuilt).


def grain_bound() -> tuple[ColumnElement[bool], ...]:
    """The rollup grain of the selection, bound as `strategy` and `symbol` (values: grain_values)."""
    return (_R.strategy == bindparam("strategy"), _R.symbol == bindparam("symbol"))


def grain_values(selection: Selection) -> dict[str, str]:
    strategy, symbol = selection.grain
    return {"strategy": strategy, "symbol": symbol}


def day_text() -> ColumnElement[str]:
    """period_start as 'YYYY-MM-DD' text (what both backends give for a DATE cast to text)."""
    return cast(_R.period_start, String).label("day")


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)
