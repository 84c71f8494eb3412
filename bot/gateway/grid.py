"""The symbol's grid: volumes in multiples of `volume_step`, prices in multiples of `trade_tick_size`.

The MetaTrader5 package reports steps and sizes as doubles (0.001, 0.25); they are read back as
the shortest decimal that prints the same (`repr`), never rounded to a fixed number of places:
rounding a 0.001 step to two places made it 0 and sizing divided by zero. A value the grid cannot
express (no tick size, a volume below the minimum) raises `NotExpressible`: it is never sent.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from .errors import NotExpressible
from .types import SymbolSpec


def exact(value: Any) -> Decimal:
    """A number from the API as the decimal it stands for (0.001 -> Decimal('0.001'))."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(str(value))


def to_tick(value: Decimal, spec: SymbolSpec, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`value` on the symbol's price grid (a multiple of its tick size), printed with its digits."""
    tick = spec.tick_size
    if tick is None or tick <= 0:
        raise NotExpressible(f"{spec.name}: tick size unknown ({tick}): no price can be expressed",
                             "tick_size_unknown")
    steps = (Decimal(value) / tick).to_integral_value(rounding=rounding)
    return (steps * tick).quantize(Decimal(1).scaleb(-spec.digits)) if spec.digits >= 0 else steps * tick


def to_step(volume: Decimal, spec: SymbolSpec) -> Decimal:
    """`volume` rounded down to the volume step; NotExpressible when that is below the minimum."""
    step = spec.volume_step
    if step is None or step <= 0:
        raise NotExpressible(f"{spec.name}: volume step unknown ({step})", "volume_step_unknown")
    steps = (Decimal(volume) / step).to_integral_value(rounding=ROUND_DOWN)
    rounded = steps * step
    if rounded < spec.volume_min or rounded <= 0:
        raise NotExpressible(f"{spec.name}: volume {volume} is below the minimum {spec.volume_min} "
                             f"(step {step})", "volume_below_min")
    return min(rounded, spec.volume_max)
