"""Parsing and static validation of ``order_send``/``order_check`` request dicts.

The terminal must never raise on a bad request: every problem becomes a retcode with a one-line
comment, in the order a real terminal reports them (malformed → volume → filling). Prices must
lie on the symbol's grid (digits and tick size): a real server refuses an unnormalised price
instead of rounding it. Checks that need the market or the books (stops, requotes, margin,
freeze level) live in the broker.
"""

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from mt5bridge.constants import (
    ORDER_TIME_GTC,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    SYMBOL_ORDER_MARKET,
    SYMBOL_ORDER_SL,
    SYMBOL_ORDER_TP,
    TRADE_ACTION_DEAL,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_FILL,
    TRADE_RETCODE_INVALID_ORDER,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_INVALID_VOLUME,
)

from .execution import accepts_filling
from .records import TradeRequest
from .symbols import SymbolSpec

COMMENT_MAX_CHARS = 31
_VOLUME_TOLERANCE = Decimal("1e-6")  # float noise such as 0.1 + 0.2, in units of volume_step
_PRICE_TOLERANCE = Decimal("1e-6")  # float noise, in points
_DEFAULTS = {
    "action": 0, "magic": 0, "order": 0, "symbol": "", "volume": 0.0, "price": 0.0, "stoplimit": 0.0,
    "sl": 0.0, "tp": 0.0, "deviation": 0, "type": 0, "type_filling": 0, "type_time": 0,
    "expiration": 0, "comment": "", "position": 0, "position_by": 0,
}  # fmt: skip


@dataclass(frozen=True)
class OrderRequest:
    """A validated request; prices are integer points (0 = not given)."""

    action: int
    symbol: str
    volume: Decimal
    type: int
    price: int
    sl: int
    tp: int
    deviation: int
    type_filling: int
    type_time: int
    magic: int
    comment: str
    position: int
    spec: SymbolSpec

    @property
    def is_buy(self) -> bool:
        return self.type == ORDER_TYPE_BUY


class Rejected(Exception):
    """A request the terminal refuses, with the retcode and comment to report."""

    def __init__(self, retcode: int, comment: str):
        super().__init__(comment)
        self.retcode = retcode
        self.comment = comment


def echo(request: dict) -> TradeRequest:
    """The TradeRequest tuple MT5 returns inside results: the request as sent, with defaults."""
    return TradeRequest(**{name: request.get(name, default) for name, default in _DEFAULTS.items()})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(request: dict, name: str, minimum: int = 0) -> int:
    value = request.get(name, _DEFAULTS[name])
    if not _is_int(value) or value < minimum:
        raise Rejected(TRADE_RETCODE_INVALID, f"Invalid {name}: {value!r}")
    return value


def _decimal(request: dict, name: str) -> Decimal:
    """A non-negative finite number as an exact Decimal (floats via their shortest repr)."""
    value = request.get(name, _DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Rejected(TRADE_RETCODE_INVALID, f"Invalid {name}: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Rejected(TRADE_RETCODE_INVALID, f"Invalid {name}: {value!r}") from None
    if not number.is_finite() or number < 0 or (isinstance(value, float) and not math.isfinite(value)):
        raise Rejected(TRADE_RETCODE_INVALID, f"Invalid {name}: {value!r}")
    return number


def _points(request: dict, name: str, spec: SymbolSpec) -> int:
    """A price field in integer points (0 = not given); it must be on the digits and tick grid."""
    exact = _decimal(request, name) * spec.scale
    points = int(exact.to_integral_value())
    if abs(exact - points) > _PRICE_TOLERANCE or points % spec.tick_size:
        retcode = TRADE_RETCODE_INVALID_PRICE if name == "price" else TRADE_RETCODE_INVALID_STOPS
        tick = spec.to_price(spec.tick_size)
        raise Rejected(retcode, f"Invalid {name} {exact / spec.scale}: not a multiple of the tick size {tick}")
    return points


def _volume(request: dict, spec: SymbolSpec) -> Decimal:
    volume = _decimal(request, "volume")
    steps = volume / spec.volume_step
    whole = steps.to_integral_value()
    if abs(steps - whole) > _VOLUME_TOLERANCE:
        raise Rejected(TRADE_RETCODE_INVALID_VOLUME, f"Invalid volume {volume}: step is {spec.volume_step}")
    volume = whole * spec.volume_step
    if volume < spec.volume_min or volume > spec.volume_max:
        raise Rejected(
            TRADE_RETCODE_INVALID_VOLUME,
            f"Invalid volume {volume}: allowed {spec.volume_min}..{spec.volume_max}",
        )
    return volume


def parse(request: dict, symbols: dict[str, SymbolSpec]) -> OrderRequest:
    """Validate a request dict against the broker's ``symbols``; raise Rejected as MT5 would."""
    unknown = sorted(set(request) - set(_DEFAULTS), key=str)
    if unknown:
        raise Rejected(TRADE_RETCODE_INVALID, f"Unknown request field {unknown[0]!r}")
    action = request.get("action")
    if action not in (TRADE_ACTION_DEAL, TRADE_ACTION_SLTP) or not _is_int(action):
        raise Rejected(TRADE_RETCODE_INVALID, f"Unsupported trade action {action!r}")
    symbol = request.get("symbol")
    if not isinstance(symbol, str) or symbol not in symbols:
        raise Rejected(TRADE_RETCODE_INVALID, f"Unknown symbol {symbol!r}")
    spec = symbols[symbol]
    comment = request.get("comment", "")
    if not isinstance(comment, str):
        raise Rejected(TRADE_RETCODE_INVALID, f"Invalid comment: {comment!r}")
    magic = _integer(request, "magic")
    position = _integer(request, "position")
    sl, tp = _points(request, "sl", spec), _points(request, "tp", spec)
    if (sl and not spec.order_mode & SYMBOL_ORDER_SL) or (tp and not spec.order_mode & SYMBOL_ORDER_TP):
        raise Rejected(TRADE_RETCODE_INVALID_STOPS, f"{symbol} does not accept SL/TP on orders")
    if action == TRADE_ACTION_SLTP:
        if position == 0:
            raise Rejected(TRADE_RETCODE_INVALID, "SL/TP modification needs a position ticket")
        return OrderRequest(action, symbol, Decimal(0), 0, 0, sl, tp, 0, 0, 0, magic, comment, position, spec)

    order_type = request.get("type")
    if order_type not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL) or not _is_int(order_type):
        raise Rejected(TRADE_RETCODE_INVALID, f"Unsupported order type {order_type!r}")
    if not spec.order_mode & SYMBOL_ORDER_MARKET:
        raise Rejected(TRADE_RETCODE_INVALID_ORDER, f"{symbol} does not accept market orders")
    if "volume" not in request:
        raise Rejected(TRADE_RETCODE_INVALID, "Missing volume")
    price = _points(request, "price", spec)
    deviation = _integer(request, "deviation")
    type_time = _integer(request, "type_time", minimum=ORDER_TIME_GTC)
    if _integer(request, "position_by") != 0:
        raise Rejected(TRADE_RETCODE_INVALID, "position_by is only valid for close-by requests")
    filling = _integer(request, "type_filling")
    volume = _volume(request, spec)
    if not accepts_filling(spec, filling):
        raise Rejected(TRADE_RETCODE_INVALID_FILL, f"Unsupported filling mode {filling}")
    return OrderRequest(
        action=action,
        symbol=symbol,
        volume=volume,
        type=order_type,
        price=price,
        sl=sl,
        tp=tp,
        deviation=deviation,
        type_filling=filling,
        type_time=type_time,
        magic=magic,
        comment=comment[:COMMENT_MAX_CHARS],
        position=position,
        spec=spec,
    )
