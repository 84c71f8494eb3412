"""The bar window (bot/engine/barwindow.py): the same closed bars as a full read, for a fraction of the bars.

A stepped simulated terminal sits behind `History`, which can hide a bar from the broker's
history or rewrite one; the gateway is the real one (guard, broker clock). Every step compares
the window with a full read of the same bars, over reconnects, gaps, a missing bar and a rewrite.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bot.app import BotApp
from bot.config import Settings
from bot.engine.barwindow import OVERLAP, BarWindows
from bot.gateway.errors import BadBrokerData
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

COUNT = 120
M1 = mt5.TIMEFRAME_M1


class History:
    """The simulated terminal, with bars hidden from (or rewritten in) its history; counts bars served."""

    def __init__(self, sim: SimTerminal):
        self._sim = sim
        self.hidden: set[int] = set()  # bar open times (server seconds) the broker does not have
        self.rewritten: dict[int, float] = {}  # bar open time -> a close added to the bar
        self.nan_close: int | None = None  # bars back from the newest whose close is NaN
        self.closed_from: int | None = None  # no bar opens from this time on (a quiet or closed market)
        self.served = 0

    def __getattr__(self, name):
        return getattr(self._sim, name)

    def copy_rates_from_pos(self, symbol, timeframe, start, count):
        extra = len(self.hidden)
        if self.closed_from is not None:
            forming = int(self._sim.copy_rates_from_pos(symbol, timeframe, 0, 1)["time"][-1])
            extra += max(0, (forming - self.closed_from) // 60 + 1)
        rates = self._sim.copy_rates_from_pos(symbol, timeframe, start, count + extra)
        if rates is None:
            return None
        kept = ~np.isin(rates["time"], list(self.hidden))
        if self.closed_from is not None:
            kept &= rates["time"] < self.closed_from
        rates = rates[kept][-count:].copy()
        for moment, delta in self.rewritten.items():
            hit = rates["time"] == moment
            rates["close"][hit] += delta
            rates["high"][hit] = np.maximum(rates["high"][hit], rates["close"][hit])
        if self.nan_close is not None and len(rates) > self.nan_close:
            rates["close"][-1 - self.nan_close] = np.nan
        self.served += len(rates)
        return rates


@pytest.fixture
def world():
    sim = SimTerminal(seed=11, stepped=True)
    history = History(sim)
    gateway = Mt5ApiGateway(lambda: Mt5Module(history), name="sim")
    gateway.connect()
    return sim, history, gateway


def full_read(gateway, symbol):
    bars = gateway.bars(symbol, M1, COUNT + 1)
    return [getattr(bars, name)[:-1] for name in ("time", "open", "high", "low", "close")]


def assert_same(window_bars, full):
    got = [window_bars.time, window_bars.open, window_bars.high, window_bars.low, window_bars.close]
    for mine, theirs in zip(got, full, strict=True):
        assert np.array_equal(mine, theirs)


def test_the_window_gives_a_full_reads_bars_over_a_long_run(world):
    """Every step: the window's bars are the full read's. A change to bars the window already holds
    (a rewrite, a deleted bar) can only be seen at its next read: until then the window keeps what
    the broker said before, so those steps are compared once the window read again."""
    sim, history, gateway = world
    windows = BarWindows()
    rng = random.Random(5)
    symbols = ("EURUSD", "GBPUSD")
    events = {120: "reconnect", 200: "gap", 260: "hide", 264: "unhide", 330: "rewrite", 334: "unrewrite",
              380: "delete", 384: "undelete", 400: "long_gap", 470: "reconnect"}  # changes inside the overlap
    served_by_window, compared, changed = 0, 0, set()
    steps = 560
    for step in range(steps):
        event = events.get(step)
        if event == "reconnect":
            gateway.reconnect()
        sim.advance({"gap": 15 * 60, "long_gap": 5 * 3600}.get(event, rng.choice((10, 20, 30, 45, 60, 90))))
        forming = int(sim.copy_rates_from_pos("EURUSD", M1, 0, 1)["time"][-1])  # server time
        if event == "hide":
            history.hidden.add(forming + 60)  # the next minute has no bar (no tick, or lost) ...
        elif event == "unhide":
            history.hidden.clear()  # ... and turns up later: the bars no longer join the window
        elif event == "rewrite":
            history.rewritten[forming - 60 * 4] = 0.0005  # a recent bar rewritten, inside the overlap
        elif event == "delete":
            history.hidden.add(forming - 60 * 2)  # a bar the window holds drops out of the history
        elif event in ("unrewrite", "undelete"):
            history.rewritten.clear()
            history.hidden.clear()
        if event in ("unhide", "rewrite", "unrewrite", "delete", "undelete"):
            changed = set(symbols)
        gateway.quote("EURUSD")  # the engine reads the broker's time first, every cycle
        for symbol in symbols:
            before, reads = history.served, windows.stats["reads"]
            mine = windows.closed(gateway, symbol, M1, COUNT)
            served_by_window += history.served - before
            assert len(mine) == COUNT
            if symbol in changed and windows.stats["reads"] == reads:
                continue  # held bars changed at the broker, no read yet: compared after the next one
            changed.discard(symbol)
            assert_same(mine, full_read(gateway, symbol))
            compared += 1
    stats = windows.stats
    assert compared > 0.9 * steps * len(symbols)
    assert stats["full_first"] == 2 and stats["full_reconnect"] == 4
    # gaps: the 5 h pause (more bars than the window), the rewrite and its undoing, the delete and its
    # undoing, the hidden bar turning up (if it was due by then); the 15 min pause is topped up
    assert 5 * len(symbols) <= stats["full_gap"] <= 6 * len(symbols)
    assert stats["skipped"] > steps // 4  # cycles inside a forming bar fetch nothing
    # bars served to the window per symbol and step: a few, against the 121 of a full read
    assert served_by_window / (steps * len(symbols)) < 12


def test_a_rewrite_deeper_than_the_overlap_lasts_at_most_one_window(world):
    """The limit of reading only the newest bars: a change further back than the overlap is seen at
    the window's periodic full read, after `capacity` new bars, not before."""
    sim, history, gateway = world
    windows = BarWindows()
    sim.advance(3600)
    gateway.quote("EURUSD")
    windows.closed(gateway, "EURUSD", M1, COUNT)
    newest = int(gateway.bars("EURUSD", M1, COUNT + 1).time[-2]) + (gateway.clock.offset or 0)
    history.rewritten[newest - 60 * (OVERLAP + 2)] = 0.0005  # just past what an incremental read fetches
    differed = 0
    for _ in range(COUNT + 1):
        sim.advance(60)
        gateway.quote("EURUSD")
        mine = windows.closed(gateway, "EURUSD", M1, COUNT)
        differed += not np.array_equal(mine.close, full_read(gateway, "EURUSD")[4])
    assert windows.stats["full_refresh"] == 1 and windows.stats["full_gap"] == 0
    assert 0 < differed <= COUNT
    assert_same(mine, full_read(gateway, "EURUSD"))


def test_a_quiet_market_costs_a_small_read_a_cycle_not_a_full_one(world):
    """No bar for hours (no tick, a closed session) while the clock runs: each cycle after the last
    bar's end reads the newest few bars, finds nothing new, and never falls back to a full read."""
    sim, history, gateway = world
    windows = BarWindows()
    sim.advance(600)
    gateway.quote("EURUSD")
    windows.closed(gateway, "GBPUSD", M1, COUNT)
    history.closed_from = int(sim.copy_rates_from_pos("GBPUSD", M1, 0, 1)["time"][-1]) + 60
    before = history.served
    cycles = 3 * 3600 // 30
    for _ in range(cycles):
        sim.advance(30)
        gateway.quote("EURUSD")  # the clock runs on with another symbol's quotes
        mine = windows.closed(gateway, "GBPUSD", M1, COUNT)
        assert_same(mine, full_read(gateway, "GBPUSD"))
    assert windows.stats["full_gap"] == 0 and windows.stats["full_first"] == 1
    assert (history.served - before) - cycles * (COUNT + 1) <= cycles * (OVERLAP + 3)  # full reads: the test's


def test_refused_bars_skip_the_symbol_and_leave_the_window_as_it_was(world):
    sim, history, gateway = world
    windows = BarWindows()
    sim.advance(600)
    gateway.quote("EURUSD")
    windows.closed(gateway, "EURUSD", M1, COUNT)
    sim.advance(60)
    gateway.quote("EURUSD")
    history.nan_close = OVERLAP - 1  # inside what the incremental read fetches
    with pytest.raises(BadBrokerData) as refused:
        windows.closed(gateway, "EURUSD", M1, COUNT)
    assert refused.value.reason == "not_finite"
    history.nan_close = None
    assert_same(windows.closed(gateway, "EURUSD", M1, COUNT), full_read(gateway, "EURUSD"))
    assert windows.stats["incremental"] == 1 and windows.stats["full_gap"] == 0  # the refused read changed nothing


def test_fewer_bars_asked_come_from_the_window_and_more_read_in_full(world):
    sim, history, gateway = world
    windows = BarWindows()
    sim.advance(600)
    gateway.quote("EURUSD")
    windows.closed(gateway, "EURUSD", M1, COUNT)
    short = windows.closed(gateway, "EURUSD", M1, 30)
    assert len(short) == 30 and windows.stats["reads"] == 1
    assert np.array_equal(short.close, full_read(gateway, "EURUSD")[4][-30:])
    short.close[:] = 0.0  # a strategy scribbling on its bars does not reach the window
    assert windows.closed(gateway, "EURUSD", M1, COUNT).close.min() > 0
    longer = windows.closed(gateway, "EURUSD", M1, 200)
    assert len(longer) == 200 and windows.stats["full_longer"] == 1


def _bot(tmp_path, sim):
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/bars.db", "SYMBOLS": "EURUSD,GBPUSD",
                                  "TIMEFRAME": "M1", "CYCLE_SECONDS": "20", "METRICS_PORT": "0",
                                  "LOG_LEVEL": "WARNING"}, dotenv_path=None)
    return BotApp(settings, sim=sim, stepped=True)


def test_strategies_are_asked_only_when_their_bar_closed_and_few_bars_are_fetched(tmp_path):
    history = History(SimTerminal(seed=3, stepped=True))
    app = _bot(tmp_path, history)
    app.connect()
    try:
        asked: list[tuple[str, int]] = []
        runner = app.engine.runner
        evaluate = runner.evaluate

        def counting(strategy, bars):
            asked.append((bars.symbol, int(bars.time[-1])))
            return evaluate(strategy, bars)

        runner.evaluate = counting
        per_cycle, newest = [], {}
        for _ in range(60):
            before, asked_before = history.served, len(asked)
            report = app.engine.run_cycle()
            assert report.ok, report.error
            per_cycle.append(history.served - before)
            closed = {symbol: int(w.block.time[-1]) for (symbol, _), w in runner.windows._windows.items()}
            new_bar = {s for s, t in closed.items() if newest.get(s) != t}
            newest = closed
            asked_now = {symbol for symbol, _ in asked[asked_before:]}
            assert asked_now == new_bar  # asked on a closed bar, and only then
            app.pacer.wait()
        assert asked
        strategies = len(runner.strategies)
        assert len(asked) <= strategies * 2 * (60 * 20 // 60 + 2)
        steady = per_cycle[5:]
        assert steady.count(0) >= len(steady) // 2  # 20 s cycles on M1: most have no new bar, fetch no bar
        assert max(steady) <= 2 * (OVERLAP + 3)  # at most a small read per symbol
    finally:
        app.close()
