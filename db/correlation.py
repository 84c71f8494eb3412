"""Correlation of daily net P&L between a selection's symbols or strategies (db.analytics' definition).

Pearson correlation over the broker days on which the selection closed at least one trade (a series is
0 on days it did not trade); None where a series does not vary.  Read from the day rows of
`trade_rollups`: one row per series, its day numbers and cents packed into two values by the server.

Why a module of its own, with a statement built once and an answer kept: all time, a correlation reads
every day row of every series (10 000 index entries for eight symbols over five years), the one read of
the REST API whose cost grows with the account's history, and a dashboard asks the same one again at
every refresh while the account's rollups have not changed.  An answer is reused while the rollup
marker of the account (db.scoreboard.rollup_marker: the version of its all-time row, which every write
of its rollups rewrites in the same transaction) is the one it was computed at; on PostgreSQL only
(SQLite has no such marker: computed every time).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from threading import Lock
from typing import TYPE_CHECKING

import numpy
from sqlalchemy import (
    ColumnElement,
    Integer,
    LargeBinary,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)

from db.database import Database
from db.ledger import ALL_TIME
from db.models import ANY, trade_rollups
from db.reading import Prebuilt, prebuilt, reading

if TYPE_CHECKING:
    from db.analytics import Selection

CORRELATE_BY = ("symbol", "strategy")
KEPT_ANSWERS = 256  # per database: a dashboard's panels over a fleet's accounts, each a few floats per pair

_R = trade_rollups.c


@dataclass(frozen=True, slots=True)
class Correlation:
    by: str
    names: list[str]
    days: int
    matrix: list[list[float | None]]


def correlation(database: Database, selection: Selection, by: str) -> Correlation:
    """Pearson correlation matrix of daily net P&L between the selection's symbols or strategies."""
    if by not in CORRELATE_BY:
        raise ValueError(f"by must be one of {', '.join(CORRELATE_BY)}, got {by!r}")
    strategy, symbol = selection.grain
    fixed, chosen = (strategy, selection.symbol) if by == "symbol" else (symbol, selection.strategy)
    shape = (database.backend, by, chosen is not None, selection.start is not None, selection.end is not None)
    statement = prebuilt(("correlation", *shape), lambda: _statement(*shape))
    values = {"account": selection.account, "fixed": fixed, "name": chosen, "start": selection.start,
              "end": None if selection.end is None else selection.end + timedelta(days=1)}
    key = (by, selection.account, fixed, chosen, selection.start, selection.end)
    answers = _answers_of(database)
    with reading(database) as connection:
        # First: what the rows read next are at least as new as (a commit in between makes the answer
        # newer than its marker, so the next request sees another marker and computes it again).
        marker = _MARKER.rows(connection, account=selection.account) if answers is not None else None
        marker = marker[0][0] if marker else None
        if marker is not None:
            kept = answers.get(key, marker)
            if kept is not None:
                return kept
        rows = statement.rows(connection, **values)
    result = _from_rows(database.backend, by, rows)
    if marker is not None:
        answers.put(key, marker, result)
    return result


def _from_rows(backend: str, by: str, rows: list[tuple]) -> Correlation:
    packed = _packed_series(backend)
    names = [row[0] for row in rows]
    series_days = [packed.parse(row[1], numpy.int32) for row in rows]
    series_cents = [packed.parse(row[2], numpy.int64) for row in rows]
    days = numpy.unique(numpy.concatenate(series_days)) if rows else numpy.array([], dtype=numpy.int32)
    dense = numpy.zeros((len(names), len(days)), dtype=numpy.int64)
    for i, (when, amounts) in enumerate(zip(series_days, series_cents, strict=True)):
        dense[i, numpy.searchsorted(days, when)] = amounts
    series = dense / 100
    return Correlation(by=by, names=names, days=len(days), matrix=pearson_matrix(series))


def pearson_matrix(series) -> list[list[float | None]]:
    """Pairwise Pearson correlation of equally long series (rows); None where one does not vary."""
    data = numpy.asarray(series, dtype=float)
    if data.size == 0:
        return [[None] * len(series) for _ in range(len(series))]
    if data.shape[1] < 2:
        return [[None] * len(series) for _ in series]
    centered = data - data.mean(axis=1, keepdims=True)
    covariance = centered @ centered.T
    spread = numpy.sqrt(numpy.diag(covariance))
    matrix: list[list[float | None]] = []
    for i in range(len(series)):
        line: list[float | None] = []
        for j in range(len(series)):
            denominator = spread[i] * spread[j]
            if denominator == 0 or not math.isfinite(denominator):
                line.append(None)
            elif i == j:
                line.append(1.0)
            else:
                line.append(max(-1.0, min(1.0, float(covariance[i, j] / denominator))))
        matrix.append(line)
    return matrix


# -- the statement ---------------------------------------------------------------------------------

def _statement(backend: str, by: str, one_name: bool, has_start: bool, has_end: bool) -> Select:
    """One row per series with its day numbers and amounts packed into two values (both aggregates see
    the group's rows in the same order): a few rows to ship instead of thousands, parsed by numpy.
    Without a chosen name: by symbol, the strategy's day rows of every symbol but ANY (one index range,
    the symbols following the strategy in ix_trade_rollups_selection); by strategy, the names from the
    all-time rows in the same statement, then an index range each (the strategies precede the symbol:
    one range would cross every symbol's rows).  Every grain with day rows has its all-time row
    (db.rollups writes and deletes them together), so both give the same names.  Bound: account, fixed (the strategy or symbol held fixed), name, start, end (exclusive)."""
    name, other = (_R.symbol, _R.strategy) if by == "symbol" else (_R.strategy, _R.symbol)
    account, fixed = _R.account == bindparam("account"), other == bindparam("fixed")
    if one_name:
        named = name == bindparam("name")
    elif by == "symbol":  # the symbols follow the strategy in the index: one range of the strategy's day rows
        named = name != ANY
    else:
        named = name.in_(select(name).where(account, fixed, name != ANY, _R.span == "all",
                                            _R.period_start == ALL_TIME).scalar_subquery())
    days = [_R.span == "day"]
    if has_start:
        days.append(_R.period_start >= bindparam("start"))
    if has_end:
        days.append(_R.period_start < bindparam("end"))
    packed = _packed_series(backend)
    return select(name, *packed.columns).where(account, fixed, named, *days).group_by(name).order_by(name)


def _day_number(backend: str) -> ColumnElement[int]:
    """period_start as days since 1970-01-01 (integers parse faster than dates, and sort the same)."""
    if backend == "postgresql":
        return type_coerce(_R.period_start - literal(date(1970, 1, 1)), Integer)  # date - date: integer days
    return cast(func.julianday(_R.period_start) - 2440587.5, Integer)  # SQLite: 1970-01-01 is JD 2440587.5


@dataclass(frozen=True, slots=True)
class _Packing:
    """How one backend packs a series' day numbers and cents into one value each, and how numpy reads them."""

    columns: tuple[ColumnElement, ColumnElement]
    parse: Callable[[object, type], numpy.ndarray]


@functools.cache
def _packed_series(backend: str) -> _Packing:
    """PostgreSQL: the integers' binary forms (int4send/int8send: big-endian) concatenated into a bytea,
    which numpy takes as it is; the text forms cost the server a number-to-text conversion per row and
    the client a text parse per value.  SQLite: comma-separated text (it has no binary form of an
    integer), read by numpy's text parser, five times faster than a Python split then a parse per value."""
    if backend == "postgresql":
        nothing = literal(b"", LargeBinary)
        return _Packing(
            (func.string_agg(func.int4send(_day_number(backend)), nothing),
             func.string_agg(func.int8send(_R.profit_cents), nothing)),
            lambda packed, kind: numpy.frombuffer(packed, dtype=numpy.dtype(kind).newbyteorder(">")).astype(kind),
        )
    return _Packing(
        (func.aggregate_strings(cast(_day_number(backend), String), ","),
         func.aggregate_strings(cast(_R.profit_cents, String), ",")),
        lambda packed, kind: numpy.fromstring(packed, dtype=kind, sep=","),
    )


# -- answers kept while the account's rollups are unchanged ------------------------------------------

# The version of the account's all-time (ANY, ANY) row: db.scoreboard.rollup_marker's column, read by
# its primary key (a VACUUM FREEZE may show another xmin once: "changed" too often, never too rarely).
_MARKER = Prebuilt(
    select(literal_column("trade_rollups.xmin::text")).where(
        _R.account == bindparam("account"), _R.span == "all", _R.period_start == ALL_TIME, _R.strategy == ANY,
        _R.symbol == ANY,
    )
)


class _Answers:
    """The last KEPT_ANSWERS correlations of one database, each with the marker it was computed at."""

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple, tuple[str, Correlation]] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple, marker: str) -> Correlation | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None or found[0] != marker:
                return None
            self._kept.move_to_end(key)
        return _copy(found[1])

    def put(self, key: tuple, marker: str, answer: Correlation) -> None:
        with self._lock:
            self._kept[key] = (marker, _copy(answer))
            self._kept.move_to_end(key)
            while len(self._kept) > KEPT_ANSWERS:
                self._kept.popitem(last=False)


def _copy(answer: Correlation) -> Correlation:
    """A kept answer's own lists: what a caller does with the one it got cannot change the kept one."""
    return Correlation(answer.by, list(answer.names), answer.days, [list(line) for line in answer.matrix])


_kept: weakref.WeakKeyDictionary[Database, _Answers] = weakref.WeakKeyDictionary()
_kept_lock = Lock()


def _answers_of(database: Database) -> _Answers | None:
    """The database's kept answers; None where the backend has no rollup marker."""
    if database.backend != "postgresql":
        return None
    with _kept_lock:
        answers = _kept.get(database)
        if answers is None:
            answers = _kept[database] = _Answers()
        return answers
