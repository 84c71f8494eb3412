"""bot.telemetry.deferred: what the loop hands over with one append is neither lost nor counted twice.

Broker calls through the gateway's quick lane, cycles and signals wait in a pending list; a read of
the registry folds them first, the loop folds once FOLD_EVERY wait. Each test counts exactly.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bot.engine import CycleReport
from bot.gateway import ConnectionLost
from bot.history import MinuteRollup
from bot.instrumentation import HISTORY_EVERY, Instrumentation
from bot.telemetry.deferred import Deferred
from bot.telemetry.lean import LeanHistogram
from bot.telemetry.metrics import BROKER_BUCKETS, BotMetrics

ACCOUNT = "42"
CALL = "tradewatch_broker_request_duration_seconds"


def value(metrics: BotMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


def quick_bot(history=None) -> tuple[BotMetrics, Instrumentation, SimpleNamespace]:
    """Metrics and instrumentation watching a stand-in gateway that routes calls as Mt5ApiGateway does."""
    metrics = BotMetrics(ACCOUNT)
    instrumentation = Instrumentation(metrics, history_sink=history)
    gateway = SimpleNamespace()

    def set_observer(observer, quick_calls=frozenset(), call_sink=None):
        gateway.observer, gateway.quick, gateway.sink = observer, quick_calls, call_sink

    def call(name: str, seconds: float, error=None) -> None:  # the gateway's `finally` of _call
        if error is None and name in gateway.quick:
            gateway.sink((name, seconds))
        else:
            gateway.observer(name, seconds, error)

    gateway.set_observer, gateway.call = set_observer, call
    instrumentation.watch(gateway)
    return metrics, instrumentation, gateway


def test_n_quick_calls_then_a_scrape_show_exactly_n() -> None:
    metrics, instrumentation, gateway = quick_bot()
    for _ in range(1000):
        gateway.call("positions_get", 0.0007)
    assert len(metrics.broker_calls) == 999  # the first went through the observer; the rest wait
    assert value(metrics, CALL + "_count", call="positions_get") == 1000
    assert value(metrics, CALL + "_bucket", call="positions_get", le="0.001") == 1000
    assert value(metrics, CALL + "_count", call="positions_get") == 1000  # a second read adds nothing
    assert len(metrics.broker_calls) == 0


def test_the_folded_exposition_is_the_one_of_direct_observations() -> None:
    seconds = [0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.2, 11.0, 0.0, 0.0005, 2.5]
    stock = CollectorRegistry()
    direct = Histogram("h_seconds", "h", ["a"], registry=stock, buckets=BROKER_BUCKETS)
    lean = CollectorRegistry()
    folded = LeanHistogram("h_seconds", "h", ["a"], registry=lean, buckets=BROKER_BUCKETS)
    pending = Deferred(lambda batch: folded.labels("x").observe_many(batch))
    folded.fold_first(pending)
    for s in seconds:
        direct.labels("x").observe(s)
        pending.append(s)
    strip = [line for line in generate_latest(lean).splitlines() if b"_created" not in line]
    assert strip == [line for line in generate_latest(stock).splitlines() if b"_created" not in line]


def test_a_failure_closes_the_quick_lane_until_a_call_succeeds_again() -> None:
    metrics, instrumentation, gateway = quick_bot()
    gateway.call("symbol_info_tick", 0.001)
    assert instrumentation.quick_calls == {"symbol_info_tick"}
    gateway.call("symbol_info_tick", 0.5, ConnectionLost("gone"))
    assert instrumentation.quick_calls == set() and value(metrics, "tradewatch_broker_connected") == 0
    gateway.call("symbol_info_tick", 0.001)  # through the observer: connected again
    assert value(metrics, "tradewatch_broker_connected") == 1
    gateway.call("symbol_info_tick", 0.001)  # quick again
    assert value(metrics, CALL + "_count", call="symbol_info_tick") == 4
    assert value(metrics, "tradewatch_broker_errors_total", call="symbol_info_tick", kind="connection_lost") == 1


def test_order_send_never_takes_the_quick_lane_and_keeps_its_exemplar() -> None:
    metrics, instrumentation, gateway = quick_bot()
    for _ in range(3):
        gateway.call("order_send", 0.004)
    assert "order_send" not in instrumentation.quick_calls and len(metrics.broker_calls) == 0


def test_a_scrape_racing_with_the_loop_loses_and_doubles_nothing() -> None:
    metrics, instrumentation, gateway = quick_bot()
    gateway.call("positions_get", 0.0007)
    calls, signals, cycles = 20000, 4000, 2000
    done = threading.Event()
    scrapes = []

    def scrape() -> None:
        while not done.is_set():
            scrapes.append(generate_latest(metrics.registry))

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        keys = []
        for n in range(calls):
            gateway.call("positions_get", 0.0007)
            if n % 5 == 0:
                keys.append(("EURUSD", "sma", "HOLD"))  # a signal of the cycle, counted at its end
            if n % 10 == 9:
                instrumentation.cycle_finished(CycleReport("c", n, duration_seconds=0.002, signal_keys=keys))
                keys = []
    finally:
        done.set()
        scraper.join(30)
    assert scrapes  # the scraper ran meanwhile (and folded some of the pending items)
    assert value(metrics, CALL + "_count", call="positions_get") == calls + 1
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="sma", signal="HOLD") == signals
    assert value(metrics, "tradewatch_cycles_total") == cycles
    assert value(metrics, "tradewatch_cycle_duration_seconds_count") == cycles


def test_memory_stays_bounded_without_scrapes_and_nothing_is_lost() -> None:
    added = []
    metrics, instrumentation, gateway = quick_bot(history=SimpleNamespace(add=added.append))
    fold_every = metrics.broker_calls.fold_every
    held = []
    cycles = 3 * fold_every // 10
    for n in range(cycles):
        for _ in range(17):
            gateway.call("symbol_info_tick", 0.0007)
        instrumentation.cycle_finished(CycleReport("c", n, duration_seconds=0.002,
                                                   signal_keys=[("EURUSD", "sma", "HOLD")]))
        held.append(len(metrics.broker_calls))
    assert max(held) < fold_every + 17  # folded by the loop, not kept until a scrape
    assert sum(f.broker_calls for f in added) == 17 * cycles  # every call in its cycle's figures, once
    assert [f.broker_calls for f in added[1:]] == [17] * (cycles - 1)
    assert value(metrics, CALL + "_count", call="symbol_info_tick") == 17 * cycles
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="sma", signal="HOLD") == cycles


def test_cycle_figures_count_quick_calls_even_when_a_scrape_folded_them_first() -> None:
    added = []
    metrics, instrumentation, gateway = quick_bot(history=SimpleNamespace(add=added.append))
    gateway.call("positions_get", 0.25)  # observed directly
    gateway.call("positions_get", 0.5)  # quick
    metrics.registry.collect()
    value(metrics, CALL + "_count", call="positions_get")  # a scrape folds the quick one
    gateway.call("positions_get", 0.125)  # quick, not folded yet
    instrumentation.cycle_finished(CycleReport("c1", 1, duration_seconds=0.5, signals=Counter(HOLD=1)))
    instrumentation.cycle_finished(CycleReport("c2", 2, duration_seconds=0.5))
    assert [(f.broker_calls, f.broker_latency_seconds) for f in added] == [(3, 0.875), (0, 0.0)]
    assert value(metrics, CALL + "_sum", call="positions_get") == 0.875


def batch_bot(day_ends=None):
    batches: list[list] = []
    sink = SimpleNamespace(add_many=batches.append, day_ends=day_ends)
    metrics, instrumentation, gateway = quick_bot(history=sink)
    return metrics, instrumentation, gateway, sink, batches


def test_the_minute_history_is_fed_in_batches_with_each_cycles_own_calls(monkeypatch) -> None:
    clock = {"now": 1_767_607_200.0}  # the start of a minute
    monkeypatch.setattr("bot.instrumentation.time", SimpleNamespace(time=lambda: clock["now"], monotonic=lambda: 0.0))
    metrics, instrumentation, gateway, sink, batches = batch_bot()
    gateway.call("positions_get", 0.5)  # observed (the first of its name)
    instrumentation.cycle_finished(CycleReport("c0", 0, duration_seconds=0.1))  # the first cycle is fed at once
    assert [len(b) for b in batches] == [1] and batches[0][0].broker_calls == 1
    for n in range(1, HISTORY_EVERY + 1):
        for _ in range(n % 3):
            gateway.call("positions_get", 0.25)  # quick
        clock["now"] += 0.1
        instrumentation.cycle_finished(CycleReport(f"c{n}", n, duration_seconds=0.1))
    assert [len(b) for b in batches] == [1, HISTORY_EVERY]  # fed once HISTORY_EVERY waited
    assert [f.broker_calls for f in batches[1]] == [n % 3 for n in range(1, HISTORY_EVERY + 1)]
    assert [f.broker_latency_seconds for f in batches[1]] == [0.25 * (n % 3) for n in range(1, HISTORY_EVERY + 1)]
    instrumentation.cycle_finished(CycleReport("w", 99, duration_seconds=0.1))
    assert len(batches) == 2
    clock["now"] += 60  # the first cycle of the next minute: fed at once (its minute row is written then)
    instrumentation.cycle_finished(CycleReport("m", 100, duration_seconds=0.1))
    assert [len(b) for b in batches] == [1, HISTORY_EVERY, 2]
    instrumentation.cycle_finished(CycleReport("x", 101, duration_seconds=0.1))
    instrumentation.flush_history()  # at shutdown (BotApp.close): what waits is fed
    assert [len(b) for b in batches] == [1, HISTORY_EVERY, 2, 1]
    assert len(metrics.broker_calls) < 40  # the quick lane's items were handed out, then let go


def test_a_cycle_past_the_settled_broker_day_is_fed_at_once_and_rolls_the_day_then() -> None:
    closed, rows = [], []
    repo = SimpleNamespace(record_metrics_minute=rows.append, prune_metrics_history=lambda *a: None,
                           record_broker_offset=lambda *a: None)
    rollup = MinuteRollup(repo, "1", on_day_closed=closed.append, offset_of=lambda: 7200)
    metrics = BotMetrics(ACCOUNT)
    instrumentation = Instrumentation(metrics, history_sink=rollup)
    moment = datetime(2026, 3, 27, 18, 0, tzinfo=UTC)  # broker midnight at GMT+2 is 22:00 UTC
    for hour in range(6):
        instrumentation.cycle_finished(CycleReport("c", hour, started_at=moment + timedelta(hours=hour)))
        assert closed == ([] if hour < 4 else [date(2026, 3, 27)])  # rolled at the cycle that crossed it


def test_bot_close_feeds_the_waiting_cycles_before_the_last_minute_row(tmp_path) -> None:
    from bench import _rig

    app = _rig.bot(f"{tmp_path}/b.db", symbols=("EURUSD",), strategies=("ma_crossover",))
    try:
        app.start_telemetry(serve=False)
        for _ in range(3):
            app.engine.run_cycle()
    finally:
        _rig.close_bot(app)
    assert app.instrumentation._ended.items == []
    with sqlite3.connect(f"{tmp_path}/b.db") as db:
        (stored,) = db.execute("SELECT sum(cycles) FROM metrics_history").fetchone()
    assert stored == 3


def test_memory_stays_bounded_when_the_history_is_fed_in_batches() -> None:
    metrics, instrumentation, gateway, sink, batches = batch_bot(day_ends=datetime(2100, 1, 1, tzinfo=UTC))
    fold_every = metrics.broker_calls.fold_every
    held = []
    for n in range(3 * fold_every // 17):
        for _ in range(17):
            gateway.call("symbol_info_tick", 0.0007)
        instrumentation.cycle_finished(CycleReport("c", n, duration_seconds=0.002))
        held.append(len(metrics.broker_calls))
    assert max(held) < fold_every + HISTORY_EVERY * 17
    instrumentation.flush_history()
    assert sum(f.broker_calls for batch in batches for f in batch) == 17 * len(held)


def _account(equity: str):
    from decimal import Decimal

    return SimpleNamespace(balance=Decimal("1000"), equity=Decimal(equity), margin_level=None)


def _cycle(n: int, keys=(), account=None, positions=None, duration=0.25) -> CycleReport:
    return CycleReport(f"c{n}", n, duration_seconds=duration, signal_keys=list(keys), account=account,
                       position_counts=positions)


BUY = ("EURUSD", "ma", "BUY")
HOLD = ("EURUSD", "ma", "HOLD")


def test_a_finished_cycle_is_seen_by_every_reader_before_the_history_is_fed() -> None:
    """cycle_finished only appends; a read of any series the cycle feeds folds it first (no history feed yet)."""
    metrics, instrumentation, gateway, sink, batches = batch_bot(day_ends=datetime(2100, 1, 1, tzinfo=UTC))
    instrumentation.cycle_finished(_cycle(0))  # the first cycle feeds the history at once (a new minute)
    instrumentation.cycle_finished(_cycle(1, [BUY, HOLD], _account("990.5"), {"EURUSD": 1}, duration=0.5))
    assert len(batches) == 1 and len(instrumentation._ended.items) == 1  # waiting, not folded
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 1
    assert value(metrics, "tradewatch_account_equity") == 990.5
    assert value(metrics, "tradewatch_cycles_total") == 2
    assert value(metrics, "tradewatch_cycle_duration_seconds_sum") == 0.75
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="ma", signal="BUY") == 1
    assert metrics.registry.get_sample_value("tradewatch_last_cycle_timestamp_seconds", {"account": ACCOUNT}) > 0
    instrumentation.cycle_finished(_cycle(2, [BUY], _account("980"), {"EURUSD": 0}))
    assert instrumentation.open_positions() == {"EURUSD": 0}  # /status folds first too
    instrumentation.flush_history()  # the history gets both waiting cycles; the metrics count nothing twice
    assert [len(b) for b in batches] == [1, 2]
    assert value(metrics, "tradewatch_cycles_total") == 3
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="ma", signal="BUY") == 2
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="ma", signal="HOLD") == 1
    assert value(metrics, "tradewatch_account_equity") == 980
    assert instrumentation._ended.items == []


def test_the_latest_account_of_a_batch_wins_and_a_cycle_without_one_keeps_it() -> None:
    metrics, instrumentation, _ = quick_bot()
    instrumentation.cycle_finished(_cycle(1, account=_account("900"), positions={"EURUSD": 2}))
    instrumentation.cycle_finished(_cycle(2, account=_account("950"), positions={"EURUSD": 3}))
    instrumentation.cycle_finished(_cycle(3))  # a cycle that read no account (a failed one)
    assert value(metrics, "tradewatch_account_equity") == 950
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 3


def test_a_scrape_on_another_thread_while_the_loop_appends_loses_and_doubles_nothing() -> None:
    metrics, instrumentation, _ = quick_bot()
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            generate_latest(metrics.registry)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for n in range(3000):
            instrumentation.cycle_finished(_cycle(n, [BUY, HOLD, HOLD], duration=0.001))
    finally:
        stop.set()
        scraper.join()
    assert value(metrics, "tradewatch_cycles_total") == 3000
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="ma", signal="HOLD") == 6000
    assert len(instrumentation._ended.items) < HISTORY_EVERY  # unscraped, the loop folds every HISTORY_EVERY


def test_a_bad_duration_is_said_once_and_the_rest_of_its_batch_is_still_counted(caplog) -> None:
    metrics, instrumentation, _ = quick_bot()
    instrumentation.cycle_finished(_cycle(1, duration=0.5))
    instrumentation.cycle_finished(_cycle(2, duration=float("nan")))
    instrumentation.cycle_finished(_cycle(3, duration=0.25))
    instrumentation.cycle_finished(_cycle(4, duration=float("inf")))
    assert value(metrics, "tradewatch_cycles_total") == 2  # read: folded, nothing raised
    assert value(metrics, "tradewatch_cycle_duration_seconds_sum") == 0.75
    assert [r.message for r in caplog.records].count(
        "cycle duration not observed in metrics: cycle duration must be finite, got nan") == 1
    assert len([r for r in caplog.records if "cycle duration not observed" in r.message]) == 1
