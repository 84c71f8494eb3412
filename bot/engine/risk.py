"""Position sizing and stops: how much to risk and where to get out, in exact decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from ..gateway import grid
from ..gateway.errors import NotExpressible
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
    # On the price grid (trade_tick_size, which may be coarser than point: an index at 0.25), and
    # rounded away from the entry so the distance never falls below the floor.
    if side == "BUY":
        sl = grid.to_tick(entry - sl_distance, spec, ROUND_FLOOR)
        tp = grid.to_tick(entry + tp_distance, spec, ROUND_CEILING)
    else:
        sl = grid.to_tick(entry + sl_distance, spec, ROUND_CEILING)
        tp = grid.to_tick(entry - tp_distance, spec, ROUND_FLOOR)
    return Stops(sl=sl, tp=tp)


def position_volume(spec: SymbolSpec, equity: Decimal, risk_percent: Decimal, stop_distance: Decimal) -> Decimal:
    """Lots such that hitting the stop loses `risk_percent` of equity, rounded down to the volume step.

    Capped at volume_max. Below volume_min the trade is not taken (`NotExpressible`): the broker's
    smallest lot would risk more than the budget allows, and risking more than asked is not ours
    to decide. A tick size or value of 0 (unknown) cannot be sized either.
    """
    if stop_distance <= 0:
        raise ValueError(f"{spec.name}: cannot size a position with stop distance {stop_distance}")
    if spec.tick_size <= 0 or spec.tick_value <= 0:
        raise NotExpressible(f"{spec.name}: tick size/value unknown ({spec.tick_size}/{spec.tick_value})",
                             "tick_size_unknown")
    risk_money = equity * risk_percent / Decimal(100)
    loss_per_lot = stop_distance / spec.tick_size * spec.loss_tick_value  # a stop is a loss: priced as one
    return grid.to_step(risk_money / loss_per_lot, spec)
