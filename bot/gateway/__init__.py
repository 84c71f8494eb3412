"""The gateway: one interface to the trading terminal, typed errors, plain values."""

from .base import CallObserver, Gateway, broker_day_of
from .errors import (
    BadBrokerData,
    BrokerFault,
    BrokerUnavailable,
    ConnectionLost,
    GatewayError,
    NotExpressible,
    OrderRejected,
    OutcomeUnknown,
    TradingDisabled,
)
from .guard import Rejection
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

__all__ = [
    "AccountState",
    "BadBrokerData",
    "Bars",
    "BrokerFault",
    "BrokerUnavailable",
    "CallObserver",
    "ConnectionLost",
    "Deal",
    "Gateway",
    "GatewayError",
    "HistoryOrder",
    "NotExpressible",
    "OrderCheck",
    "OrderRejected",
    "OrderRequest",
    "OrderResult",
    "OutcomeUnknown",
    "Position",
    "Quote",
    "Rejection",
    "SymbolSpec",
    "TerminalState",
    "TradingDisabled",
    "broker_day_of",
]
