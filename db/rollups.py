"""Trade rollups kept exact: updated in the transaction that closes a trade, rebuilt from raw rows.

Why: analytics over a million trades cannot scan them per query.  Every closed trade is
counted in twelve `trade_rollups` rows (its day, month and all-time rows, each for the
account, its strategy, its symbol, and the pair), and `equity_bases` holds where the
account's equity curve starts.  The rows are written in the same transaction as the
close, so a rollup can never disagree with the trades it sums:

- a trade closing after every trade of a selection (the usual case) steps its three rows;
- a trade closing *before* some already counted (a late reconciliation) changes the
  equity path of everything after it, so that selection's rows from its day on are
  recomputed from the raw trades;
- a trade exiting before every trade of its account so far may move the account's
  initial balance (lock_base), which changes every ratio: the account is recomputed;
- `rebuild` recomputes an account from scratch (bulk loads, migrations) and `verify`
  compares what is stored with a fresh computation.

Every write of an account's rows rewrites its all-time (ANY, ANY) row in the same transaction (the
trade counts in it, or the account is rebuilt): the exporter tells an account's rollups unchanged
by that row's version alone (db.scoreboard.rollup_marker), so a new writer must keep it so.

On PostgreSQL the account's `equity_bases` row is locked (SELECT ... FOR UPDATE) before
the rollups are read, so concurrent closes of one account queue; SQLite's BEGIN IMMEDIATE
serialises all writers anyway.

Days are broker days (db.brokerday): a trade counts in the day row of the date at the trade server
when it closed, with the account's recorded server offset (UTC days while none is recorded).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import (
    BigInteger,
    Connection,
    cast,
    delete,
    func,
    insert,
    inspect,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from db import brokerday
from db.bulk import bulk_insert
from db.ledger import (
    ALL_TIME,
    ClosedTrade,
    CurvePoint,
    Tally,
    cents,
    day_tallies,
    fold,
    fold_by_month,
    grains,
    month_start,
    row_keys,
)
from db.models import ANY, AccountSnapshotModel, EquityBaseModel, TradeModel, trade_rollups
from db.upsert import insert_for_connection, insert_for_dialect

_KEY = ("account", "span", "period_start", "strategy", "symbol")
_TRADES = TradeModel.__table__
_BASES = EquityBaseModel.__table__
_SNAPSHOTS = AccountSnapshotModel.__table__


def closed_trade_columns():
    """SELECT list turning a trades row into a ClosedTrade (amounts as integer hundredths, in SQL)."""
    return (
        _TRADES.c.id,
        _TRADES.c.account,
        _TRADES.c.symbol,
        func.coalesce(_TRADES.c.strategy_name, "").label("strategy"),
        _TRADES.c.exit_time,
        cast(func.round(_TRADES.c.profit * literal_column("100")), BigInteger).label("profit_cents"),
        cast(func.round(_TRADES.c.profit_pips * literal_column("100")), BigInteger).label("pips_hundredths"),
    )


def closed_trades_in_order(connection: Connection, account: str, since: datetime | None = None,
                           grain: tuple[str, str] = (ANY, ANY),
                           offsets: brokerday.OffsetHistory | None = None) -> Iterator[ClosedTrade]:
    """The account's closed trades of one selection in closing order, optionally from `since` on,
    each with the server offset its broker day is cut with (`offsets`: the account's, read if None)."""
    query = select(*closed_trade_columns()).where(_TRADES.c.account == account, _TRADES.c.is_closed == true())
    strategy, symbol = grain
    if strategy != ANY:
        query = query.where(func.coalesce(_TRADES.c.strategy_name, "") == strategy)
    if symbol != ANY:
        query = query.where(_TRADES.c.symbol == symbol)
    if since is not None:
        query = query.where(_TRADES.c.exit_time >= since)
    query = query.order_by(_TRADES.c.exit_time, _TRADES.c.id)
    if offsets is None:
        offsets = brokerday.load(connection, account)
    for row in connection.execute(query.execution_options(yield_per=10_000)):
        yield ClosedTrade(**row._mapping, offset_seconds=offsets.at(row.exit_time) or 0)


def has_closed_trades(connection: Connection, account: str, since: datetime | None = None) -> bool:
    """Whether the account has a closed trade (exiting at or after `since`)."""
    query = select(_TRADES.c.id).where(_TRADES.c.account == account, _TRADES.c.is_closed == true())
    if since is not None:
        query = query.where(_TRADES.c.exit_time >= since)
    return connection.execute(query.limit(1)).first() is not None


# -- the account's initial balance (and lock) ------------------------------------------------


def lock_base(connection: Connection, account: str, exit_time: datetime) -> tuple[int, bool]:
    """Lock the account's equity base; (its initial balance in cents, whether this close moved it).

    The initial balance is the balance of the newest account snapshot taken before the
    account's earliest trade exit (no trade had closed yet, so that is the starting
    capital), or 0 without such a snapshot, in which case drawdown ratios are only defined
    once the curve has risen above 0.  A close whose exit is earlier than every exit seen
    so far can move it; the caller then recomputes the account's rollups.
    """
    query = select(_BASES).where(_BASES.c.account == account).with_for_update()
    row = connection.execute(query).first()
    if row is None:  # the account's first close (unless a concurrent one inserts the row first)
        connection.execute(
            insert_for_connection(connection, _BASES)
            .values(**_base_values(connection, account, exit_time))
            .on_conflict_do_nothing()
        )
        row = connection.execute(query).first()
    if exit_time >= row.first_exit_time:
        return cents(row.initial_balance), False
    values = _base_values(connection, account, exit_time)
    connection.execute(update(_BASES).where(_BASES.c.account == account).values(**values))
    return cents(values["initial_balance"]), values["initial_balance"] != row.initial_balance


def _base_values(connection: Connection, account: str, first_exit: datetime) -> dict[str, object]:
    snapshot = connection.execute(
        select(_SNAPSHOTS.c.balance, _SNAPSHOTS.c.time)
        .where(_SNAPSHOTS.c.account == account, _SNAPSHOTS.c.time < first_exit)
        .order_by(_SNAPSHOTS.c.time.desc())
        .limit(1)
    ).first()
    return {
        "account": account,
        "initial_balance": snapshot.balance if snapshot else Decimal("0.00"),
        "snapshot_time": snapshot.time if snapshot else None,
        "first_exit_time": first_exit,
    }


# -- keeping rollups current when a trade closes ---------------------------------------------


def record_close(connection: Connection, trade: ClosedTrade) -> None:
    """Count a trade that was just closed in this transaction in its twelve rollup rows."""
    base, moved = lock_base(connection, trade.account, trade.exit_time)
    offset = brokerday.load(connection, trade.account).at(trade.exit_time) or 0
    trade = dataclasses.replace(trade, offset_seconds=offset)  # its day is a broker day
    if moved:
        rebuild(connection, trade.account)
        return
    rows = _load_rows(connection, trade)
    changed: dict[tuple, Tally] = {}
    for grain in grains(trade.strategy, trade.symbol):
        day_key, month_key, all_key = row_keys(trade, grain)
        everything = rows.get(all_key)
        if everything is not None and everything.last_key is not None and everything.last_key > trade.order_key:
            rebuild_grain_from(connection, trade.account, grain, trade.day, base)
            continue
        cum, peak = (everything.end_cum_cents, everything.end_peak_cents) if everything else (0, 0)
        point = CurvePoint.after(cum, peak, trade.profit_cents, base)
        for key in (day_key, month_key, all_key):
            tally = rows.get(key) or Tally()
            tally.add(trade, point)
            changed[key] = tally
    if changed:
        _upsert(connection, trade.account, changed)


def _load_rows(connection: Connection, trade: ClosedTrade) -> dict[tuple, Tally]:
    """The trade's twelve rollup rows that exist, by key: one primary-key lookup each, in one statement
    (written as a UNION ALL because SQLite would turn an OR of the keys into a scan of the account)."""
    table = trade_rollups
    lookups = [
        select(table).where(
            table.c.account == trade.account,
            table.c.span == span,
            table.c.period_start == period_start,
            table.c.strategy == strategy,
            table.c.symbol == symbol,
        )
        for grain in grains(trade.strategy, trade.symbol)
        for span, period_start, strategy, symbol in row_keys(trade, grain)
    ]
    return {
        (row.span, row.period_start, row.strategy, row.symbol): Tally.from_row(row._mapping)
        for row in connection.execute(union_all(*lookups))
    }


def _upsert(connection: Connection, account: str, tallies: dict[tuple, Tally]) -> None:
    rows = [_row(account, key, tally) for key, tally in tallies.items()]
    connection.execute(_upsert_statement(connection.dialect.name), rows)


@cache
def _upsert_statement(dialect: str) -> sqlite.Insert | postgresql.Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE of every rollup column, built once (executemany, cached SQL)."""
    statement = insert_for_dialect(dialect, trade_rollups)
    statement = statement.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={column.name: statement.excluded[column.name] for column in trade_rollups.columns if column.name not in _KEY},
    )
    # RETURNING lets SQLAlchemy send all rows as one multi-row statement ("insertmanyvalues").
    return statement.returning(trade_rollups.c.span)


def _row(account: str, key: tuple, tally: Tally) -> dict[str, object]:
    span, period_start, strategy, symbol = key
    return {
        "account": account,
        "span": span,
        "period_start": period_start,
        "strategy": strategy,
        "symbol": symbol,
        **tally.values(),
    }


# -- recomputing from raw trades -------------------------------------------------------------


def rebuild_grain_from(connection: Connection, account: str, grain: tuple[str, str], day: date, base: int) -> None:
    """Recompute one selection's rows whose path depends on trades closed on or after `day`."""
    table = trade_rollups
    strategy, symbol = grain
    same_grain = (table.c.account == account, table.c.strategy == strategy, table.c.symbol == symbol)
    before = connection.execute(
        select(table.c.end_cum_cents, table.c.end_peak_cents)
        .where(*same_grain, table.c.span == "day", table.c.period_start < day)
        .order_by(table.c.period_start.desc())
        .limit(1)
    ).first()
    cum, peak = (before.end_cum_cents, before.end_peak_cents) if before else (0, 0)
    # A day earlier than the broker day's start at any offset; trades of earlier days are left out.
    since = brokerday.day_start(day, 0) - timedelta(days=1)
    trades = (t for t in closed_trades_in_order(connection, account, since, grain) if t.day >= day)
    new_days = day_tallies(trades, grain, base, cum, peak)
    first_month = month_start(day)
    earlier_days = _tallies(connection, (*same_grain, table.c.span == "day",
                                         table.c.period_start >= first_month, table.c.period_start < day))
    new_months = fold_by_month({**earlier_days, **new_days})
    earlier_months = _tallies(connection, (*same_grain, table.c.span == "month", table.c.period_start < first_month))
    everything = fold(tally for _, tally in sorted({**earlier_months, **new_months}.items()))
    for span, first in (("day", day), ("month", first_month), ("all", ALL_TIME)):
        connection.execute(delete(table).where(*same_grain, table.c.span == span, table.c.period_start >= first))
    rows = [_row(account, ("day", d, strategy, symbol), t) for d, t in new_days.items()]
    rows += [_row(account, ("month", m, strategy, symbol), t) for m, t in new_months.items()]
    if everything.trades:
        rows.append(_row(account, ("all", ALL_TIME, strategy, symbol), everything))
    _insert(connection, rows)


def _tallies(connection: Connection, where: tuple) -> dict[date, Tally]:
    rows = connection.execute(select(trade_rollups).where(*where))
    return {row.period_start: Tally.from_row(row._mapping) for row in rows}


def _insert(connection: Connection, rows: list[dict[str, object]]) -> None:
    if len(rows) > 1000:
        bulk_insert(connection, trade_rollups, rows)  # rebuilds: COPY / executemany through the driver
    elif rows:
        connection.execute(insert(trade_rollups), rows)


def compute(trades: Iterable[ClosedTrade], base: int) -> dict[tuple, Tally]:
    """Every rollup row of one account from its closed trades in closing order, in one pass."""
    curves: dict[tuple[str, str], tuple[int, int]] = {}
    days: dict[tuple, Tally] = {}
    for trade in trades:
        for grain in grains(trade.strategy, trade.symbol):
            cum, peak = curves.get(grain, (0, 0))
            point = CurvePoint.after(cum, peak, trade.profit_cents, base)
            curves[grain] = (point.cum, point.peak)
            key = ("day", trade.day, *grain)
            tally = days.get(key)
            if tally is None:
                tally = days[key] = Tally()
            tally.add(trade, point)
    result = dict(days)
    by_grain: dict[tuple[str, str], dict[date, Tally]] = {}
    for (_, day, strategy, symbol), tally in days.items():
        by_grain.setdefault((strategy, symbol), {})[day] = tally
    for (strategy, symbol), grain_days in by_grain.items():
        months = fold_by_month(grain_days)
        for month, tally in months.items():
            result[("month", month, strategy, symbol)] = tally
        result[("all", ALL_TIME, strategy, symbol)] = fold(tally for _, tally in sorted(months.items()))
    return result


def accounts_with_closed_trades(connection: Connection) -> list[str]:
    query = select(_TRADES.c.account).where(_TRADES.c.is_closed == true()).distinct().order_by(_TRADES.c.account)
    return list(connection.execute(query).scalars())


def rebuild(connection: Connection, account: str | None = None) -> int:
    """Recompute the rollups of one account (or of every account) from raw trades; rows written."""
    written = 0
    has_offsets = inspect(connection).has_table(brokerday.TABLE)
    for name in [account] if account is not None else accounts_with_closed_trades(connection):
        connection.execute(delete(trade_rollups).where(trade_rollups.c.account == name))
        first_exit = connection.execute(
            select(func.min(_TRADES.c.exit_time)).where(_TRADES.c.account == name, _TRADES.c.is_closed == true())
        ).scalar_one_or_none()
        if first_exit is None:
            continue
        values = _base_values(connection, name, first_exit)
        statement = insert_for_connection(connection, _BASES).values(**values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["account"], set_={k: statement.excluded[k] for k in values if k != "account"}
            )
        )
        base = cents(values["initial_balance"])
        # Migration 0002 rebuilds with this code before 0007 created broker_offsets: UTC days then.
        offsets = brokerday.load(connection, name) if has_offsets else brokerday.OffsetHistory()
        tallies = compute(closed_trades_in_order(connection, name, offsets=offsets), base)
        rows = [_row(name, key, tally) for key, tally in tallies.items()]
        _insert(connection, rows)
        written += len(rows)
    return written


def verify(connection: Connection, account: str) -> list[str]:
    """How the stored rollups of `account` differ from a fresh computation (empty when they agree)."""
    stored_base = connection.execute(select(_BASES).where(_BASES.c.account == account)).first()
    base = cents(stored_base.initial_balance) if stored_base is not None else 0
    problems = []
    first_exit = connection.execute(
        select(func.min(_TRADES.c.exit_time)).where(_TRADES.c.account == account, _TRADES.c.is_closed == true())
    ).scalar_one_or_none()
    if first_exit is not None:
        wanted_base = _base_values(connection, account, first_exit)["initial_balance"]
        if stored_base is None or stored_base.initial_balance != wanted_base:
            problems.append(
                f"initial balance {None if stored_base is None else stored_base.initial_balance} != {wanted_base} "
                "(the balance of the newest snapshot before the first exit)"
            )
    expected = compute(closed_trades_in_order(connection, account), base)
    stored = {
        (row.span, row.period_start, row.strategy, row.symbol): Tally.from_row(row._mapping)
        for row in connection.execute(select(trade_rollups).where(trade_rollups.c.account == account))
    }
    for key in sorted(set(expected) | set(stored), key=str):
        want, have = expected.get(key), stored.get(key)
        if want is None or have is None:
            problems.append(f"{key}: {'missing' if have is None else 'not backed by any trade'}")
            continue
        wanted, had = want.values(), have.values()
        differing = [name for name in wanted if not _same(wanted[name], had[name])]
        if differing:
            problems.append(f"{key}: {', '.join(f'{n} {had[n]!r} != {wanted[n]!r}' for n in differing)}")
    return problems


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b
