"""The built-in indicators give the textbook values, to the last bit (what the signals store depends on them).

`rsi` runs Wilder's recurrence on Python floats (issue 16: a fraction of the cost of numpy scalars);
these tests hold it to a plain numpy-scalar reference of the same formula on random and flat series,
and hold `rsi(..., last=n)` to the newest n values of the full series. `std` (np.std without its
wrappers) and the built-in strategies' signals are held to numpy and to the strategies as first
written (np.std, np.convolve, numpy-scalar confidences) the same way.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest

from bot.gateway.types import Bars
from bot.strategies.api import BUY, HOLD, SELL, Signal
from bot.strategies.builtin import MovingAverageCrossover, RsiMeanReversion
from bot.strategies.indicators import rsi, sma, std


def reference_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI written out step by step on numpy scalars."""
    delta = np.diff(close)
    gains, losses = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    avg_gain, avg_loss = gains[:period].mean(), losses[:period].mean()
    out = []
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
        avg_gain = (avg_gain * (period - 1) + gain) / period
        avg_loss = (avg_loss * (period - 1) + loss) / period
    out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return np.array(out)


def _series(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "walk":
        return 1.08 + np.cumsum(rng.normal(0, 2e-4, n))
    if kind == "ticks":  # prices on a grid: many equal closes, exact zeros among the changes
        return np.round(150 + np.cumsum(rng.integers(-2, 3, n)) * 0.01, 2)
    return np.linspace(1.0, 2.0, n)  # only gains: the avg_loss == 0 branch


@pytest.mark.parametrize("kind", ["walk", "ticks", "rising"])
def test_rsi_is_bit_identical_to_the_reference_and_last_is_its_tail(kind):
    rng = np.random.default_rng(16)
    for _ in range(150):
        n, period = int(rng.integers(20, 260)), int(rng.integers(2, 19))
        close = _series(rng, kind, n)
        expected = reference_rsi(close, period)
        assert rsi(close, period).tobytes() == expected.tobytes()
        for last in (1, 2, 7, len(expected), len(expected) + 5):
            assert rsi(close, period, last=last).tobytes() == expected[-last:].tobytes()
    assert kind != "rising" or (rsi(close, period) == 100.0).all()


@pytest.mark.parametrize("seed", range(5))
def test_sma_last_is_the_tail_of_the_full_series_to_the_last_bit(seed):
    rng = np.random.default_rng(seed)
    close = 1.1 + rng.normal(0, 0.002, 121).cumsum()
    for period in (1, 2, 8, 21, 50):
        full = sma(close, period)
        assert len(full) == len(close) - period + 1
        assert abs(full[0] - close[:period].mean()) < 1e-12  # the textbook value
        for last in (1, 2, 5):
            assert sma(close, period, last=last).tobytes() == full[-last:].tobytes()


def test_std_is_numpys_to_the_last_bit_and_anything_else_goes_to_numpy():
    rng = np.random.default_rng(21)
    for _ in range(400):
        n = int(rng.integers(1, 300))
        values = 1.1 + rng.normal(0, 10.0 ** int(rng.integers(-6, 2)), n).cumsum()
        assert np.float64(std(values)).tobytes() == np.std(values).tobytes()
    for other in ([1.0, 2.0, 4.0], np.arange(7), np.arange(5, dtype=np.float32), np.array([1.0, np.nan])):
        assert np.float64(std(other)).tobytes() == np.float64(np.std(other)).tobytes()


def test_rsi_of_a_series_no_longer_than_its_period_matches_the_reference():
    rng = np.random.default_rng(9)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of no changes at all (one close) is NaN
        for n in range(1, 20):
            close = 1.08 + np.cumsum(rng.normal(0, 2e-4, n))
            for period in (n - 1, n, n + 3):
                if period >= 1:
                    assert rsi(close, period).tobytes() == reference_rsi(close, period).tobytes(), (n, period)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_rsi_of_other_dtypes_and_non_finite_changes_matches_the_reference(dtype):
    rng = np.random.default_rng(5)
    for _ in range(60):
        n, period = int(rng.integers(20, 120)), int(rng.integers(2, 19))
        close = np.round(150 + np.cumsum(rng.integers(-2, 3, n)), 0).astype(dtype)
        if dtype is np.float64:  # a NaN or an inf among the changes (the guard refuses such bars; a plugin may not)
            close[int(rng.integers(0, n))] = (np.nan, np.inf, -np.inf)[int(rng.integers(0, 3))]
        with np.errstate(invalid="ignore"):  # inf - inf, NaN / NaN in the reference's numpy scalars
            expected = reference_rsi(close, period)
            for last in (None, 2):
                got = rsi(close, period, last=last)
                assert got.tobytes() == (expected if last is None else expected[-last:]).tobytes()


def reference_signal(name: str, close: np.ndarray, params: dict) -> Signal:
    """The built-in strategies' decision written out on numpy as it was first shipped."""
    if name == "ma_crossover":
        fast, slow = params["fast"], params["slow"]
        if len(close) < slow + 2:
            return Signal(HOLD, 0.0, "not enough bars")
        f = np.convolve(close, np.ones(fast) / fast, mode="valid")[-2:]
        s = np.convolve(close, np.ones(slow) / slow, mode="valid")[-2:]
        before, now = f[0] - s[0], f[1] - s[1]
        confidence = round(min(1.0, 0.5 + float(abs(now) / max(np.std(close[-slow:]), 1e-12)) / 2), 4)
        if before <= 0 < now:
            return Signal(BUY, confidence, f"SMA{fast} crossed above SMA{slow}")
        if before >= 0 > now:
            return Signal(SELL, confidence, f"SMA{fast} crossed below SMA{slow}")
        return Signal(HOLD, 0.0, "no crossover")
    period, low, high = params["period"], params["oversold"], params["overbought"]
    if len(close) < period + 3:
        return Signal(HOLD, 0.0, "not enough bars")
    values = reference_rsi(close, period)
    before, now = values[-2], values[-1]
    if before < low <= now:
        return Signal(BUY, round(min(1.0, 0.5 + (low - before) / 60), 4), f"RSI back above {low:g} ({now:.1f})")
    if before > high >= now:
        return Signal(SELL, round(min(1.0, 0.5 + (before - high) / 60), 4), f"RSI back below {high:g} ({now:.1f})")
    return Signal(HOLD, 0.0, f"RSI {now:.1f}")


def test_builtin_strategies_give_the_reference_signals_confidences_and_reasons():
    rng = np.random.default_rng(16)
    actions = Counter()
    for i in range(700):
        n = int(rng.integers(5, 160))
        close = _series(rng, ("walk", "ticks", "rising")[i % 3], n) if i % 4 else 100 + np.sin(
            np.arange(n) / rng.uniform(1, 9)) * rng.uniform(0.01, 10)
        bars = Bars(symbol="X", time=np.arange(n), open=close, high=close, low=close, close=close)
        fast = int(rng.integers(2, 12))
        strategies = (MovingAverageCrossover(fast=fast, slow=int(rng.integers(fast + 1, 40))),
                      RsiMeanReversion(period=int(rng.integers(2, 25)), oversold=float(rng.integers(5, 50)),
                                       overbought=float(rng.integers(51, 95))),
                      MovingAverageCrossover(), RsiMeanReversion())
        for strategy in strategies:
            got, expected = strategy.evaluate(bars), reference_signal(strategy.name, close, strategy.parameters())
            assert (got.action, got.reason, type(got.confidence)) == (expected.action, expected.reason,
                                                                      type(expected.confidence))
            assert np.float64(got.confidence).tobytes() == np.float64(expected.confidence).tobytes()
            actions[strategy.name, got.action] += 1
    assert min(actions.values()) >= 10 and len(actions) == 6, actions  # every branch of both strategies ran
