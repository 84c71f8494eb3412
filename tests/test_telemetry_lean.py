"""bot.telemetry.lean: the loop's lean counters and histograms expose what prometheus_client's would.

The same observations go to a prometheus_client metric and to its lean twin on two registries;
both exposition formats (Prometheus text and OpenMetrics, where exemplars show) must be identical
line for line, the `_created` timestamps (two clocks read) and exemplar timestamps masked.
"""

from __future__ import annotations

import math
import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from bot.telemetry.lean import LeanCounter, LeanHistogram
from bot.telemetry.metrics import BROKER_BUCKETS

_CREATED = re.compile(rb"(_created\{[^}]*\}) \S+")
_EXEMPLAR_TIME = re.compile(rb"(# \{[^}]*\} \S+) \S+$", re.M)


def _masked(text: bytes) -> bytes:
    return _EXEMPLAR_TIME.sub(rb"\1 T", _CREATED.sub(rb"\1 T", text))


def _both(feed) -> tuple[CollectorRegistry, CollectorRegistry]:
    stock, lean = CollectorRegistry(), CollectorRegistry()
    feed(stock, Counter, lambda *a, **k: Histogram(*a, **k))
    feed(lean, LeanCounter, LeanHistogram)
    return stock, lean


def _feed(registry, counter, histogram) -> None:
    calls = histogram("tradewatch_broker_request_duration_seconds", "Latency.", ["account", "call"],
                      registry=registry, buckets=BROKER_BUCKETS)
    for seconds in (0.0001, 0.0005, 0.0007, 0.003, 0.003, 0.2, 11.0, 0.0):  # edges: on a bound, past the last
        calls.labels("7", "symbol_info_tick").observe(seconds)
    calls.labels("7", "order_send").observe(0.004, {"correlation_id": "65a1b2c3d4e5f607"})
    calls.labels("7", "order_send").observe(0.02)
    calls.labels("7", "positions_get")  # a series that exists before its first observation
    signals = counter("tradewatch_signals_total", "Signals.", ["account", "symbol", "strategy", "signal"],
                      registry=registry)
    for action in ("HOLD", "HOLD", "BUY"):
        signals.labels("7", "EURUSD", "sma", action).inc()
    signals.labels("7", "GBPUSD", "sma", "SELL").inc(2.5)
    signals.labels("7", "USDJPY", "sma", "HOLD")


def test_the_exposition_is_the_same_as_prometheus_clients() -> None:
    stock, lean = _both(_feed)
    for render in (generate_latest, generate_openmetrics):
        expected = _masked(render(stock))
        assert _masked(render(lean)) == expected
        assert b"_created" in expected and b"correlation_id" in expected or render is generate_latest


def test_nan_goes_to_the_sum_only_like_prometheus_client() -> None:
    def feed(registry, _counter, histogram):
        histogram("h_seconds", "h", ["a"], registry=registry, buckets=(1.0, 2.0)).labels("x").observe(math.nan)
    stock, lean = _both(feed)
    assert _masked(generate_latest(lean)) == _masked(generate_latest(stock))


def test_bad_input_is_refused_as_prometheus_client_does() -> None:
    registry = CollectorRegistry()
    counter = LeanCounter("c_total", "c", ["a"], registry=registry)
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("x").inc(-1)
    with pytest.raises(ValueError, match="label values"):
        counter.labels("x", "y")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("c", "again", ["a"], registry=registry)  # the names are registered like a Counter's
    with pytest.raises(ValueError, match="sorted"):
        LeanHistogram("h", "h", ["a"], buckets=(2.0, 1.0))
    with pytest.raises(ValueError, match="exceeding"):
        LeanHistogram("h", "h", ["a"], buckets=(1.0,)).labels("x").observe(0.5, {"id": "x" * 200})


def test_no_update_is_lost_between_threads() -> None:
    histogram = LeanHistogram("h", "h", ["a"], buckets=(1.0,))
    counter = LeanCounter("c", "c", ["a"])
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(5000):
            histogram.labels("x").observe(0.5)
            counter.labels("x").inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts, _exemplars, total = histogram.labels("x").snapshot()
    assert counts == [20000.0, 0.0] and total == 10000.0 and counter.labels("x").get() == 20000.0
