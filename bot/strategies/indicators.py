"""Indicators the built-in strategies use; plain numpy so user strategies can use them too.

Cost (issue 16): the engine calls these on ~20-120 bars per strategy and cycle, where numpy's
per-call overhead (argument handling, small temporaries) is most of the work. So each function
does as few numpy calls as it can while computing the very same IEEE operations in the same
order: the results are the textbook ones to the last bit (tests/test_indicators.py holds them to
plain numpy references).
"""

from __future__ import annotations

import math

import numpy as np

_add = np.add.reduce  # the summation np.mean / np.std use (pairwise), without their wrappers
_KERNELS: dict[int, np.ndarray] = {}  # period -> the SMA kernel, built once (read-only)


def _kernel(period: int) -> np.ndarray:
    kernel = _KERNELS.get(period)
    if kernel is None:
        kernel = np.ones(period) / period
        kernel.setflags(write=False)
        if len(_KERNELS) < 1024:  # bounded: plugins may ask for any period
            _KERNELS[period] = kernel
    return kernel


def sma(values: np.ndarray, period: int, last: int | None = None) -> np.ndarray:
    """Simple moving average, one value per bar from index `period - 1` on (only the newest `last` if given).

    `last`: each value is the same kernel over its own `period` bars, so convolving only the bars
    the newest `last` values cover gives those values to the last bit, without the older ones."""
    kernel = _kernel(period)
    if last is not None:
        values = values[-(period + last - 1):]
    return np.convolve(values, kernel, mode="valid")


def std(values: np.ndarray) -> float:
    """np.std(values) (population, ddof 0) of a 1-d float64 array, to the last bit, at a fraction of its cost.

    The same steps as numpy's own `_var`: pairwise sum / n for the mean, the squared deviations,
    their pairwise sum / n, the square root (IEEE sqrt, correctly rounded in numpy and math alike).
    Anything but a non-empty 1-d float64 ndarray goes to np.std itself."""
    if type(values) is not np.ndarray or values.dtype != np.float64 or values.ndim != 1 or not len(values):
        return float(np.std(values))
    n = len(values)
    deviations = values - _add(values) / n
    return math.sqrt(_add(deviations * deviations) / n)


def rsi(close: np.ndarray, period: int, last: int | None = None) -> np.ndarray:
    """Wilder's RSI; one value per bar from index `period` on (only the newest `last` of them if given)."""
    return np.array(rsi_values(close, period, last))


def rsi_values(close: np.ndarray, period: int, last: int | None = None) -> list[float]:
    """`rsi` as a list of Python floats (the same doubles), for a caller that compares them one by one."""
    delta = np.diff(close)
    if delta.dtype != np.float64 or len(delta) < period:  # ints, float32, a short series: numpy's clip and mean
        gains, losses = np.clip(delta, 0, None), np.clip(-delta, 0, None)
        avg_gain, avg_loss = float(gains[:period].mean()), float(losses[:period].mean())
    else:
        # np.clip(x, 0, None) is np.maximum(x, 0) and .mean() is the pairwise sum / n: the same values.
        head = delta[:period]
        avg_gain = float(_add(np.maximum(head, 0.0))) / period
        avg_loss = float(_add(np.maximum(-head, 0.0))) / period
    # Wilder's smoothing is a recurrence (each average from the one before), so it is a loop; on
    # Python floats, not numpy scalars: the same IEEE double operations in the same order (the
    # same values to the last bit) at a fraction of the cost per bar. The gain and loss of a step
    # come from its change (max(d, 0), max(-d, 0)); where one is zero, `avg * keep + 0.0` is
    # `avg * keep` (but for the sign of a zero, which no RSI value shows), so that add is skipped.
    # Every operand is a float (`keep`, `divisor`, the 0.0s: exact conversions, the same values),
    # which is what CPython 3.11's specialised float operations and comparisons need: a quarter
    # less work per bar than with int operands (issue 16).
    # `last`: a strategy that reads the newest values only skips turning the older averages into
    # RSI values (the first slice of steps emits none); the recurrence, and so every value, stays the same.
    keep, divisor = float(period - 1), float(period)
    after = delta[period:].tolist()
    skip = 0 if last is None else max(0, len(after) + 1 - last)  # steps whose value is not returned
    out = []
    for changes, emit in ((after[:skip], False), (after[skip:], True)):
        for change in changes:
            if emit:
                out.append(100.0 if avg_loss == 0.0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
            if change > 0.0:
                avg_gain = (avg_gain * keep + change) / divisor
                avg_loss = avg_loss * keep / divisor
            elif change < 0.0:
                avg_gain = avg_gain * keep / divisor
                avg_loss = (avg_loss * keep - change) / divisor
            elif change == 0.0:
                avg_gain = avg_gain * keep / divisor
                avg_loss = avg_loss * keep / divisor
            else:  # NaN: np.clip keeps it, as the gain and (negated) as the loss
                avg_gain = (avg_gain * keep + change) / divisor
                avg_loss = (avg_loss * keep + -change) / divisor
    out.append(100.0 if avg_loss == 0.0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> float:
    """Average true range over the last `period` bars (simple mean)."""
    prev_close = close[:-1]
    true_range = np.maximum(high[1:] - low[1:], np.maximum(abs(high[1:] - prev_close), abs(low[1:] - prev_close)))
    return float(true_range[-period:].mean())
