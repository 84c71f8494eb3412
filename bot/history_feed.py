"""The minute history fed from the finished cycles, in batches: by a reader off the loop, or by the loop.

The loop appends each finished cycle to a pending list (bot.instrumentation); here the waiting cycles
become CycleFigures - with their quick-lane broker calls and a process sample - and are added to the
minute history (bot.history.MinuteRollup, a sink with `add_many` and `day_ends`).

Who feeds (issue 16: the loop thread's telemetry cost <= 1 % of a cycle):

- **A reader**, after it folded the metrics: the metrics server's scrape thread, as it reads a series
  the cycles feed (`fold_pending`, registered with BotMetrics.fold_before_reads). It adds the batch only
  if the sink can without a store write (`add_if_quiet`: inside the settled broker day, with room for
  the minutes it closes among those the next store unit writes) - the store is the loop's. While
  someone scrapes, the loop pays nothing for the history but one append a cycle: ~4 us a cycle of
  building figures and folding sums move off it. What a sink refuses waits in order for the loop,
  which adds it at its next cycle, store writes and all (the server-offset record, a daily report, an
  overflow of closed minutes).
- **The loop** (`feed`): once HISTORY_EVERY cycles wait (nobody scrapes), at the first cycle of a new
  wall-clock minute unless a reader fed within READER_FRESH_SECONDS (it will close that minute within a
  scrape interval, and the next store unit writes the row), at a cycle outside the settled broker day,
  after a reader left a batch for it, and at shutdown. Minute rows and daily reports are written when
  they were before; with a reader, a minute row up to a scrape interval later.

One lock orders the feeds, so that a batch taken is added before the next is taken; a reader never
waits for it (if the loop is feeding, there is nothing for the reader to do). A batch is judged with
the server offset of when it is fed: an offset change is dated up to a batch early, inside the hour
the clock may take to notice one (bot.gateway.clock). A sink without `add_many` and `day_ends` gets
every cycle at once, as it comes, from the loop only.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime
from functools import partial, reduce
from operator import add, itemgetter
from typing import Any, NamedTuple

from .telemetry.deferred import Deferred
from .telemetry.process_sample import ProcessSampler

HISTORY_EVERY = 32  # cycles the loop lets wait before it feeds them itself (see the module doc)
READER_FRESH_SECONDS = 60.0  # a reader fed this recently: the loop leaves a new minute to it
PROCESS_SAMPLE_SECONDS = 10.0  # the history's RSS and CPU sample, at most this often

log = logging.getLogger("bot.history_feed")

_seconds = itemgetter(1)  # of a (call, seconds) quick-lane entry


class CycleFigures(NamedTuple):
    """One cycle's figures, rolled up per minute (bot.history). A named tuple: one is built every
    cycle, and a tuple is built several times faster than a frozen dataclass."""

    finished_at: float
    duration_seconds: float
    signals: int
    orders: int
    trades_executed: int
    broker_calls: int
    broker_latency_seconds: float
    memory_rss_bytes: int
    cpu_percent: float
    ok: bool
    broker_time: datetime | None = None


# CycleFigures from a tuple of all its fields: what namedtuple's _make does, without its Python frame.
_figures = partial(tuple.__new__, CycleFigures)


class HistoryFeed:
    """Takes the waiting cycles (`ended`, with count_cycles) and feeds them to `sink` (see the module doc)."""

    def __init__(self, ended: Deferred, metrics: Any, sink: Any) -> None:
        self._ended = ended
        self._metrics = metrics
        self.sink = sink
        #: The sink takes batches (add_many) and says where its settled day ends (day_ends).
        self.batched = hasattr(sink, "add_many") and hasattr(sink, "day_ends")
        self._add_quietly = getattr(sink, "add_if_quiet", None) if self.batched else None
        self._lock = threading.Lock()
        self._unfed: list[CycleFigures] = []  # taken by a reader, refused by the sink: the loop adds them first
        #: clock() at which the last fed cycle's minute ends (-inf: the loop feeds at its next cycle).
        self.minute_ends = -math.inf
        #: The sink's day_ends as of the loop's last feed (only a feed that may write changes it).
        self.day_ends: datetime | None = None
        #: clock() of the last cycle a reader fed (-inf: none, or it left a batch for the loop).
        self.reader_fed_at = -math.inf
        self._sampler = ProcessSampler()
        self._process_sample = (-math.inf, 0, 0.0)  # (clock() of the sample, rss, cpu percent)

    @property
    def reads_feed(self) -> bool:
        """Whether a reader feeds the history too (the sink adds a batch without store writes)."""
        return self._add_quietly is not None

    def fold_pending(self) -> None:
        """What a reader calls before it reads a series the cycles feed: the cycles into metrics first,
        then, off the loop, into the history if that needs no store write (see the module doc)."""
        self._ended.fold_pending()
        if self._add_quietly is None or not self._ended.items or not self._lock.acquire(blocking=False):
            return  # no reader feeds, nothing waits for the history, or the loop is feeding it now
        figures: list[CycleFigures] = []
        try:
            figures = self._take()
            if not figures:
                return
            if self._unfed or not self._add_quietly(figures):
                self._unfed.extend(figures)  # in order, for the loop's next cycle
                self.minute_ends = self.reader_fed_at = -math.inf
                return
            self.reader_fed_at = figures[-1].finished_at
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail for the history's sake
            # add_if_quiet judges the whole batch before it changes anything: the batch goes to the loop.
            self._unfed.extend(figures)
            self._add_quietly = None  # from now on the loop feeds it all, as where no reader can
            self.minute_ends = self.reader_fed_at = -math.inf
            log.error("the minute history is fed by the loop from now on: the scrape thread's feed failed: %s", exc)
        finally:
            self._lock.release()

    def feed(self) -> None:
        """The loop's feed: every waiting cycle, a reader's leftovers first (store writes allowed)."""
        with self._lock:
            self._ended.fold_pending()  # the metrics first (a reader may have folded some of them already)
            figures = self._take()
            if self._unfed:
                figures, self._unfed = self._unfed + figures, []
            if not figures:
                return
            if self.batched:
                self.sink.add_many(figures)
                self.day_ends = self.sink.day_ends
            else:
                for one in figures:
                    self.sink.add(one)

    def _take(self) -> list[CycleFigures]:
        """The waiting cycles as figures, each with its quick-lane calls (under the lock)."""
        self._metrics.keep_bounded()  # before the take, which lets go of what is folded and taken
        _, pending = self._ended.take()
        if not pending:
            return []
        start, quick = self._metrics.broker_calls.take(pending[-1][2])  # their quick-lane calls
        now = pending[-1][0]
        taken, rss, cpu = self._process_sample
        if now - taken >= PROCESS_SAMPLE_SECONDS or now < taken:
            rss, cpu = self._sampler.sample()
            self._process_sample = (now, rss, cpu)
        figures, begin = [], 0
        for finished, report, end, calls, latency in pending:
            mine = quick[begin:end - start]
            begin = end - start
            orders = report.orders
            figures.append(_figures((
                finished, report.duration_seconds, sum(report.signals.values()), sum(orders.values()) if orders else 0,
                orders.get("filled", 0) if orders else 0, calls + len(mine), reduce(add, map(_seconds, mine), latency),
                rss, cpu, report.error is None, report.started_at)))
        self.minute_ends = (now // 60 + 1) * 60
        return figures
