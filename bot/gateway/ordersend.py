"""The order_send request of a market order, on the symbol's grid and with its filling mode.

Pure: the gateway (bot.gateway.mt5api) sends what this builds. Volumes go to the volume step,
prices (price, SL, TP) to the tick size (not the point), the filling mode is the first the symbol
allows (bot.gateway.filling); what cannot be expressed raises NotExpressible before anything is sent.
"""

from __future__ import annotations

from typing import Any

from mt5bridge import constants as mt5

from . import grid
from .errors import NotExpressible
from .filling import allowed_fillings
from .types import OrderRequest, SymbolSpec


def market_request(request: OrderRequest, spec: SymbolSpec) -> dict[str, Any]:
    """The request on the symbol's grid (volume step, tick size) with its filling mode."""
    fillings = allowed_fillings(spec.exemode, spec.filling_bits)
    if not fillings:
        raise NotExpressible(f"{spec.name}: no filling mode allowed (filling_mode {spec.filling_bits})",
                             "no_filling")
    volume = grid.to_step(request.volume, spec)
    payload: dict[str, Any] = {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": request.symbol,
        "volume": float(volume),
        "type": mt5.ORDER_TYPE_BUY if request.side == "BUY" else mt5.ORDER_TYPE_SELL,
        "price": float(grid.to_tick(request.price, spec)),
        "deviation": int(request.deviation),
        "magic": int(request.magic),
        "comment": request.comment,
        "type_time": mt5.ORDER_TIME_GTC,
        "type_filling": fillings[0],
    }
    if request.sl is not None:
        payload["sl"] = float(grid.to_tick(request.sl, spec))
    if request.tp is not None:
        payload["tp"] = float(grid.to_tick(request.tp, spec))
    if request.position is not None:
        payload["position"] = int(request.position)
    return payload
