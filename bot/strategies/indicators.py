"""Indicators the built-in strategies use; plain numpy so user strategies can use them too."""

from __future__ import annotations

import numpy as np


def sma(values: np.ndarray, period: int, last: int | None = None) -> np.ndarray:
    """Simple moving average, one value per bar from index `period - 1` on (only the newest `last` if given).

    `last`: each value is the same kernel over its own `period` bars, so convolving only the bars
    the newest `last` values cover gives those values to the last bit, without the older ones."""
    kernel = np.ones(period) / period
    if last is not None:
        values = values[-(period + last - 1):]
    return np.convolve(values, kernel, mode="valid")


def rsi(close: np.ndarray, period: int, last: int | None = None) -> np.ndarray:
    """Wilder's RSI; one value per bar from index `period` on (only the newest `last` of them if given)."""
    delta = np.diff(close)
    gains = np.clip(delta, 0, None)
    losses = np.clip(-delta, 0, None)
    # Wilder's smoothing is a recurrence (each average from the one before), so it is a loop; on
    # Python floats, not numpy scalars: the same IEEE double operations in the same order (the
    # same values to the last bit) at a fraction of the cost per bar. `last`: a strategy that reads
    # the newest values only skips turning the older averages into RSI values; the recurrence,
    # and so every value, stays the same.
    avg_gain = float(gains[:period].mean())
    avg_loss = float(losses[:period].mean())
    keep = period - 1
    gains_after, losses_after = gains[period:].tolist(), losses[period:].tolist()
    skip = 0 if last is None else max(0, len(gains_after) + 1 - last)  # steps whose value is not returned
    for gain, loss in zip(gains_after[:skip], losses_after[:skip], strict=True):
        avg_gain = (avg_gain * keep + gain) / period
        avg_loss = (avg_loss * keep + loss) / period
    out = []
    for gain, loss in zip(gains_after[skip:], losses_after[skip:], strict=True):
        out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
        avg_gain = (avg_gain * keep + gain) / period
        avg_loss = (avg_loss * keep + loss) / period
    out.append(100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return np.array(out)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> float:
    """Average true range over the last `period` bars (simple mean)."""
    prev_close = close[:-1]
    true_range = np.maximum(high[1:] - low[1:], np.maximum(abs(high[1:] - prev_close), abs(low[1:] - prev_close)))
    return float(true_range[-period:].mean())
