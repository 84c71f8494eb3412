"""Metrics history and the daily report: what the bot did, kept beyond the in-memory window.

Each cycle's figures are added to the current wall-clock minute and written to the store as one
`metrics_history` row per minute (counts and sums add up, so a minute flushed in pieces is still
right); old minutes are pruned, so nothing grows without bound. When the broker's trading day
rolls over (the trade server's midnight, db.brokerday), the finished day's `daily_performance` row
is written; the server offset the day is cut with is recorded in the store first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from operator import add
from typing import Any

from db.brokerday import BrokerDay
from db.metrics_history import MetricsMinute

log = logging.getLogger("bot.history")

PRUNE_EVERY_SECONDS = 3600.0
MAX_DEFERRED_MINUTES = 5  # closed minutes kept for the cycle's unit; more: nobody is writing them, write now
#: A cycle's figures as bot.instrumentation.CycleFigures lays them out (finished_at, duration_seconds, signals,
#: orders, trades_executed, broker_calls, broker_latency_seconds, memory_rss_bytes, cpu_percent, ok, broker_time):
#: what add_many's batch fold reads by position.
FIGURE_FIELDS = 11


class MinuteRollup:
    """Sink for `Instrumentation`: per-minute metrics history plus the day rollover."""

    def __init__(
        self,
        repo: Any,
        account: str,
        retention_days: int = 30,
        on_day_closed: Callable[[date], None] | None = None,
        clock: Callable[[], float] = time.time,
        day_of: Callable[[datetime], BrokerDay] | None = None,
        offset_of: Callable[[], int | None] | None = None,
        defer_writes: bool = False,
    ):
        self.repo = repo
        self.account = account
        self.retention = timedelta(days=retention_days)
        self.on_day_closed = on_day_closed
        self.clock = clock
        # The broker day of a UTC time (the app passes bot.gateway.broker_day_of); UTC days by default.
        self.day_of = day_of or (lambda moment: BrokerDay.of(moment, None))
        # Or the server offset alone (the app passes the gateway's): the day is then computed here and
        # kept while the offset holds and the moment stays inside it - one check a cycle instead of
        # building the day (a cycle-rate cost, issue 16). Same result as BrokerDay.of(moment, offset).
        self.offset_of = offset_of
        # Deferred (the app): a closed minute is written by `write_closed`, which the engine calls
        # inside its next cycle's store unit, so the row shares that cycle's one commit instead of
        # adding a commit (and an fsync) to every cycle that crosses a wall-clock minute (issue 16).
        self.defer_writes = defer_writes
        #: Closed minutes not yet written (the same list object throughout: a caller may test it cheaply).
        self.closed: list[MetricsMinute] = []
        self._day: tuple[int | None, datetime, datetime, BrokerDay] | None = None  # offset, start, end, day
        # (offset, start, end) of that day once its offset is stored and it is the trading day: until
        # the offset changes or a moment leaves it, a cycle has nothing to do about days (issue 16).
        self._settled: tuple[int | None, datetime, datetime] | None = None
        self._stored_offset: int | None = None  # the server offset last written to the store
        self._minute: datetime | None = None
        self._minute_no = 0  # unix minute of _minute
        self._sums: dict[str, Any] = {}
        self._last_prune = 0.0
        self._trading_day: date | None = None

    @property
    def day_ends(self) -> datetime | None:
        """The UTC end of the settled day (None: not settled): a caller batching cycles
        (bot.instrumentation) feeds them at once when a cycle reaches it."""
        return self._settled[2] if self._settled is not None else None

    def add_many(self, figures: list[Any]) -> None:
        """`add` each, in order (a batch of cycles, see bot.instrumentation).

        A batch inside one minute whose broker times all lie in the settled day (the common batch: the
        instrumentation feeds one at each new minute and every HISTORY_EVERY cycles) is summed at once,
        each column by a C-level fold in the order `add` would add it: the same sums to the last bit,
        without a Python-level `add` per cycle (issue 16). Any other batch goes figure by figure."""
        if figures and self._add_settled(figures):
            return
        for one in figures:
            self.add(one)

    def _add_settled(self, figures: list[Any]) -> bool:
        """Add the batch at once if it needs nothing but sums (see add_many); False: nothing done."""
        settled = self._settled
        if settled is None:
            return False
        if not isinstance(figures[0], tuple) or len(figures[0]) != FIGURE_FIELDS:
            return False  # a caller's own figure objects: add() reads them by attribute
        try:
            columns = list(zip(*figures, strict=True))
        except (TypeError, ValueError):  # not all tuples of that length
            return False
        finished, broker_times = columns[0], columns[10]
        if min(finished) // 60 != max(finished) // 60:
            return False
        try:  # None or a naive time (which add() judges apart) fails the comparison
            if not (settled[1] <= min(broker_times) and max(broker_times) < settled[2]):
                return False
        except TypeError:
            return False
        if settled[0] != self.offset_of():
            return False
        self._fold_minute(columns)
        return True

    def _fold_minute(self, columns: list[tuple[Any, ...]]) -> None:
        """A batch of one minute (`columns`: its figures by field) into that minute's sums, each column by a
        C-level fold in the order `add` would add it."""
        s = self._enter_minute(int(columns[0][0] // 60))
        s["cycles"] += len(columns[0])
        s["cycle_seconds_sum"] = reduce(add, columns[1], s["cycle_seconds_sum"])
        s["cycle_seconds_max"] = max(s["cycle_seconds_max"], *columns[1])
        s["signals"] += sum(columns[2])
        s["orders"] += sum(columns[3])
        s["trades_executed"] += sum(columns[4])
        s["broker_calls"] += sum(columns[5])
        s["broker_latency_seconds_sum"] = reduce(add, columns[6], s["broker_latency_seconds_sum"])
        s["memory_rss_bytes"] = columns[7][-1]
        s["cpu_percent"] = columns[8][-1]

    def _enter_minute(self, minute_no: int) -> dict[str, Any]:
        """The sums of unix minute `minute_no`, the current minute closed (and written, unless deferred) first."""
        if self._minute is not None and minute_no != self._minute_no:
            self._close_minute()
            if not self.defer_writes or len(self.closed) >= MAX_DEFERRED_MINUTES:
                self.write_closed()
        if self._minute is None:
            self._start_minute(minute_no)
        return self._sums

    def _start_minute(self, minute_no: int) -> None:
        self._minute_no = minute_no
        self._minute = datetime.fromtimestamp(minute_no * 60, tz=UTC)
        self._sums = {"cycles": 0, "cycle_seconds_sum": 0.0, "cycle_seconds_max": 0.0, "signals": 0,
                      "orders": 0, "trades_executed": 0, "broker_latency_seconds_sum": 0.0, "broker_calls": 0}

    def add_if_quiet(self, figures: list[Any]) -> bool:
        """Add the batch if that needs no store write (bot.history_feed: a reader feeds it off the loop,
        whose the store is); False: nothing done. Quiet: every figure a CycleFigures tuple whose broker
        time lies in the settled day (or is None), the server offset the one the day was settled with,
        and the minutes it closes deferred and too few to overflow `closed` (MAX_DEFERRED_MINUTES).
        Called under the feed's lock; the loop meanwhile only writes (and removes) closed minutes."""
        settled = self._settled
        if settled is None or not figures or settled[0] != self.offset_of():
            return False
        start, end = settled[1], settled[2]
        minute = self._minute_no if self._minute is not None else None
        closes = 0
        for one in figures:
            if not isinstance(one, tuple) or len(one) != FIGURE_FIELDS:
                return False
            broker_time = one[10]
            if broker_time is not None and (broker_time.tzinfo is None or not start <= broker_time < end):
                return False
            minute_no = int(one[0] // 60)
            if minute is not None and minute_no != minute:
                closes += 1
            minute = minute_no
        if closes and (not self.defer_writes or len(self.closed) + closes >= MAX_DEFERRED_MINUTES):
            return False
        if closes == 0:  # one minute, judged above: folded at once, without _add_settled's second judgement
            self._fold_minute(list(zip(*figures, strict=True)))  # every figure of FIGURE_FIELDS, judged above
        else:  # across minutes: figure by figure, sums only
            for one in figures:
                self._sum(one)
        return True

    def add(self, figures: Any) -> None:
        self._sum(figures)
        broker_time = getattr(figures, "broker_time", None)
        if broker_time is not None:
            settled = self._settled
            if (settled is not None and broker_time.tzinfo is not None and settled[1] <= broker_time < settled[2]
                    and settled[0] == self.offset_of()):
                return
            day = self._day_of(broker_time)
            self._store_offset(day.offset_seconds, broker_time)  # before a rollover's report reads it
            self._roll_day(day.date)
            cached = self._day
            self._settled = None
            if (self.offset_of is not None and cached is not None and cached[3] is day and self._trading_day == day.date
                    and (day.offset_seconds is None or day.offset_seconds == self._stored_offset)):
                self._settled = (cached[0], cached[1], cached[2])

    def _sum(self, figures: Any) -> None:
        """One cycle's figures into its minute's sums (the minute before it closed first)."""
        minute_no = int(figures.finished_at // 60)  # the datetime is built once a minute, not every cycle
        s = self._enter_minute(minute_no)
        s["cycles"] += 1
        s["cycle_seconds_sum"] += figures.duration_seconds
        s["cycle_seconds_max"] = max(s["cycle_seconds_max"], figures.duration_seconds)
        s["signals"] += figures.signals
        s["orders"] += figures.orders
        s["trades_executed"] += figures.trades_executed
        s["broker_latency_seconds_sum"] += figures.broker_latency_seconds
        s["broker_calls"] += figures.broker_calls
        s["memory_rss_bytes"] = figures.memory_rss_bytes
        s["cpu_percent"] = figures.cpu_percent

    def _day_of(self, moment: datetime) -> BrokerDay:
        if self.offset_of is None or moment.tzinfo is None:
            return self.day_of(moment) if self.offset_of is None else BrokerDay.of(moment, self.offset_of())
        offset = self.offset_of()
        cached = self._day
        if cached is not None and cached[0] == offset and cached[1] <= moment < cached[2]:
            return cached[3]
        day = BrokerDay.of(moment, offset)
        self._day = (offset, day.start, day.end, day)
        return day

    def flush(self) -> None:
        """Write the current minute and any closed one (also called at shutdown). A store failure is logged, not raised."""
        self._close_minute()
        self.write_closed()

    def _close_minute(self) -> None:
        if self._minute is None:
            return
        self.closed.append(MetricsMinute(account=self.account, minute=self._minute, **self._sums))
        self._minute, self._sums = None, {}

    def write_closed(self) -> None:
        """Store the closed minutes, and prune when it is due. A store failure is logged, not raised."""
        if not self.closed:
            return
        # A copy, then a delete of as many: a minute a reader's feed closes in between (bot.history_feed)
        # lands after them and stays for the next write. Each step is atomic under the GIL.
        count = len(self.closed)
        closed = self.closed[:count]
        del self.closed[:count]
        try:
            for minute in closed:
                self.repo.record_metrics_minute(minute)
            now = self.clock()
            if now - self._last_prune >= PRUNE_EVERY_SECONDS:
                self._last_prune = now
                self.repo.prune_metrics_history(self.account, closed[-1].minute - self.retention)
        except Exception as exc:  # noqa: BLE001 - history must never stop trading
            log.warning("metrics history not stored: %s", exc, extra={"minute": closed[-1].minute.isoformat()})

    def _store_offset(self, offset: int | None, broker_time: datetime) -> None:
        """Record the server offset in the store when it is new or changed (db.brokerday), so the
        store's reports and the exporter cut broker days as the bot does; retried next cycle on failure."""
        if offset is None or offset == self._stored_offset:
            return
        try:
            self.repo.record_broker_offset(self.account, broker_time, offset)
            self._stored_offset = offset
        except Exception as exc:  # noqa: BLE001 - the history must never stop trading
            log.warning("broker clock offset not stored: %s", exc, extra={"offset_seconds": offset})

    def _roll_day(self, today: date) -> None:
        if self._trading_day is None:
            self._trading_day = today
            return
        if today == self._trading_day:
            return
        finished, self._trading_day = self._trading_day, today
        if self.on_day_closed is None:
            return
        try:
            self.on_day_closed(finished)
        except Exception as exc:  # noqa: BLE001 - the report must never stop trading
            log.warning("daily report for %s not written: %s", finished, exc)
