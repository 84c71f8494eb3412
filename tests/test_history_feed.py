"""bot.history_feed: a reader feeds the minute history off the loop, and only what needs no store write.

Each test uses the real MinuteRollup and counts exactly: the cycles and broker calls stored in
minute rows are the ones the loop finished, whichever thread fed them, and the store is written
only on the loop's thread.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from prometheus_client import generate_latest

from bot.engine import CycleReport
from bot.history import MAX_DEFERRED_MINUTES, MinuteRollup
from bot.history_feed import HISTORY_EVERY, READER_FRESH_SECONDS
from bot.telemetry.deferred import Deferred
from tests.test_telemetry_deferred import quick_bot

START = 1_767_607_200.0  # a wall-clock minute's start (2026-01-05 10:00 UTC)
BROKER = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # inside one broker day at GMT+2 (22:00 UTC midnight)


class Store:
    """The rollup's repository: what it writes, and on which thread."""

    def __init__(self) -> None:
        self.minutes: list = []
        self.offsets: list = []
        self.threads: set[str] = set()

    def record_metrics_minute(self, minute) -> None:
        self.threads.add(threading.current_thread().name)
        self.minutes.append(minute)

    def record_broker_offset(self, account, moment, offset) -> None:
        self.threads.add(threading.current_thread().name)
        self.offsets.append(offset)

    def prune_metrics_history(self, account, before) -> None:
        self.threads.add(threading.current_thread().name)


def rig(offset=lambda: 7200):
    store = Store()
    rollup = MinuteRollup(store, "42", offset_of=offset, defer_writes=True, clock=lambda: START)
    metrics, instrumentation, gateway = quick_bot(history=rollup)
    clock = {"now": START}
    instrumentation.clock = lambda: clock["now"]
    return store, rollup, metrics, instrumentation, gateway, clock


def cycle(instrumentation, gateway, clock, n: int, calls: int = 2, step: float = 0.5) -> None:
    for _ in range(calls):
        gateway.call("symbol_info_tick", 0.001)
    clock["now"] += step
    instrumentation.store_unit_closing()  # the engine's store unit closes before the cycle is finished
    instrumentation.cycle_finished(CycleReport(f"c{n}", n, duration_seconds=0.01,
                                               started_at=BROKER + timedelta(seconds=clock["now"] - START)))


def scrape_on_a_thread(metrics) -> str:
    worker = threading.Thread(target=generate_latest, args=(metrics.registry,), name="scrape")
    worker.start()
    worker.join()
    return worker.name


def stored(store: Store, rollup: MinuteRollup, field: str) -> int:
    rollup.flush()
    return sum(getattr(minute, field) for minute in store.minutes)


def test_a_scrape_feeds_the_settled_history_on_its_own_thread_and_the_loop_does_not(monkeypatch) -> None:
    quiet_threads = []
    add_if_quiet = MinuteRollup.add_if_quiet
    monkeypatch.setattr(MinuteRollup, "add_if_quiet", lambda self, figures: quiet_threads.append(
        threading.current_thread().name) or add_if_quiet(self, figures))
    store, rollup, metrics, instrumentation, gateway, clock = rig()
    loop_feeds = []
    feed = instrumentation._feed.feed
    instrumentation._feed.feed = lambda: loop_feeds.append(1) or feed()
    cycle(instrumentation, gateway, clock, 0)  # the first cycle: fed by the loop, it settles the day
    assert loop_feeds == [1] and store.offsets == [7200]
    for n in range(1, 10 * HISTORY_EVERY):
        cycle(instrumentation, gateway, clock, n)  # 0.5 s apart: several minutes
        if n % 10 == 0:
            scrape_on_a_thread(metrics)
    assert loop_feeds == [1]  # every later cycle was fed by a scrape, minute boundaries included
    assert set(quiet_threads) == {"scrape"}
    assert store.threads == {threading.current_thread().name}  # the rows: written in the loop's store unit
    instrumentation.flush_history()
    assert stored(store, rollup, "cycles") == 10 * HISTORY_EVERY
    assert stored(store, rollup, "broker_calls") == 2 * 10 * HISTORY_EVERY


def test_what_would_write_the_store_is_left_to_the_loop_in_order() -> None:
    store, rollup, metrics, instrumentation, gateway, clock = rig()
    offset = {"now": None}  # the clock has not measured the server offset yet: no settled day
    rollup.offset_of = lambda: offset["now"]
    cycle(instrumentation, gateway, clock, 0)
    offset["now"] = 7200
    cycle(instrumentation, gateway, clock, 1)
    scrape_on_a_thread(metrics)  # the day is not settled: the batch would record the offset
    assert store.offsets == [] and instrumentation._feed.minute_ends == float("-inf")
    cycle(instrumentation, gateway, clock, 2)  # the loop adds the reader's batch first, then its own
    assert store.offsets == [7200] and store.threads == {threading.current_thread().name}
    instrumentation.flush_history()
    assert stored(store, rollup, "cycles") == 3 and stored(store, rollup, "broker_calls") == 6


def test_a_loop_nobody_scrapes_feeds_each_new_minute_itself_and_leaves_it_to_a_fresh_reader() -> None:
    store, rollup, metrics, instrumentation, gateway, clock = rig()
    cycle(instrumentation, gateway, clock, 0)
    clock["now"] = START + 60 - 1
    cycle(instrumentation, gateway, clock, 1, step=0)
    scrape_on_a_thread(metrics)  # a reader fed the history at START + 59
    cycle(instrumentation, gateway, clock, 2, step=30)  # a new minute, the reader fresh: left to it
    assert len(instrumentation._ended.items) == 1 and rollup.closed == []
    scrape_on_a_thread(metrics)  # the reader closes the minute; the next store unit writes its row
    assert len(rollup.closed) == 1
    cycle(instrumentation, gateway, clock, 3, step=0)
    assert [m.cycles for m in store.minutes] == [2]
    cycle(instrumentation, gateway, clock, 4, step=READER_FRESH_SECONDS + 1)  # no reader for a minute
    assert instrumentation._ended.items == [] and len(rollup.closed) == 1  # the loop fed it, as before


def test_a_scraper_reading_all_the_time_loses_and_doubles_nothing() -> None:
    store, rollup, metrics, instrumentation, gateway, clock = rig()
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            generate_latest(metrics.registry)

    scraper = threading.Thread(target=scrape, name="scrape")
    scraper.start()
    try:
        for n in range(4000):
            cycle(instrumentation, gateway, clock, n, calls=n % 4, step=0.25)  # ~17 minutes
    finally:
        stop.set()
        scraper.join()
    instrumentation.flush_history()
    assert stored(store, rollup, "cycles") == 4000
    assert stored(store, rollup, "broker_calls") == sum(n % 4 for n in range(4000))
    assert len({m.minute for m in store.minutes}) == len(store.minutes)  # each minute once
    assert store.threads == {threading.current_thread().name}
    assert metrics.registry.get_sample_value("tradewatch_cycles_total", {"account": "42"}) == 4000


def figures_from(first: datetime, count: int, seconds: float = 20.0, broker=None) -> list:
    from bot.history_feed import CycleFigures

    return [CycleFigures(START + n * seconds, 0.01, 1, 0, 0, 3, 0.003, 1000, 1.0, True,
                         broker(n) if broker else first + timedelta(seconds=n * seconds)) for n in range(count)]


def settled_rollup(defer_writes: bool = True) -> tuple[MinuteRollup, Store]:
    store = Store()
    rollup = MinuteRollup(store, "42", offset_of=lambda: 7200, defer_writes=defer_writes, clock=lambda: START)
    rollup.add(figures_from(BROKER, 1)[0])  # settles the day (records the offset)
    assert rollup.day_ends is not None
    return rollup, store


def snapshot(rollup: MinuteRollup) -> tuple:
    return rollup._minute, dict(rollup._sums), list(rollup.closed), rollup._settled


def test_add_if_quiet_refuses_every_batch_that_would_write_and_changes_nothing() -> None:
    unsettled = MinuteRollup(Store(), "42", offset_of=lambda: 7200, defer_writes=True)
    assert not unsettled.add_if_quiet(figures_from(BROKER, 2))
    rollup, store = settled_rollup()
    before = snapshot(rollup)
    naive = BROKER.replace(tzinfo=None)
    for batch in (
        figures_from(BROKER + timedelta(hours=13), 1),  # past the broker day's end (22:00 UTC)
        figures_from(BROKER, 2, broker=lambda n: naive),  # a naive time: add() judges it apart
        figures_from(BROKER, 3 * MAX_DEFERRED_MINUTES, seconds=60),  # more closed minutes than are deferred
        [SimpleNamespace(**figures_from(BROKER, 1)[0]._asdict())],  # not CycleFigures tuples
        [],
    ):
        assert not rollup.add_if_quiet(batch)
        assert snapshot(rollup) == before
    rollup.offset_of = lambda: 10800  # the server offset moved: the day is cut anew (a store write)
    assert not rollup.add_if_quiet(figures_from(BROKER, 2))
    assert snapshot(rollup) == before
    direct, _ = settled_rollup(defer_writes=False)
    assert not direct.add_if_quiet(figures_from(BROKER, 4, seconds=30))  # its closed minutes are written at once
    assert store.minutes == [] and store.offsets == [7200]


def test_add_if_quiet_sums_what_add_sums_across_minutes() -> None:
    quiet, quiet_store = settled_rollup()
    loud, loud_store = settled_rollup()
    batch = figures_from(BROKER + timedelta(seconds=20), 7)  # 20 s apart: three minute changes
    assert quiet.add_if_quiet(batch)
    for one in batch:
        loud.add(one)
    assert snapshot(quiet) == snapshot(loud) and len(quiet.closed) == 2
    same_minute = [one._replace(finished_at=one.finished_at + 150)  # inside the current minute (START + 120..)
                   for one in figures_from(BROKER + timedelta(seconds=150), 3, seconds=3)]
    assert quiet.add_if_quiet(same_minute)
    for one in same_minute:
        loud.add(one)
    assert snapshot(quiet) == snapshot(loud) and quiet._sums["cycles"] == 4
    quiet.flush()
    loud.flush()
    assert quiet_store.minutes == loud_store.minutes
    assert not quiet_store.threads - {threading.current_thread().name}


class _Interleaved(list):
    """A closed-minutes list on which a reader closes a minute right after the writer copied it."""

    late = None

    def __getitem__(self, index):
        copy = super().__getitem__(index)
        if isinstance(index, slice) and self.late is not None:
            self.append(self.late)
            self.late = None
        return copy


def test_a_minute_closed_while_the_closed_ones_are_written_waits_for_the_next_write() -> None:
    rollup, store = settled_rollup()
    rollup.add_if_quiet(figures_from(BROKER, 3, seconds=60))  # two minutes closed
    interleaved = _Interleaved(rollup.closed)
    rollup.closed = interleaved
    late = SimpleNamespace(minute=datetime(2026, 1, 5, 10, 5, tzinfo=UTC), cycles=1)
    interleaved.late = late
    rollup.write_closed()
    assert len(store.minutes) == 2 and rollup.closed == [late]
    rollup.write_closed()
    assert store.minutes[-1] is late and rollup.closed == []


def test_appended_counts_every_item_even_while_a_drop_runs_on_another_thread() -> None:
    pending = Deferred(lambda batch: None)
    pending.count_cycles()
    for n in range(10):
        pending.append(n)
    pending.take()  # drops all ten: removed 10, nothing held
    assert pending.appended() == 10
    entered = []

    class Lock:  # the Deferred's lock, recording that appended() fell back to it
        def __enter__(self):
            entered.append(1)

        def __exit__(self, *exc):
            return False

    pending._lock = Lock()
    pending.append(10)
    assert pending.appended() == 11 and entered == []  # no drop ran: read without the lock
    pending._drops += 1  # a drop is running (odd): the sum may be torn, so it is read under the lock
    assert pending.appended() == 11 and entered == [1]



def test_a_failing_reader_feed_never_fails_the_scrape_and_hands_the_history_to_the_loop(caplog) -> None:
    store, rollup, metrics, instrumentation, gateway, clock = rig()
    cycle(instrumentation, gateway, clock, 0)  # settles the day

    def broken(figures):
        raise RuntimeError("a bug")

    instrumentation._feed._add_quietly = broken
    cycle(instrumentation, gateway, clock, 1)
    assert b"tradewatch_cycles_total" in generate_latest(metrics.registry)  # the scrape still answers
    generate_latest(metrics.registry)  # said once, not at every read
    assert [r.levelname for r in caplog.records if "scrape thread's feed failed" in r.message] == ["ERROR"]
    for n in range(2, 5):
        cycle(instrumentation, gateway, clock, n)
        generate_latest(metrics.registry)
    instrumentation.flush_history()
    assert stored(store, rollup, "cycles") == 5  # the failed batch and every later one, fed by the loop
