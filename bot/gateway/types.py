"""Plain values the gateway hands to the engine: broker data with money and prices as Decimal.

The engine never sees an MT5 namedtuple, a bridge dict or a numpy record: only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np


@dataclass(frozen=True)
class SymbolSpec:
    name: str
    digits: int
    point: Decimal
    contract_size: Decimal
    tick_size: Decimal
    tick_value: Decimal
    volume_min: Decimal
    volume_max: Decimal
    volume_step: Decimal
    stops_level: int
    currency_profit: str
    #: SYMBOL_TRADE_EXECUTION_* (2: Market) and the SYMBOL_FILLING_* bits: which filling mode to send.
    exemode: int = 2
    filling_bits: int = 3
    #: In Market Watch (symbol_info().visible): quotes flow only for selected symbols.
    visible: bool = True
    #: trade_freeze_level: no close or change of a position with SL/TP this many points from the market.
    freeze_level: int = 0
    #: trade_tick_value_loss: what one tick against the position costs, in the account currency. On an
    #: account whose currency is not the profit currency it differs from tick_value (converted at the
    #: other side of the rate); losses at a stop are priced with it. None: the terminal gave none.
    tick_value_loss: Decimal | None = None

    @property
    def loss_tick_value(self) -> Decimal:
        return self.tick_value_loss or self.tick_value


@dataclass(frozen=True)
class Quote:
    symbol: str
    time: datetime
    bid: Decimal
    ask: Decimal


@dataclass(frozen=True)
class Bars:
    """OHLC arrays, oldest first, as floats: indicators are statistics, not money."""

    symbol: str
    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __len__(self) -> int:
        return len(self.close)


@dataclass(frozen=True)
class AccountState:
    login: int
    currency: str
    balance: Decimal
    equity: Decimal
    profit: Decimal
    margin: Decimal
    free_margin: Decimal
    margin_level: Decimal | None
    leverage: int


@dataclass(frozen=True)
class TerminalState:
    connected: bool
    trade_allowed: bool
    tradeapi_disabled: bool = False


@dataclass(frozen=True)
class Position:
    ticket: int
    symbol: str
    direction: str  # "BUY" | "SELL"
    volume: Decimal
    price_open: Decimal
    price_current: Decimal
    sl: Decimal | None
    tp: Decimal | None
    profit: Decimal
    swap: Decimal
    magic: int
    comment: str
    time: datetime
    #: POSITION_IDENTIFIER: the ticket stays the position's id on hedging accounts; on a netting
    #: account a reversal gives the position a new ticket while its deals keep this id (0: = ticket).
    identifier: int = 0


@dataclass(frozen=True)
class Deal:
    ticket: int
    order: int
    position_id: int
    symbol: str
    type: int
    entry: int
    volume: Decimal
    price: Decimal
    profit: Decimal
    commission: Decimal
    swap: Decimal
    magic: int
    comment: str
    reason: int
    time: datetime


@dataclass(frozen=True)
class HistoryOrder:
    ticket: int
    position_id: int
    symbol: str
    type: int
    state: int
    volume: Decimal
    price: Decimal
    magic: int
    comment: str
    time_done: datetime | None


@dataclass(frozen=True)
class OrderRequest:
    """A market order. `position` set means: close that position."""

    symbol: str
    side: str  # "BUY" | "SELL"
    volume: Decimal
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    deviation: int
    magic: int
    comment: str
    position: int | None = None


@dataclass(frozen=True)
class OrderResult:
    retcode: int
    order: int
    deal: int
    volume: Decimal
    price: Decimal
    comment: str


@dataclass(frozen=True)
class OrderCheck:
    """The terminal's verdict on an order before it is sent (MT5 order_check).

    `margin` is what the order needs, `margin_free` and `margin_level` what the account would
    have after it; `retcode` 0 (or 10009) means the terminal would accept it.
    """

    retcode: int
    margin: Decimal
    margin_free: Decimal
    margin_level: Decimal
    comment: str
