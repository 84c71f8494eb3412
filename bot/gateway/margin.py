"""Asking the terminal before sending: MT5 `order_check` and `order_calc_margin` for the risk guard.

Kept apart from `mt5api.order_send` on purpose: these calls send nothing, so they may be asked as
often as the guard needs (each is one broker call, timed and logged like the others), and a
terminal that does not answer them must never stop an order that would otherwise go (the guard
counts that and keeps its own margin figures). Only its funds matter here, so a refusal for
another reason (10030 filling, invalid stops) is no money verdict and the guard lets the send
decide. The request is built by `ordersend.market_request`, as
for the send itself (the symbol's grid and filling mode).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from mt5bridge import constants as mt5

from .errors import GatewayError
from .types import OrderCheck

CENT = Decimal("0.01")


def _money(call: str, value: Any) -> Decimal:
    """A finite amount at the cent, or a GatewayError naming the call (never NaN into a limit)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GatewayError(f"{call}: not a number: {value!r}") from None
    if not math.isfinite(number):
        raise GatewayError(f"{call}: not a finite number: {value!r}")
    try:
        return Decimal(str(value)).quantize(CENT)
    except InvalidOperation:
        raise GatewayError(f"{call}: not a number: {value!r}") from None


def order_check(call: Callable[..., Any], payload: dict[str, Any]) -> OrderCheck:
    """`payload` is the order_send request (bot.gateway.ordersend.market_request); `call` the gateway's
    timed, classified broker call (Mt5ApiGateway._call)."""
    result = call("order_check", payload)
    if not isinstance(result, dict):
        raise GatewayError(f"order_check: unexpected reply {type(result).__name__}")
    return OrderCheck(
        retcode=int(result.get("retcode", -1)),
        margin=_money("order_check margin", result.get("margin", 0)),
        margin_free=_money("order_check margin_free", result.get("margin_free", 0)),
        margin_level=_money("order_check margin_level", result.get("margin_level", 0)),
        comment=str(result.get("comment", ""))[:200],
    )


def order_calc_margin(call: Callable[..., Any], side: str, symbol: str, volume: Decimal, price: Decimal) -> Decimal:
    action = mt5.ORDER_TYPE_BUY if side == "BUY" else mt5.ORDER_TYPE_SELL
    required = _money("order_calc_margin", call("order_calc_margin", action, symbol, float(volume), float(price)))
    if required < 0:
        raise GatewayError(f"order_calc_margin: negative margin {required}")
    return required
