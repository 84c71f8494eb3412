"""The MT5 enum values a broker record may carry, by constant name.

Values come from `mt5bridge.constants` by name. The few names it does not define yet are the
gateway's own, with the MetaTrader5 package's values (5.0.6231, /work/shared/mt5-api-5.0.6231.json);
once mt5bridge.constants holds every constant of the package, `_PACKAGE` only repeats it.
"""

from __future__ import annotations

from mt5bridge import constants as mt5

# Constants of the MetaTrader5 package that mt5bridge.constants may not define (yet).
_PACKAGE = {
    "DEAL_TYPE_CREDIT": 3,
    "DEAL_TYPE_CHARGE": 4,
    "DEAL_TYPE_CORRECTION": 5,
    "DEAL_TYPE_BONUS": 6,
    "DEAL_TYPE_COMMISSION": 7,
    "DEAL_TYPE_COMMISSION_DAILY": 8,
    "DEAL_TYPE_COMMISSION_MONTHLY": 9,
    "DEAL_TYPE_COMMISSION_AGENT_DAILY": 10,
    "DEAL_TYPE_COMMISSION_AGENT_MONTHLY": 11,
    "DEAL_TYPE_INTEREST": 12,
    "DEAL_TYPE_BUY_CANCELED": 13,
    "DEAL_TYPE_SELL_CANCELED": 14,
    "DEAL_DIVIDEND": 15,
    "DEAL_DIVIDEND_FRANKED": 16,
    "DEAL_TAX": 17,
    "DEAL_REASON_MOBILE": 1,
    "DEAL_REASON_WEB": 2,
    "DEAL_REASON_ROLLOVER": 7,
    "DEAL_REASON_VMARGIN": 8,
    "DEAL_REASON_SPLIT": 9,
    "ORDER_TYPE_BUY_STOP_LIMIT": 6,
    "ORDER_TYPE_SELL_STOP_LIMIT": 7,
    "ORDER_TYPE_CLOSE_BY": 8,
    "ORDER_STATE_REQUEST_ADD": 7,
    "ORDER_STATE_REQUEST_MODIFY": 8,
    "ORDER_STATE_REQUEST_CANCEL": 9,
}


def _values(*names: str) -> frozenset[int]:
    return frozenset(int(getattr(mt5, name) if hasattr(mt5, name) else _PACKAGE[name]) for name in names)


#: Deals that are trades: the only ones that become deal rows and trades.
TRADE_DEAL_TYPES = _values("DEAL_TYPE_BUY", "DEAL_TYPE_SELL")
#: Balance operations, charges and the like: real deals, but not trades (skipped, not refused).
NON_TRADE_DEAL_TYPES = _values(
    "DEAL_TYPE_BALANCE", "DEAL_TYPE_CREDIT", "DEAL_TYPE_CHARGE", "DEAL_TYPE_CORRECTION", "DEAL_TYPE_BONUS",
    "DEAL_TYPE_COMMISSION", "DEAL_TYPE_COMMISSION_DAILY", "DEAL_TYPE_COMMISSION_MONTHLY",
    "DEAL_TYPE_COMMISSION_AGENT_DAILY", "DEAL_TYPE_COMMISSION_AGENT_MONTHLY", "DEAL_TYPE_INTEREST",
    "DEAL_TYPE_BUY_CANCELED", "DEAL_TYPE_SELL_CANCELED", "DEAL_DIVIDEND", "DEAL_DIVIDEND_FRANKED", "DEAL_TAX",
)
DEAL_ENTRIES = _values("DEAL_ENTRY_IN", "DEAL_ENTRY_OUT", "DEAL_ENTRY_INOUT", "DEAL_ENTRY_OUT_BY")
DEAL_REASONS = _values(
    "DEAL_REASON_CLIENT", "DEAL_REASON_MOBILE", "DEAL_REASON_WEB", "DEAL_REASON_EXPERT", "DEAL_REASON_SL",
    "DEAL_REASON_TP", "DEAL_REASON_SO", "DEAL_REASON_ROLLOVER", "DEAL_REASON_VMARGIN", "DEAL_REASON_SPLIT",
)
POSITION_TYPES = _values("POSITION_TYPE_BUY", "POSITION_TYPE_SELL")
ORDER_TYPES = _values(
    "ORDER_TYPE_BUY", "ORDER_TYPE_SELL", "ORDER_TYPE_BUY_LIMIT", "ORDER_TYPE_SELL_LIMIT", "ORDER_TYPE_BUY_STOP",
    "ORDER_TYPE_SELL_STOP", "ORDER_TYPE_BUY_STOP_LIMIT", "ORDER_TYPE_SELL_STOP_LIMIT", "ORDER_TYPE_CLOSE_BY",
)
ORDER_STATES = _values(
    "ORDER_STATE_STARTED", "ORDER_STATE_PLACED", "ORDER_STATE_CANCELED", "ORDER_STATE_PARTIAL",
    "ORDER_STATE_FILLED", "ORDER_STATE_REJECTED", "ORDER_STATE_EXPIRED", "ORDER_STATE_REQUEST_ADD",
    "ORDER_STATE_REQUEST_MODIFY", "ORDER_STATE_REQUEST_CANCEL",
)
