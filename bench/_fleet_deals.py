"""The fleet bench's broker deals (BENCH_FLEET_DEALS=1): two deals per closed trade and a deposit per
account, made in the server, and what db/mt5board.py's reads cost at that size.

Apart from bench/fleet.py (the fleet itself, its reads and its scrape) so that each module holds one
concept; bench.fleet re-exports these names.
"""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, insert, select

from bench.analytics import _say, _vacuum
from db import Database, deal_marks, mt5board
from db.models import DealModel
from db.reading import reading

DEAL_REPEAT = 5
MT5_MARKS = "MT5 board marks: deal count and newest deal of every account"
MT5_WHOLE = "MT5 figures of one account, whole history (its first read)"
MT5_EXTENDED = "MT5 figures of that account after a new deal (kept walk extended, the marks read)"


def add_deals(database: Database) -> int:
    """Broker deals for every closed trade (its entry and exit deal, as MT5 reports them) and a deposit per
    account, in the server; deals stored.  The seed has none: this is what a fleet that syncs its deals
    (or imported its history) holds, for what the scrape's MT5 figures cost at that size."""
    with database.engine.begin() as connection:
        connection.exec_driver_sql(_DEPOSITS)
        connection.exec_driver_sql(_TRADE_DEALS)
        deal_marks.recount(connection)  # what the deal writers keep: the marks of these deals, same transaction
    _vacuum(database)
    with database.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(DealModel.__table__)).scalar_one()


_DEAL_COLUMNS = ("account, ticket, order_ticket, position_id, symbol, type, entry, volume, price, profit, commission, "
                 "swap, magic, comment, reason, time")
_DEPOSITS = (f"INSERT INTO deals ({_DEAL_COLUMNS}) SELECT account, -1, 0, 0, '', 2, 0, 0, 0, 100000.00, 0, 0, 0, "
             "'deposit', 0, min(entry_time) - interval '1 day' FROM trades GROUP BY account")
_TRADE_DEALS = f"""INSERT INTO deals ({_DEAL_COLUMNS})
SELECT t.account, t.ticket * 2 + e.entry, t.ticket * 2 + e.entry, t.ticket, t.symbol,
       CASE WHEN (t.direction = 'BUY') = (e.entry = 0) THEN 0 ELSE 1 END, e.entry, t.volume,
       CASE WHEN e.entry = 0 THEN t.entry_price ELSE t.exit_price END,
       CASE WHEN e.entry = 0 THEN 0 ELSE t.gross_profit END, CASE WHEN e.entry = 0 THEN 0 ELSE t.commission END,
       CASE WHEN e.entry = 0 THEN 0 ELSE t.swap END, t.magic, '', 3,
       CASE WHEN e.entry = 0 THEN t.entry_time ELSE t.exit_time END
FROM trades t CROSS JOIN (VALUES (0), (1)) AS e(entry) WHERE t.is_closed"""


def mt5_costs(database: Database, account: str, repeat: int = DEAL_REPEAT) -> dict[str, tuple[float, float]]:
    """(p50, max) ms of what db/mt5board.py does on a scrape after a store change: its marks (every
    account's deal count and newest deal: db/deal_marks.py, one row per account), one account's figures
    from its whole history (its first read), and the same account's after a new deal (the marks read
    and its kept walk extended)."""
    deals = DealModel.__table__
    with database.engine.connect() as connection:
        newest = connection.execute(select(func.max(deals.c.time)).where(deals.c.account == account)).scalar_one()
        per_account = connection.execute(select(func.count()).select_from(deals)
                                         .where(deals.c.account == account)).scalar_one()
    kept = []
    tickets = itertools.count(10**12)

    def marks() -> None:  # db/mt5board.py's read
        with reading(database) as connection:
            deal_marks.marks(connection)

    def whole() -> None:
        with reading(database) as connection:
            kept[:] = [mt5board._whole(connection, account, (per_account, newest))]

    def deal() -> None:  # untimed: an exit deal after the newest, and its mark (as db.repository.record_deal)
        ticket = next(tickets)
        moment = newest + timedelta(minutes=ticket - 10**12 + 1)
        with database.engine.begin() as connection:
            connection.execute(insert(deals).values(
                account=account, ticket=ticket, order_ticket=ticket, position_id=ticket, symbol="EURUSD", type=1,
                entry=1, volume=Decimal("0.10"), price=Decimal("1.1"), profit=Decimal("5.00"),
                commission=Decimal("-0.70"), swap=Decimal(0), magic=1, comment="", reason=3, time=moment))
            deal_marks.added(connection, account, 1, moment)

    def extended() -> None:
        with reading(database) as connection:
            mark = next((count, time) for name, count, time in deal_marks.marks(connection) if name == account)
            found = mt5board._extended(connection, account, kept[0], mark)
            if found is None:
                raise AssertionError("the new deal did not extend the kept walk")

    results = {}
    for name, call, before, runs in ((MT5_MARKS, marks, None, repeat), (MT5_WHOLE, whole, None, 1),
                                     (MT5_EXTENDED, extended, deal, repeat)):
        samples = []
        for _ in range(runs):
            if before is not None:
                before()
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = (statistics.median(samples), max(samples))
    _say(f"MT5 figures with {per_account:,} deals per account:")
    return results
