"""Position sizing and stops: how much to risk and where to get out, in exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from ..gateway.types import SymbolSpec


@dataclass(frozen=True)
class Stops:
    sl: Decimal
    tp: Decimal


def stops_from_atr(
    spec: SymbolSpec,
    side: str,
    entry: Decimal,
    atr: Decimal,
    sl_mult: Decimal,
    tp_mult: Decimal,
    spread: Decimal = Decimal(0),
    slippage_points: int = 0,
) -> Stops:
    """SL/TP at ATR multiples from the entry, never closer than the broker accepts.

    The broker measures stops from the closing side of the quote at fill time, so the floor is the
    stops level plus the spread plus the slippage we allow.
    """
    minimum = spec.point * (spec.stops_level + 1 + slippage_points) + spread
    sl_distance = max(atr * sl_mult, minimum)
    tp_distance = max(atr * tp_mult, minimum)
    quantum = spec.point
    if side == "BUY":
        sl, tp = entry - sl_distance, entry + tp_distance
    else:
        sl, tp = entry + sl_distance, entry - tp_distance
    return Stops(sl=sl.quantize(quantum), tp=tp.quantize(quantum))


def position_volume(spec: SymbolSpec, equity: Decimal, risk_percent: Decimal, stop_distance: Decimal) -> Decimal:
    """Lots such that hitting the stop loses `risk_percent` of equity, rounded down to the volume step.

    The result is clamped to [volume_min, volume_max]: at the minimum the real risk may exceed the
    budget on a tiny account, which is the broker's floor, not ours to go below.
    """
    if stop_distance <= 0 or spec.tick_size <= 0 or spec.tick_value <= 0:
        raise ValueError(f"{spec.name}: cannot size a position with stop distance {stop_distance}")
    risk_money = equity * risk_percent / Decimal(100)
    loss_per_lot = stop_distance / spec.tick_size * spec.tick_value
    raw = risk_money / loss_per_lot
    steps = (raw / spec.volume_step).to_integral_value(rounding=ROUND_DOWN)
    volume = steps * spec.volume_step
    volume = min(max(volume, spec.volume_min), spec.volume_max)
    return volume.quantize(spec.volume_step)
