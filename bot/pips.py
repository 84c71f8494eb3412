"""Pip sizes from symbol digits.

Forex quotes with 5 or 3 digits have a fractional "pipette": one pip is 10 points (0.0001 for
EURUSD, 0.01 for USDJPY). With 4 or 2 digits a pip is one point. Metals follow their own
convention: gold (XAU) quotes to 2 digits and one pip is 0.1 (10 points); silver (XAG) 0.01.
"""

from __future__ import annotations

from decimal import Decimal


def pip_size(symbol: str, digits: int) -> Decimal:
    name = symbol.upper()
    if name.startswith("XAU"):
        return Decimal("0.1")
    if name.startswith("XAG"):
        return Decimal("0.01")
    point = Decimal(1).scaleb(-digits)
    return point * 10 if digits in (3, 5) else point


def profit_in_pips(symbol: str, digits: int, direction: str, entry: Decimal, exit_: Decimal) -> Decimal:
    """Signed pips a trade made: positive when the price moved in the trade's favour."""
    move = exit_ - entry if direction == "BUY" else entry - exit_
    return (move / pip_size(symbol, digits)).quantize(Decimal("0.1"))
