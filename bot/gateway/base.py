"""The one gateway interface the engine talks to, whatever terminal sits behind it.

Like NautilusTrader's execution-client / venue-adapter split: `Gateway` is the contract, and
`bot.gateway.mt5api.Mt5ApiGateway` adapts any object with the MetaTrader5 call surface (the real
package, our bridge client, the simulated terminal) to it. Nothing above this module knows which
terminal it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from db.brokerday import BrokerDay

from .errors import GatewayError
from .types import (
    AccountState,
    Bars,
    Deal,
    HistoryOrder,
    OrderCheck,
    OrderRequest,
    OrderResult,
    Position,
    Quote,
    SymbolSpec,
    TerminalState,
)

#: Called after every broker call with (call name, seconds, error or None). Telemetry hooks in here.
CallObserver = Callable[[str, float, GatewayError | None], None]


class Gateway(ABC):
    """A connection to one trading account at one terminal."""

    #: Symbols whose last full position list had a record the gateway refused (their books are unsure).
    refused_position_symbols: frozenset[str] = frozenset()
    #: Distinct deal tickets met so far (balance operations too): an account change with no new deal is suspect.
    deals_seen: int = 0

    def set_rejection_sink(self, sink: Callable[[Any], None] | None) -> None:
        """Where refused broker records are reported (the engine's quarantine); a gateway without checks ignores it."""
        return None

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the last call reached the terminal (no call is made to find out)."""

    @abstractmethod
    def connect(self) -> None:
        """Open the transport and initialise the terminal; raises BrokerUnavailable."""

    def utc_now(self) -> datetime:
        """True UTC now: the machine's clock (a simulator running faster than the wall gives its own)."""
        return datetime.now(UTC)

    def reconnect(self) -> str:
        """Re-open the connection, cheapest layer first; returns the layer used. Raises GatewayError."""
        self.connect()
        return "transport"

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def terminal(self) -> TerminalState: ...

    @abstractmethod
    def account(self) -> AccountState: ...

    @abstractmethod
    def symbol(self, name: str) -> SymbolSpec: ...

    @abstractmethod
    def quote(self, name: str) -> Quote: ...

    @abstractmethod
    def bars(self, symbol: str, timeframe: int, count: int) -> Bars: ...

    @abstractmethod
    def positions(self, symbol: str | None = None) -> list[Position]: ...

    @abstractmethod
    def deals(self, date_from: datetime, date_to: datetime) -> list[Deal]: ...

    def account_deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        """Every deal of the window, balance operations included; a gateway that cannot tell them gives its trades."""
        return self.deals(date_from, date_to)

    def deals_total(self, date_from: datetime, date_to: datetime) -> int | None:
        """How many deals (balance operations included) the window holds; None: this gateway cannot count."""
        return None

    @abstractmethod
    def deals_for_position(self, position_id: int) -> list[Deal]: ...

    @abstractmethod
    def history_orders(self, date_from: datetime, date_to: datetime) -> list[HistoryOrder]: ...

    def open_orders(self) -> list[HistoryOrder]:
        """Pending orders at the broker (a market order may briefly sit here)."""
        return []

    def server_offset_seconds(self) -> int | None:
        """The trade server's UTC offset as measured (None: not yet, or a gateway without a server clock)."""
        return None

    def remember_server_offset(self, offset_seconds: int) -> None:
        """The offset an earlier run measured (db.brokerday): a gateway with a server clock starts from it
        until a live tick measures it again (bot.gateway.clock.BrokerClock.seed); others ignore it."""
        return None  # no server clock here: nothing to seed

    def cycle_reads(self) -> AbstractContextManager[None]:
        """A block (the engine's cycle) in which repeated terminal/account reads may share one answer
        until an order is sent (bot.gateway.cycle_reads); by default every read is made."""
        return nullcontext()

    def read_info(self, call: str, *args: Any) -> dict[str, Any] | None:
        """terminal_info / account_info / symbol_info(name) as a plain dict: the fields preflight needs
        that the typed values leave out (bot.engine.preflight). None: this gateway cannot read them."""
        return None

    def ensure_selected(self, name: str) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Put `name` in Market Watch for this session if the terminal needs that (no-op by default)."""

    def symbol_names(self) -> list[str] | None:
        """Every symbol the terminal offers (None: this gateway cannot list them)."""
        return None

    @abstractmethod
    def order_send(self, request: OrderRequest) -> OrderResult:
        """Send once. Raises OrderRejected, OutcomeUnknown, ConnectionLost or BrokerUnavailable.

        Never retried here: a resend could double an order that did execute.
        """

    # -- before a send (the risk guard, bot.engine.riskguard) ----------------------------------
    # Not abstract: a gateway that cannot ask says so, and the guard falls back on its own figures.

    def order_check(self, request: OrderRequest) -> OrderCheck:
        """Would the terminal accept `request` (funds, volume, stops)? Nothing is sent."""
        raise GatewayError("order_check: not supported by this gateway")

    def order_calc_margin(self, side: str, symbol: str, volume, price) -> Decimal:
        """The margin `volume` lots of `symbol` at `price` would take, in the deposit currency."""
        raise GatewayError("order_calc_margin: not supported by this gateway")


def broker_day_of(gateway: Any, moment: datetime) -> BrokerDay:
    """The broker day (db.brokerday) of a UTC moment with the gateway's measured server offset: the
    one definition the risk guard, the prop rules, the daily report and /status use. A UTC day while
    the offset is unknown (BrokerDay.label says so)."""
    measured = getattr(gateway, "server_offset_seconds", None)
    return BrokerDay.of(moment, measured() if callable(measured) else None)
