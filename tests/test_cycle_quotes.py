"""A cycle reads each symbol's tick once: the quote the broker time came from serves that symbol's
strategies too, unless an order left the process in between (bot.engine.engine `_now_quote`)."""

from __future__ import annotations

from collections import Counter

from bot.app import BotApp
from bot.config import Settings
from mt5bridge.sim import SimTerminal

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")


def _app(tmp_path) -> tuple[BotApp, Counter]:
    sim = SimTerminal(seed=7, stepped=True)
    ticks: Counter = Counter()
    read = sim.symbol_info_tick

    def symbol_info_tick(symbol):
        ticks[symbol] += 1
        return read(symbol)

    sim.symbol_info_tick = symbol_info_tick
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/q.db", "SYMBOLS": ",".join(SYMBOLS), "TIMEFRAME": "M1",
           "CYCLE_SECONDS": "60", "LOG_LEVEL": "WARNING"}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=sim, stepped=True)
    app.connect()
    return app, ticks


def _cycle(app, ticks):
    ticks.clear()
    report = app.engine.run_cycle()
    app.pacer.wait()
    assert report.error is None, report.error
    return report


def test_each_symbol_is_quoted_once_a_cycle(tmp_path):
    app, ticks = _app(tmp_path)
    try:
        for _ in range(5):  # start-up, warm-up and the first bars
            _cycle(app, ticks)
        quiet = 0
        for _ in range(120):
            report = _cycle(app, ticks)
            if report.signals and not report.orders and not report.replayed:
                quiet += 1
                # one read per symbol: the broker time's quote is also the first symbol's loop quote
                assert dict(ticks) == dict.fromkeys(SYMBOLS, 1), dict(ticks)
        assert quiet >= 100
    finally:
        app.close()


def test_after_an_order_left_before_the_loop_the_first_symbol_is_quoted_again(tmp_path, monkeypatch):
    """A replayed order (sent before the loop) moves the market the broker time's quote saw."""
    app, ticks = _app(tmp_path)
    try:
        for _ in range(5):
            _cycle(app, ticks)
        monkeypatch.setattr(app.engine, "_replay", lambda now, report: (1, 0))  # "one order replayed"
        checked = 0
        for _ in range(12):
            report = _cycle(app, ticks)
            assert report.replayed == 1 and report.signals
            if report.orders:
                continue  # an order of the loop's own adds reads of its symbol
            checked += 1
            # the cycle's start, the loop (again: an order left since), the end snapshot's time (read
            # after sends); without the re-read the loop would have used the start's quote: 2
            assert ticks[SYMBOLS[0]] == 3 and all(ticks[s] == 1 for s in SYMBOLS[1:]), dict(ticks)
        assert checked >= 6
    finally:
        app.close()
