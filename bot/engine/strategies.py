"""Strategies: bars in, one BUY/SELL/HOLD signal out, with a confidence and a reason.

A strategy is a pure function of the closed bars it is given, so it can be tested on arrays and
replayed. Register new ones with `@register`; `STRATEGIES` picks them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..gateway.types import Bars

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"


@dataclass(frozen=True)
class Signal:
    action: str
    confidence: float
    reason: str


class Strategy:
    name = "base"

    def evaluate(self, bars: Bars) -> Signal:
        raise NotImplementedError


REGISTRY: dict[str, Callable[[], Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    REGISTRY[cls.name] = cls
    return cls


def load_strategies(names: tuple[str, ...]) -> list[Strategy]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; known: {', '.join(sorted(REGISTRY))}")
    return [REGISTRY[n]() for n in names]


def sma(values: np.ndarray, period: int) -> np.ndarray:
    kernel = np.ones(period) / period
    return np.convolve(values, kernel, mode="valid")


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI; one value per bar from index `period` on."""
    delta = np.diff(close)
    gains = np.clip(delta, 0, None)
    losses = np.clip(-delta, 0, None)
    avg_gain = gains[:period].mean()
    avg_loss = losses[:period].mean()
    out = []
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return np.array(out)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> float:
    """Average true range over the last `period` bars (simple mean)."""
    prev_close = close[:-1]
    true_range = np.maximum(high[1:] - low[1:], np.maximum(abs(high[1:] - prev_close), abs(low[1:] - prev_close)))
    return float(true_range[-period:].mean())


@register
class MovingAverageCrossover(Strategy):
    """Trend following: buy when the fast mean crosses above the slow one, sell on the cross below."""

    name = "ma_crossover"

    def __init__(self, fast: int = 8, slow: int = 21):
        self.fast, self.slow = fast, slow

    def evaluate(self, bars: Bars) -> Signal:
        close = bars.close
        if len(close) < self.slow + 2:
            return Signal(HOLD, 0.0, "not enough bars")
        fast = sma(close, self.fast)[-2:]
        slow = sma(close, self.slow)[-2:]
        before, now = fast[0] - slow[0], fast[1] - slow[1]
        spread = float(abs(now) / max(np.std(close[-self.slow :]), 1e-12))
        confidence = round(min(1.0, 0.5 + spread / 2), 4)
        if before <= 0 < now:
            return Signal(BUY, confidence, f"SMA{self.fast} crossed above SMA{self.slow}")
        if before >= 0 > now:
            return Signal(SELL, confidence, f"SMA{self.fast} crossed below SMA{self.slow}")
        return Signal(HOLD, 0.0, "no crossover")


@register
class RsiMeanReversion(Strategy):
    """Mean reversion: buy when RSI climbs back above the oversold line, sell when it falls below overbought."""

    name = "rsi_reversion"

    def __init__(self, period: int = 14, oversold: float = 30.0, overbought: float = 70.0):
        self.period, self.oversold, self.overbought = period, oversold, overbought

    def evaluate(self, bars: Bars) -> Signal:
        close = bars.close
        if len(close) < self.period + 3:
            return Signal(HOLD, 0.0, "not enough bars")
        values = rsi(close, self.period)
        before, now = values[-2], values[-1]
        if before < self.oversold <= now:
            return Signal(BUY, round(min(1.0, 0.5 + (self.oversold - before) / 60), 4), f"RSI back above {self.oversold:g} ({now:.1f})")
        if before > self.overbought >= now:
            return Signal(SELL, round(min(1.0, 0.5 + (before - self.overbought) / 60), 4), f"RSI back below {self.overbought:g} ({now:.1f})")
        return Signal(HOLD, 0.0, f"RSI {now:.1f}")
