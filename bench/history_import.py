"""Whole-account history import speed (issue 17's figure): one year of 100 000 deals in <= 60 s.

`python -m bench history_import` builds a terminal with a year of history (positions in and out,
partial exits, other EAs, manual trades, a deposit and monthly charges), answered in windows as
MT5 does, imports it into a SQLite file store through bot.account_history and prints the time.
tests/test_account_history.py runs the same terminal at 10 000 deals for correctness (no timing).
"""

from __future__ import annotations

import bisect
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.account_history import HistoryImport
from bot.gateway import Deal, Gateway
from db import init_db
from db.history_store import deal_count
from mt5bridge import constants as mt5

BOT_MAGIC = 240001
DEALS = 100_000
TARGET_SECONDS = 60.0


class YearOfDeals(Gateway):
    """A terminal with a year of history: 100 000 deals (positions in and out, partial exits,
    other EAs, manual trades, a deposit and monthly charges), answered in windows as MT5 does."""

    connected = True

    def __init__(self, count: int, start: datetime, bot_magic: int = BOT_MAGIC):
        step = timedelta(days=365) / count
        self.rows: list[Deal] = []
        ticket = 1
        position = 10_000_000
        moment = start

        def deal(kind, entry, magic, pos, volume, profit, symbol="EURUSD", price="1.10000"):
            nonlocal ticket, moment
            ticket += 1
            moment += step
            self.rows.append(Deal(ticket=ticket, order=ticket, position_id=pos, symbol=symbol, type=kind,
                                  entry=entry, volume=Decimal(volume), price=Decimal(price),
                                  profit=Decimal(profit), commission=Decimal("-0.70"), swap=Decimal("0.00"),
                                  magic=magic, comment="", reason=0, time=moment))

        deal(mt5.DEAL_TYPE_BALANCE, mt5.DEAL_ENTRY_IN, 0, 0, "0", "100000.00", symbol="", price="0")
        while len(self.rows) < count:
            position += 1
            magic = (0, 777, bot_magic)[position % 3]
            deal(mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, magic, position, "0.20", "0.00")
            if position % 5 == 0:
                deal(mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, magic, position, "0.10", "3.10")
                deal(mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, magic, position, "0.10", "-1.20")
            else:
                deal(mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, magic, position, "0.20", "2.00")
            if position % 1000 == 0:
                deal(mt5.DEAL_TYPE_CHARGE, mt5.DEAL_ENTRY_IN, 0, 0, "0", "-5.00", symbol="", price="0")
        self.rows = self.rows[:count]
        self.times = [d.time for d in self.rows]
        self.by_position: dict[int, list[Deal]] = {}
        for d in self.rows:
            self.by_position.setdefault(d.position_id, []).append(d)

    def account_deals(self, date_from, date_to):
        return self.rows[bisect.bisect_left(self.times, date_from):bisect.bisect_right(self.times, date_to)]

    def deals(self, date_from, date_to):
        return [d for d in self.account_deals(date_from, date_to) if d.symbol]

    def deals_for_position(self, position_id):
        return list(self.by_position.get(position_id, ()))

    def positions(self, symbol=None):
        return []

    def connect(self): ...
    def close(self): ...
    def terminal(self): ...
    def account(self): ...
    def symbol(self, name): ...
    def quote(self, name): ...
    def bars(self, symbol, timeframe, count): ...
    def history_orders(self, date_from, date_to): return []
    def order_send(self, request): raise AssertionError("an import never sends an order")


def main() -> int:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    gateway = YearOfDeals(DEALS, start)
    with tempfile.TemporaryDirectory(prefix="tradewatch-bench-import-") as tmp:
        database = init_db(f"sqlite:///{tmp}/year.db")
        try:
            began = time.perf_counter()
            result = HistoryImport(gateway, database, "1", BOT_MAGIC, {"EURUSD": 5}).run(
                gateway.times[-1] + timedelta(minutes=1), since=start)
            seconds = time.perf_counter() - began
            stored = deal_count(database, "1")
        finally:
            database.dispose()
    ok = seconds <= TARGET_SECONDS and stored == result.deals_stored == DEALS
    sys.stdout.write(f"history import: {result.deals_stored} deals ({stored} in the store), {result.trades_closed} "
                     f"trades closed, {result.windows} broker-day windows in {seconds:.1f} s (SQLite file store); "
                     f"target <= {TARGET_SECONDS:g} s  {'PASS' if ok else 'MISS'}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
