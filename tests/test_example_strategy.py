"""The example user strategy (examples/strategies/breakout.py), loaded as the bot loads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.gateway import Bars
from bot.strategies import BUY, HOLD, SELL, StrategyConfigError, load_configured

FOLDER = Path(__file__).resolve().parents[1] / "examples" / "strategies"


def _bars(close: list[float]) -> Bars:
    c = np.array(close, dtype=float)
    return Bars("EURUSD", np.arange(len(c)), c, c + 0.001, c - 0.001, c)


def _breakout(**params):
    import json

    (strategy,) = load_configured(("breakout",), strategy_path=str(FOLDER),
                                  params_json=json.dumps({"breakout": params}) if params else "")
    return strategy


def test_breakout_signals_on_the_channel_and_holds_inside():
    strategy = _breakout(lookback=5)
    assert strategy.warmup == 6
    flat = [1.1000, 1.1002, 1.0998, 1.1001, 1.0999]
    assert strategy.evaluate(_bars([*flat, 1.1020])).action == BUY
    assert strategy.evaluate(_bars([*flat, 1.0980])).action == SELL
    assert strategy.evaluate(_bars([*flat, 1.1000])).action == HOLD
    # min_break: a break smaller than that share of the channel width is not a breakout
    assert _breakout(lookback=5, min_break=1.0).evaluate(_bars([*flat, 1.1030])).action == HOLD
    assert strategy.evaluate(_bars([*flat, 1.1030])).action == BUY


def test_breakout_parameters_are_checked():
    with pytest.raises(StrategyConfigError, match="strategy 'breakout' .*breakout.py.* parameter 'lookback': must be at least 2"):
        _breakout(lookback=1)
