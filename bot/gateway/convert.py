"""Plain MT5 result dicts -> the gateway's typed values (Decimal money and prices, aware UTC times).

Only records the guard accepted get here (bot.gateway.guard), so these conversions may assume
finite numbers, known symbols and plausible times.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from mt5bridge import constants as mt5

from . import grid
from .types import AccountState, Deal, HistoryOrder, Position, SymbolSpec

CENT = Decimal("0.01")
BAR_COLUMNS = ("time", "open", "high", "low", "close")


#: Recent conversions, float -> Decimal (prices by digits). Why: a cycle converts ~40 prices and
#: amounts, most of them the same as last cycle's (a position's open price, SL, TP, the balance),
#: and the text round trip costs ~1 us each. A Decimal is immutable, so one object may be handed
#: out many times; the result depends only on the key (the float, or the float and the digits).
#: Zeros are not kept (-0.0 == 0.0, but their Decimals differ in sign), nor anything but a float
#: (1 == 1.0 == True, whose texts differ). Bounded: emptied when full.
_MONEY: dict[float, Decimal] = {}
_PRICES: dict[tuple[float, int], Decimal] = {}
CACHE_SIZE = 1024


def money(value: Any) -> Decimal:
    if type(value) is not float or not value:
        return Decimal(str(value)).quantize(CENT)
    amount = _MONEY.get(value)
    return amount if amount is not None else _kept(_MONEY, value, Decimal(str(value)).quantize(CENT))


#: 10**-digits for the digits a symbol can have (schema: at most 11), built once.
_PLACES = {digits: Decimal(1).scaleb(-digits) for digits in range(12)}


def price(value: Any, digits: int) -> Decimal:
    number = float(value)
    if not number:
        return _price(number, digits)
    key = (number, digits)
    quantized = _PRICES.get(key)
    return quantized if quantized is not None else _kept(_PRICES, key, _price(number, digits))


def _price(number: float, digits: int) -> Decimal:
    return Decimal(str(round(number, digits))).quantize(_PLACES.get(digits) or Decimal(1).scaleb(-digits))


def _kept(cache: dict, key: Any, value: Decimal) -> Decimal:
    """`value`, kept under `key` in one of the bounded caches above (emptied when full)."""
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[key] = value
    return value


def optional_price(value: Any, digits: int) -> Decimal | None:
    return price(value, digits) if value else None


def utc(seconds: Any) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def volume(value: Any) -> Decimal:
    """A volume (or volume step) exactly as the terminal reports it, whatever its decimals (0.001)."""
    return grid.exact(value)


def side(order_type: int) -> str:
    return "BUY" if order_type == mt5.ORDER_TYPE_BUY else "SELL"


def ticket_key(record: Any) -> str:
    """How a ticketed record is named in logs, metrics and the quarantine."""
    ticket = record.get("ticket") if isinstance(record, dict) else None
    return f"ticket {ticket!r}"[:64]


def bar_columns(rows: Any) -> dict[str, Any]:
    """Bars as numpy columns, from a structured array (terminal), a dict of columns (bridge) or a list of
    dicts (an older bridge); None for a column that is missing or unreadable."""
    dtype = getattr(rows, "dtype", None)
    if dtype is not None and dtype.names:
        names = dtype.names
        return {name: np.asarray(rows[name]) if name in names else None for name in BAR_COLUMNS}
    if isinstance(rows, dict):
        return {name: _column(rows.get(name), np.int64 if name == "time" else float) for name in BAR_COLUMNS}
    try:
        return {name: np.array([r[name] for r in rows], dtype=np.int64 if name == "time" else float)
                for name in BAR_COLUMNS}
    except (KeyError, TypeError, ValueError, OverflowError):
        return dict.fromkeys(BAR_COLUMNS)


def _column(values: Any, dtype: Any) -> Any:
    """One column of a bridge reply as an array, or None when it is not a list of numbers."""
    if not isinstance(values, list):
        return None
    try:
        return np.array(values, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        return None


def account(info: dict) -> AccountState:
    level = info.get("margin_level") or 0
    return AccountState(
        login=int(info["login"]),
        currency=str(info.get("currency", "")),
        balance=money(info["balance"]),
        equity=money(info["equity"]),
        profit=money(info.get("profit", 0)),
        margin=money(info.get("margin", 0)),
        free_margin=money(info.get("margin_free", 0)),
        margin_level=money(level) if level else None,
        leverage=int(info.get("leverage", 0)),
    )


def symbol_spec(name: str, info: dict) -> SymbolSpec:
    return SymbolSpec(
        name=name,
        digits=int(info["digits"]),
        point=Decimal(str(info["point"])),
        contract_size=Decimal(str(info["trade_contract_size"])),
        tick_size=Decimal(str(info["trade_tick_size"])),
        tick_value=Decimal(str(info["trade_tick_value"])),
        volume_min=volume(info["volume_min"]),
        volume_max=volume(info["volume_max"]),
        volume_step=volume(info["volume_step"]),
        stops_level=int(info.get("trade_stops_level", 0)),
        currency_profit=str(info.get("currency_profit", "")),
        exemode=int(info.get("trade_exemode", mt5.SYMBOL_TRADE_EXECUTION_MARKET)),
        filling_bits=int(info.get("filling_mode", 0)),
        visible=bool(info.get("visible", True)),
        freeze_level=int(info.get("trade_freeze_level", 0)),
        tick_value_loss=Decimal(str(info["trade_tick_value_loss"])) if info.get("trade_tick_value_loss") else None,
    )


#: Server time (MT5 seconds) -> aware UTC datetime: the gateway passes its broker clock's conversion.
ToUtc = Callable[[Any], datetime]


def position(r: dict, digits: int, to_utc: ToUtc = utc) -> Position:
    return Position(
        ticket=int(r["ticket"]),
        symbol=r["symbol"],
        direction=side(int(r["type"])),
        volume=volume(r["volume"]),
        price_open=price(r["price_open"], digits),
        price_current=price(r["price_current"], digits),
        sl=optional_price(r.get("sl"), digits),
        tp=optional_price(r.get("tp"), digits),
        profit=money(r.get("profit", 0)),
        swap=money(r.get("swap", 0)),
        magic=int(r.get("magic", 0)),
        comment=str(r.get("comment", "")),
        time=to_utc(r["time"]),
        identifier=int(r.get("identifier") or r["ticket"]),
    )


def deal(r: dict, digits: int, to_utc: ToUtc = utc) -> Deal:
    return Deal(
        ticket=int(r["ticket"]),
        order=int(r.get("order", 0)),
        position_id=int(r.get("position_id", 0)),
        symbol=str(r.get("symbol", "")),
        type=int(r["type"]),
        entry=int(r["entry"]),
        volume=volume(r["volume"]),
        price=price(r["price"], digits),
        profit=money(r.get("profit", 0)),
        commission=money(r.get("commission", 0)),
        swap=money(r.get("swap", 0)),
        magic=int(r.get("magic", 0)),
        comment=str(r.get("comment", "")),
        reason=int(r.get("reason", 0)),
        time=to_utc(r["time"]),
    )


def history_order(r: dict, digits: int, to_utc: ToUtc = utc) -> HistoryOrder:
    done = r.get("time_done")
    return HistoryOrder(
        ticket=int(r["ticket"]),
        position_id=int(r.get("position_id", 0)),
        symbol=r["symbol"],
        type=int(r["type"]),
        state=int(r.get("state", 0)),
        volume=volume(r.get("volume_initial", 0)),
        price=price(r.get("price_current") or r.get("price_open") or 0, digits),
        magic=int(r.get("magic", 0)),
        comment=str(r.get("comment", "")),
        time_done=to_utc(done) if done else None,
    )
