"""The two strategies shipped with the bot, written against the public interface like any plugin.

Each `evaluate` runs once per symbol and closed bar, on ~20-120 bars: the values it compares are
taken out of numpy as Python floats once (the same doubles) so the comparisons and the arithmetic
on them do not pay numpy-scalar overhead; `indicators.std` is np.std to the last bit.
"""

from __future__ import annotations

import numpy as np

from ..gateway.types import Bars
from .api import BUY, HOLD, SELL, Param, Signal, Strategy
from .indicators import rsi_values, sma, std


class MovingAverageCrossover(Strategy):
    """Trend following: buy when the fast mean crosses above the slow one, sell on the cross below."""

    name = "ma_crossover"
    params = {
        "fast": Param(int, 8, 2, 500, doc="bars of the fast simple moving average"),
        "slow": Param(int, 21, 3, 2000, doc="bars of the slow simple moving average"),
    }

    def __init__(self, fast: int = 8, slow: int = 21):
        super().__init__(fast=fast, slow=slow)
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")

    @property
    def warmup(self) -> int:
        return self.slow + 2

    def evaluate(self, bars: Bars) -> Signal:
        close = bars.close
        if len(close) < self.slow + 2:
            return Signal(HOLD, 0.0, "not enough bars")
        fast_before, fast_now = sma(close, self.fast, last=2).tolist()
        slow_before, slow_now = sma(close, self.slow, last=2).tolist()
        before, now = fast_before - slow_before, fast_now - slow_now
        spread = abs(now) / max(std(close[-self.slow :]), 1e-12)
        confidence = round(min(1.0, 0.5 + spread / 2), 4)
        if before <= 0 < now:
            return Signal(BUY, confidence, f"SMA{self.fast} crossed above SMA{self.slow}")
        if before >= 0 > now:
            return Signal(SELL, confidence, f"SMA{self.fast} crossed below SMA{self.slow}")
        return Signal(HOLD, 0.0, "no crossover")


class RsiMeanReversion(Strategy):
    """Mean reversion: buy when RSI climbs back above the oversold line, sell when it falls below overbought."""

    name = "rsi_reversion"
    params = {
        "period": Param(int, 14, 2, 500, doc="RSI period in bars"),
        "oversold": Param(float, 30.0, 0, 100, doc="RSI level a rise through which buys"),
        "overbought": Param(float, 70.0, 0, 100, doc="RSI level a fall through which sells"),
    }

    def __init__(self, period: int = 14, oversold: float = 30.0, overbought: float = 70.0):
        super().__init__(period=period, oversold=oversold, overbought=overbought)
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold:g}) must be below overbought ({self.overbought:g})")

    @property
    def warmup(self) -> int:
        return self.period + 3

    def evaluate(self, bars: Bars) -> Signal:
        close = bars.close
        if len(close) < self.period + 3:
            return Signal(HOLD, 0.0, "not enough bars")
        before, now = rsi_values(close, self.period, last=2)  # the two newest values are all it reads
        if before < self.oversold <= now:
            # The confidence as it has always been computed: on a numpy float64 (numpy's own round()).
            return Signal(BUY, round(min(1.0, 0.5 + (self.oversold - np.float64(before)) / 60), 4),
                          f"RSI back above {self.oversold:g} ({now:.1f})")
        if before > self.overbought >= now:
            return Signal(SELL, round(min(1.0, 0.5 + (np.float64(before) - self.overbought) / 60), 4),
                          f"RSI back below {self.overbought:g} ({now:.1f})")
        return Signal(HOLD, 0.0, f"RSI {now:.1f}")


BUILTIN = (MovingAverageCrossover, RsiMeanReversion)
