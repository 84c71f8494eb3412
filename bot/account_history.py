"""Whole-account history: every deal the terminal has for the account, backfilled into the store.

`python -m bot history import [--since DATE]`, and the bot itself at first start, walk the
account's history in broker-day windows (`history_deals_get` through the gateway, which judges
every record and gives times on the broker clock), oldest first, and book each window with the
live bot's own `Books` (whole-account mode): balance operations become deals only (MT5's deal
types kept: BALANCE, CREDIT, CHARGE, ...), every position becomes a trade, attributed to its
strategy when the bot made it, else to `manual` (magic 0) or `ea:<magic>`.

- Idempotent: the store refuses a deal or trade twice (unique keys); a re-import stores nothing.
- Resumable: after each window is committed (one transaction per window, see `db.history_store`), the
  window's end is written to a small JSON cursor file; a new run starts there.
- Broker day: a window is one calendar day of the times as the gateway reports them (the trade
  server's midnight while the gateway hands out server times; once the gateway converts to UTC,
  the server's midnight in UTC - the window edges move, the deals do not: windows only batch).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from db import Repository
from db.history_store import deal_count, finish, store_window
from mt5bridge import constants as mt5

from .engine.books import FAR_AHEAD, Books, is_trade_deal, open_ids
from .engine.trades_from_deals import segments
from .gateway import Gateway

log = logging.getLogger("bot.account_history")

WINDOW = timedelta(days=1)
#: Looking for the account's first deal: back in steps of this ...
PROBE_STEP = timedelta(days=30)
#: ... until this many steps in a row hold no deal (an account's first deal is its deposit).
PROBE_EMPTY_STEPS = 12
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ImportResult:
    windows: int = 0
    deals_seen: int = 0
    deals_stored: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    conflicts: int = 0
    since: datetime | None = None
    until: datetime | None = None


def cursor_file(database_url: Any, account: str) -> str:
    """Where the import remembers its last window: beside a SQLite store, else under data/."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = url.database or "" if url.get_backend_name() == "sqlite" else ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return f"data/history_import.{account}.json"
    return f"{path}.history_import.{account}.json"


class Cursor:
    """The end of the last committed window, kept in a JSON file (written atomically)."""

    def __init__(self, path: str | None):
        self.path = path

    def load(self) -> datetime | None:
        if not self.path or not os.path.exists(self.path):
            return None
        try:
            with open(self.path, encoding="utf-8") as handle:
                return datetime.fromisoformat(json.load(handle)["done_until"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("history import cursor %s unreadable, starting over: %s", self.path, exc)
            return None

    def save(self, until: datetime) -> None:
        if not self.path:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        temporary = f"{self.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"done_until": until.isoformat()}, handle)
        os.replace(temporary, self.path)


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal (logs stay clean otherwise)."""

    def __init__(self, total: int, stream: Any = None):
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, done: int, deals: int) -> None:
        if not self.enabled:
            return
        share = min(done / self.total, 1.0)
        bar = "#" * int(share * 30)
        self.stream.write(f"\rhistory import [{bar:<30}] {share:6.1%} {done}/{self.total} days, {deals} deals")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def day_start(moment: datetime) -> datetime:
    """The broker day's midnight containing `moment` (see the module docstring)."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class HistoryImport:
    def __init__(self, gateway: Gateway, database: Any, account: str, magic: int, digits: dict[str, int],
                 cursor: Cursor | None = None, progress: Callable[[int], Progress] = Progress):
        self.gateway = gateway
        self.database = database
        self.repo = Repository(database)
        self.account = account
        self.cursor = cursor or Cursor(None)
        self.progress = progress
        self.books = Books(gateway, self.repo, account, magic, digits, whole_account=True)
        self.position_deals: dict[int, list] = {}  # position identifier -> its deals seen so far

    def first_deal_time(self, now: datetime) -> datetime | None:
        """The account's oldest deal: searched back a month at a time (see PROBE_EMPTY_STEPS)."""
        oldest, empty, end = None, 0, now + WINDOW
        while empty < PROBE_EMPTY_STEPS and end > EPOCH_FLOOR:
            start = max(end - PROBE_STEP, EPOCH_FLOOR)
            deals = self.gateway.account_deals(start, end)
            if deals:
                oldest, empty = min(d.time for d in deals), 0
            else:
                empty += 1
            end = start
        return oldest

    def run(self, now: datetime, since: datetime | None = None) -> ImportResult:
        """Import from `since` (default: where the last run stopped, else the account's first deal) to `now`."""
        start = since or self.cursor.load() or self.first_deal_time(now)
        result = ImportResult(until=now)
        if start is None:
            self.cursor.save(now)
            log.info("account history import: the terminal has no deals", extra={"account": self.account})
            return result
        start = day_start(start)
        result.since = start
        days = max(int((now - start) / WINDOW) + 1, 1)
        bar = self.progress(days)
        before = deal_count(self.database, self.account)
        open_tickets = open_ids(self.gateway.positions())
        window = start
        while window <= now:
            last = window + WINDOW > now
            # The last window reaches ahead as the live books do: the broker clock (a quote's time)
            # may be stale by a weekend. The cursor never runs ahead of `now`, and a resumed run
            # starts at that day's midnight again (a repeat is a no-op).
            end = now + FAR_AHEAD if last else window + WINDOW
            # history_deals_get's range is inclusive at both ends: the edge belongs to the next window
            deals = [d for d in self.gateway.account_deals(window, end) if d.time < end]
            self._book(deals, open_tickets, result)
            self.database.commit()  # inside a cycle's unit (db.database): stored before the cursor moves
            self.cursor.save(min(end, now))
            window = end
            result.windows += 1
            bar.update(result.windows, result.deals_seen)
        bar.finish()
        if result.trades_closed:
            finish(self.database, self.account)  # the analytics rollups, rebuilt once from the trades
        result.deals_stored = deal_count(self.database, self.account) - before
        log.info("account history imported", extra={
            "account": self.account, "since": start.isoformat(), "windows": result.windows,
            "deals": result.deals_seen, "stored": result.deals_stored, "opened": result.trades_opened,
            "closed": result.trades_closed})
        return result

    def _book(self, deals: list, open_tickets: set[int], result: ImportResult) -> None:
        """One window: its deals, and the trades of every position they touch, in one transaction.

        Trades are the live books' own (`trades_from_deals.segments` of the position's deals, records
        by `Books.trade_open` / `trade_close`): one implementation of deals -> trades. A segment whose
        volume went back to zero is opened and closed; the last one of a position still open stays
        open. A re-booked trade changes nothing (the store's unique keys, closes only of open trades).
        """
        books, cache = self.books, self.position_deals
        records, touched = [], []
        for deal in deals:
            records.append(books._deal_record(deal))
            if not is_trade_deal(deal):
                continue  # a balance operation is a deal, never a trade
            cache.setdefault(deal.position_id, []).append(deal)
            if deal.position_id not in touched:
                touched.append(deal.position_id)
        opens, closes = [], []
        known = {r.ticket for r in records}
        for position_id in touched:
            first = min(cache[position_id], key=lambda d: (d.time, d.ticket))
            if first.entry != mt5.DEAL_ENTRY_IN:  # an INOUT or an exit first: its start is older
                # Opened before this run's first window: its whole history from the broker, once.
                cache[position_id] = self.gateway.deals_for_position(position_id)
                records += [books._deal_record(d) for d in cache[position_id] if d.ticket not in known]
                known.update(d.ticket for d in cache[position_id])
            found = segments(cache[position_id])
            for index, segment in enumerate(found):
                opens.append(books.trade_open(segment))
                if segment.closed and not (index == len(found) - 1 and position_id in open_tickets):
                    closes.append(books.trade_close(segment))
        stored = store_window(self.database, self.account, records, opens, closes)
        for ticket in stored.conflicts:
            log.error("account history: deal ticket %s is stored with other content; the stored one is kept",
                      ticket, extra={"ticket": ticket, "account": self.account})
        result.deals_seen += len(deals)
        result.conflicts += len(stored.conflicts)
        result.trades_opened += stored.opened
        result.trades_closed += stored.closed


def import_command(settings: Any, since: datetime | None) -> int:
    """`python -m bot history import`: connect to the terminal, import, print one summary line."""
    from db import init_db

    from .engine.symbols import symbol_specs
    from .gateway.factory import make_gateway, make_sim, sim_state_file

    sim = None
    if settings.mt5_mode == "sim":  # the simulator the bot runs on: its state file, its history
        from db.url import resolve_url

        sim = make_sim(settings, state_file=sim_state_file(settings.sim_state_path, resolve_url(settings.database_url)))
    gateway = make_gateway(settings, sim)
    database = init_db(settings.database_url)
    try:
        gateway.connect()
        account = str(gateway.account().login)
        specs = symbol_specs(gateway, settings.symbols)
        now = gateway.quote(settings.symbols[0]).time
        cursor = Cursor(cursor_file(database.url, account))
        result = HistoryImport(gateway, database, account, settings.magic,
                               {name: spec.digits for name, spec in specs.items()}, cursor=cursor).run(now, since)
    finally:
        gateway.close()
        database.dispose()
    sys.stdout.write(f"account {account}: {result.deals_seen} deals read in {result.windows} broker-day windows, "
                     f"{result.deals_stored} new stored, {result.trades_opened} trades opened, "
                     f"{result.trades_closed} closed, {result.conflicts} conflicts\n")
    return 0
