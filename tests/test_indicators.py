"""The built-in indicators give the textbook values, to the last bit (what the signals store depends on them).

`rsi` runs Wilder's recurrence on Python floats (issue 16: a fraction of the cost of numpy scalars);
these tests hold it to a plain numpy-scalar reference of the same formula on random and flat series,
and hold `rsi(..., last=n)` to the newest n values of the full series.
"""

from __future__ import annotations

import numpy as np
import pytest

from bot.strategies.indicators import rsi, sma


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
