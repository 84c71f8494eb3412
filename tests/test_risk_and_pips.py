"""Position sizing, stops and pips against hand-computed values."""

from decimal import Decimal

import numpy as np
import pytest

from bot.engine.risk import position_volume, stops_from_atr
from bot.engine.strategies import (
    BUY,
    HOLD,
    SELL,
    MovingAverageCrossover,
    RsiMeanReversion,
    atr,
    load_strategies,
    rsi,
)
from bot.gateway import Bars, NotExpressible, SymbolSpec
from bot.pips import pip_size, profit_in_pips


def spec(name="EURUSD", digits=5, tick_value="1", tick_size="0.00001", vmin="0.01", vmax="100", step="0.01", stops=10):
    return SymbolSpec(
        name=name, digits=digits, point=Decimal(1).scaleb(-digits), contract_size=Decimal(100000),
        tick_size=Decimal(tick_size), tick_value=Decimal(tick_value), volume_min=Decimal(vmin),
        volume_max=Decimal(vmax), volume_step=Decimal(step), stops_level=stops, currency_profit="USD",
    )


def test_pip_sizes_from_digits():
    assert pip_size("EURUSD", 5) == Decimal("0.0001")
    assert pip_size("USDJPY", 3) == Decimal("0.01")
    assert pip_size("EURUSD", 4) == Decimal("0.0001")
    assert pip_size("USDJPY", 2) == Decimal("0.01")
    assert pip_size("XAUUSD", 2) == Decimal("0.1")


def test_profit_in_pips():
    assert profit_in_pips("EURUSD", 5, "BUY", Decimal("1.10000"), Decimal("1.10125")) == Decimal("12.5")
    assert profit_in_pips("USDJPY", 3, "SELL", Decimal("150.000"), Decimal("150.250")) == Decimal("-25.0")
    assert profit_in_pips("XAUUSD", 2, "BUY", Decimal("2000.00"), Decimal("2003.50")) == Decimal("35.0")


def test_volume_from_risk():
    # 1% of 10 000 = 100 USD; 20 pips stop on EURUSD = 200 points * 1 USD per lot-point = 200 USD per lot.
    assert position_volume(spec(), Decimal(10000), Decimal(1), Decimal("0.00200")) == Decimal("0.50")
    # rounded DOWN to the step: 100 / 300 = 0.333.. -> 0.33
    assert position_volume(spec(), Decimal(10000), Decimal(1), Decimal("0.00300")) == Decimal("0.33")
    # below the minimum lot: not taken (risking more than asked is not ours to decide); capped at max
    with pytest.raises(NotExpressible) as below:
        position_volume(spec(), Decimal(10), Decimal(1), Decimal("0.01"))
    assert below.value.reason == "volume_below_min"
    assert position_volume(spec(vmax="1"), Decimal(10**7), Decimal(5), Decimal("0.0001")) == Decimal("1.00")
    with pytest.raises(ValueError):
        position_volume(spec(), Decimal(10000), Decimal(1), Decimal(0))


def test_stops_from_atr_respect_side_and_stops_level():
    s = spec()
    stops = stops_from_atr(s, "BUY", Decimal("1.10000"), Decimal("0.00100"), Decimal(2), Decimal(3))
    assert stops.sl == Decimal("1.09800") and stops.tp == Decimal("1.10300")
    stops = stops_from_atr(s, "SELL", Decimal("1.10000"), Decimal("0.00100"), Decimal(2), Decimal(3))
    assert stops.sl == Decimal("1.10200") and stops.tp == Decimal("1.09700")
    tiny = stops_from_atr(s, "BUY", Decimal("1.10000"), Decimal("0.0000001"), Decimal(1), Decimal(1))
    assert Decimal("1.10000") - tiny.sl >= s.point * s.stops_level


def _bars(close):
    close = np.asarray(close, dtype=float)
    t = np.arange(len(close), dtype=np.int64) * 60
    return Bars("EURUSD", t, close, close + 0.0002, close - 0.0002, close)


def test_ma_crossover_signals():
    strategy = MovingAverageCrossover(fast=3, slow=6)
    down_then_up = [1.2 - 0.001 * i for i in range(20)] + [1.18 + 0.004 * i for i in range(1, 4)]
    seen = [strategy.evaluate(_bars(down_then_up[: n + 1])).action for n in range(10, len(down_then_up))]
    assert BUY in seen and SELL not in seen
    up_then_down = [1.1 + 0.001 * i for i in range(20)] + [1.12 - 0.004 * i for i in range(1, 4)]
    seen = [strategy.evaluate(_bars(up_then_down[: n + 1])).action for n in range(10, len(up_then_down))]
    assert SELL in seen and BUY not in seen
    assert strategy.evaluate(_bars([1.1] * 3)).action == HOLD


def test_rsi_values_and_reversion():
    # Monotonic rise: RSI 100; falling: RSI 0
    assert rsi(np.arange(1, 30, dtype=float), 14)[-1] == 100.0
    assert rsi(np.arange(30, 1, -1, dtype=float), 14)[-1] == 0.0
    strategy = RsiMeanReversion(period=5)
    falling = [1.2 - 0.002 * i for i in range(15)]
    prices = falling + [falling[-1] + 0.003 * i for i in range(1, 4)]
    seen = [strategy.evaluate(_bars(prices[: n + 1])).action for n in range(8, len(prices))]
    assert BUY in seen


def test_atr_simple_mean_of_true_range():
    high = np.array([1.0, 1.2, 1.3])
    low = np.array([0.9, 1.0, 1.1])
    close = np.array([0.95, 1.1, 1.2])
    # TR1 = max(0.2, |1.2-0.95|, |1.0-0.95|) = 0.25; TR2 = max(0.2, 0.2, 0.0) = 0.2
    assert atr(high, low, close, 2) == pytest.approx(0.225)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        load_strategies(("ma_crossover", "nope"))


def test_stops_floor_includes_spread_and_slippage():
    s = spec(stops=10)
    stops = stops_from_atr(s, "BUY", Decimal("1.10020"), Decimal("0.0000001"), Decimal(1), Decimal(1),
                           spread=Decimal("0.00020"), slippage_points=5)
    # floor = (10 + 1 + 5) points + 20 points of spread = 36 points
    assert Decimal("1.10020") - stops.sl == Decimal("0.00036")
