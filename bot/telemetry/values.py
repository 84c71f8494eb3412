"""The checks a value passes before it becomes a sample or a label: one clear error naming the input.

Shared by the metric modules (bot.telemetry.metrics, bot.telemetry.account_figures)."""

from __future__ import annotations

import math
from decimal import Decimal


def number(what: str, value: object) -> float:
    """A finite float from int/float/Decimal, or a one-line error naming the bad input."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{what} must be a number (int, float or Decimal), got {type(value).__name__}: {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return result


def label(what: str, value: object) -> str:
    """A label value: a non-empty string, or a one-line error naming the bad input."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"metric label {what} must be a non-empty string, got {value!r}")
    return value
