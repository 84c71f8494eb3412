"""Indicators the built-in strategies use; plain numpy so user strategies can use them too."""

from __future__ import annotations

import numpy as np


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
