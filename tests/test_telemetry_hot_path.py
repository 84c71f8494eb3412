"""The loop's telemetry shortcuts (issue 16) lose nothing: what they skip or defer still shows on /metrics
(and in the minute history: its broker day kept while the offset holds, the same as computed each cycle).

Gauges set every cycle are set only when their value changed; a successful broker call goes
straight to its histogram child; the last-cycle gauge is read at scrape time. Each test drives the
shortcut through the same values twice and then a change, and reads the registry.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from bot.engine import CycleReport
from bot.gateway import ConnectionLost
from bot.history import MinuteRollup
from bot.instrumentation import Instrumentation
from bot.telemetry.broker_safety_metrics import BrokerSafetyMetrics
from bot.telemetry.context import correlation_context
from bot.telemetry.metrics import BotMetrics
from db.brokerday import BrokerDay

ACCOUNT = "42"


def value(metrics: BotMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


def test_account_gauges_follow_every_change_after_repeats() -> None:
    metrics = BotMetrics(ACCOUNT)
    for _ in range(2):
        metrics.set_account(Decimal("1000"), Decimal("990.5"), Decimal("250"))
    assert (value(metrics, "tradewatch_account_equity"), value(metrics, "tradewatch_account_margin_level_ratio")) \
        == (990.5, 2.5)
    metrics.set_account(Decimal("1000"), Decimal("991"), None)
    assert value(metrics, "tradewatch_account_equity") == 991
    assert math.isnan(value(metrics, "tradewatch_account_margin_level_ratio"))
    metrics.set_account(Decimal("1000"), Decimal("990.5"), Decimal("250"))  # back to the first figures
    assert value(metrics, "tradewatch_account_equity") == 990.5


def test_positions_repeat_then_change_in_the_callers_own_dict() -> None:
    metrics = BotMetrics(ACCOUNT)
    counts = {"EURUSD": 1}
    metrics.set_positions(counts)
    counts["EURUSD"] = 2  # the same dict object, changed: must not look unchanged
    metrics.set_positions(counts)
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 2
    metrics.set_positions({"EURUSD": 2})
    metrics.set_positions({})
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 0


def test_preflight_gauge_flips_both_ways_after_repeats() -> None:
    registry = CollectorRegistry()
    safety = BrokerSafetyMetrics(registry, ACCOUNT)
    seen = []
    for ok in (True, True, False, False, True):
        safety.set_check("algo_trading", ok)
        seen.append(registry.get_sample_value("tradewatch_preflight_ok", {"account": ACCOUNT, "check": "algo_trading"}))
    assert seen == [1, 1, 0, 0, 1]


def test_last_cycle_gauge_is_read_at_scrape_time() -> None:
    metrics = BotMetrics(ACCOUNT)
    assert value(metrics, "tradewatch_last_cycle_timestamp_seconds") == 0
    metrics.observe_cycle(0.01, 1_767_607_200.25)
    metrics.observe_cycle(0.02, 1_767_607_201.5)
    assert value(metrics, "tradewatch_last_cycle_timestamp_seconds") == 1_767_607_201.5
    assert value(metrics, "tradewatch_cycles_total") == 2
    assert value(metrics, "tradewatch_cycle_duration_seconds_sum") == 0.03


def test_broker_calls_through_the_observer_count_latency_errors_and_connection() -> None:
    metrics = BotMetrics(ACCOUNT)
    instrumentation = Instrumentation(metrics)
    for _ in range(3):
        instrumentation.on_broker_call("symbol_info_tick", 0.0007, None)
    with correlation_context("65a1b2c3d4e5f607"):
        instrumentation.on_broker_call("order_send", 0.03, None)
    assert value(metrics, "tradewatch_broker_request_duration_seconds_bucket", call="symbol_info_tick", le="0.001") == 3
    assert value(metrics, "tradewatch_broker_connected") == 1
    exemplar = next(s.exemplar for family in metrics.registry.collect() for s in family.samples
                    if s.name == "tradewatch_broker_request_duration_seconds_bucket" and s.labels["call"] == "order_send"
                    and s.exemplar is not None)
    assert exemplar.labels == {"correlation_id": "65a1b2c3d4e5f607"} and exemplar.value == 0.03
    instrumentation.on_broker_call("symbol_info_tick", 0.5, ConnectionLost("gone"))
    assert value(metrics, "tradewatch_broker_connected") == 0
    assert value(metrics, "tradewatch_broker_errors_total", call="symbol_info_tick", kind="connection_lost") == 1
    assert value(metrics, "tradewatch_broker_request_duration_seconds_count", call="symbol_info_tick") == 4
    instrumentation.on_broker_call("symbol_info_tick", 0.0007, None)  # back: connected again
    assert value(metrics, "tradewatch_broker_connected") == 1


def test_signals_and_cycle_figures_reach_metrics_and_the_minute_history() -> None:
    metrics = BotMetrics(ACCOUNT)
    added = []
    instrumentation = Instrumentation(metrics, history_sink=SimpleNamespace(add=added.append))
    instrumentation.on_broker_call("symbol_info_tick", 0.25, None)
    instrumentation.cycle_finished(CycleReport("c1", 1, duration_seconds=0.5, signals=Counter(HOLD=2),
                                               orders=Counter(filled=1, rejected=1),
                                               signal_keys=[("EURUSD", "sma", "HOLD")] * 2))
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="sma", signal="HOLD") == 2
    (figures,) = added
    assert (figures.duration_seconds, figures.signals, figures.orders, figures.trades_executed, figures.broker_calls,
            figures.broker_latency_seconds, figures.ok) == (0.5, 2, 2, 1, 1, 0.25, True)
    instrumentation.cycle_finished(CycleReport("c2", 2, duration_seconds=0.1, error="boom"))
    assert (added[1].broker_calls, added[1].orders, added[1].ok) == (0, 0, False)  # per cycle, reset


def test_minute_history_keeps_its_broker_day_exactly_as_computing_it_every_cycle() -> None:
    offsets = {"now": 7200}
    runs = {}
    for kind in ("day_of", "offset_of"):
        closed, recorded = [], []
        repo = SimpleNamespace(record_metrics_minute=lambda minute: None, prune_metrics_history=lambda *a: None,
                               record_broker_offset=lambda account, since, offset, recorded=recorded:
                               recorded.append((since, offset)))
        rollup = MinuteRollup(repo, "1", on_day_closed=closed.append,
                              **({"day_of": lambda moment: BrokerDay.of(moment, offsets["now"])} if kind == "day_of"
                                 else {"offset_of": lambda: offsets["now"]}))
        offsets["now"] = 7200
        moment = datetime(2026, 3, 27, 20, 0, tzinfo=UTC)
        for step in range(200):  # 20 min steps over ~2.8 days; the offset moves to GMT+3 on the way, then back
            if step == 90:
                offsets["now"] = 10800
            if step == 170:
                offsets["now"] = 7200
            rollup.add(SimpleNamespace(finished_at=1_700_000_000.0 + step, duration_seconds=0.1, signals=0, orders=0,
                                       trades_executed=0, broker_latency_seconds=0.0, broker_calls=0,
                                       memory_rss_bytes=0, cpu_percent=0.0, broker_time=moment))
            moment += timedelta(minutes=20)
        runs[kind] = (closed, recorded)
    assert runs["offset_of"] == runs["day_of"]
    closed, recorded = runs["offset_of"]
    assert len(closed) == 3 and [offset for _, offset in recorded] == [7200, 10800, 7200]


def test_a_failed_offset_write_is_retried_next_cycle_inside_the_same_day() -> None:
    """The per-cycle shortcut (nothing to do while the day and offset hold) starts only once the
    offset is stored: a store failure is retried on the next cycle, not at the next day."""
    attempts = []

    def record_broker_offset(account, since, offset):
        attempts.append(offset)
        if len(attempts) == 1:
            raise OSError("database away")

    repo = SimpleNamespace(record_metrics_minute=lambda minute: None, prune_metrics_history=lambda *a: None,
                           record_broker_offset=record_broker_offset)
    offset = {"now": 7200}
    rollup = MinuteRollup(repo, "1", offset_of=lambda: offset["now"])
    moment = datetime(2026, 3, 27, 10, 0, tzinfo=UTC)
    for step in range(4):
        rollup.add(SimpleNamespace(finished_at=1_700_000_000.0 + step, duration_seconds=0.1, signals=0, orders=0,
                                   trades_executed=0, broker_latency_seconds=0.0, broker_calls=0, memory_rss_bytes=0,
                                   cpu_percent=0.0, broker_time=moment + timedelta(minutes=step)))
    assert attempts == [7200, 7200]  # failed, retried once, then settled
    offset["now"] = 10800  # a new offset inside the same day is stored at once
    rollup.add(SimpleNamespace(finished_at=1_700_000_010.0, duration_seconds=0.1, signals=0, orders=0,
                               trades_executed=0, broker_latency_seconds=0.0, broker_calls=0, memory_rss_bytes=0,
                               cpu_percent=0.0, broker_time=moment + timedelta(minutes=10)))
    assert attempts == [7200, 7200, 10800]


def test_the_reports_account_and_positions_reach_metrics_only_when_the_cycle_read_them() -> None:
    from bot.gateway import AccountState

    metrics = BotMetrics(ACCOUNT)
    instrumentation = Instrumentation(metrics)
    state = AccountState(login=42, currency="USD", balance=Decimal("1000.00"), equity=Decimal("990.50"),
                         profit=Decimal(0), margin=Decimal(0), free_margin=Decimal("990.50"), margin_level=None,
                         leverage=100)
    instrumentation.cycle_finished(CycleReport("c1", 1, account=state, position_counts={"EURUSD": 2, "GBPUSD": 0}))
    assert value(metrics, "tradewatch_account_equity") == 990.5
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 2
    # A cycle that failed before its snapshot (no account read): the last figures stay.
    instrumentation.cycle_finished(CycleReport("c2", 2, error="boom"))
    assert value(metrics, "tradewatch_account_equity") == 990.5
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 2
    instrumentation.cycle_finished(CycleReport("c3", 3, account=state, position_counts={"EURUSD": 0, "GBPUSD": 1}))
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 0
    assert value(metrics, "tradewatch_open_positions", symbol="GBPUSD") == 1


def test_a_signal_with_a_label_metrics_refuse_is_said_once_and_the_others_are_counted(caplog) -> None:
    metrics = BotMetrics(ACCOUNT)
    instrumentation = Instrumentation(metrics)
    keys = [("EURUSD", "sma", "HOLD"), ("", "sma", "BUY"), ("EURUSD", "sma", "BUY")]
    with caplog.at_level("WARNING", logger="bot.instrumentation"):
        instrumentation.cycle_finished(CycleReport("c1", 1, signal_keys=keys))
        instrumentation.cycle_finished(CycleReport("c2", 2, signal_keys=keys))
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="sma", signal="HOLD") == 2
    assert value(metrics, "tradewatch_signals_total", symbol="EURUSD", strategy="sma", signal="BUY") == 2
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert len(caplog.records) == 1 and "not counted" in caplog.records[0].getMessage()
