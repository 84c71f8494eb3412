"""Typed gateway failures: what the engine must do differs for each, so they are distinct types.

- `BrokerUnavailable`: nothing reached the terminal (connection refused, auth refused). A request was
  certainly not sent.
- `ConnectionLost`: the terminal went away; a read can be retried after reconnecting.
- `OutcomeUnknown`: an order may or may not have executed (timeout, retcodes 10012/10031, IPC timeout).
  It is never resent automatically: it is looked up at the broker by its client order id.
- `OrderRejected`: the broker answered with a final retcode; nothing executed.
- `BrokerFault`: the terminal answered nothing (None) yet reports no error: a broker/package fault,
  not a reason to reconnect.
- `BadBrokerData`: the terminal answered a record its schema refuses (bot.gateway.schema); the
  record was quarantined. For a quote or bars the engine skips that symbol for the cycle.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every gateway failure; `kind` is the label used in metrics and logs."""

    kind = "error"


class BrokerUnavailable(GatewayError):
    kind = "unavailable"


class ConnectionLost(GatewayError):
    kind = "connection_lost"


class OutcomeUnknown(GatewayError):
    kind = "outcome_unknown"


class OrderRejected(GatewayError):
    kind = "rejected"

    def __init__(self, retcode: int, message: str):
        super().__init__(f"order rejected: retcode {retcode} ({message})")
        self.retcode = retcode
        self.message = message


class WatchOnlyRefused(OrderRejected):
    """Watch-only account (TRADING=off): the gateway refuses every order before it leaves the process.

    An OrderRejected (never retried, never "outcome unknown"); counted as
    tradewatch_broker_errors_total{call="order_send",kind="watch_only"}.
    """

    kind = "watch_only"

    def __init__(self, message: str = "watch-only account (TRADING=off): orders are never sent"):
        GatewayError.__init__(self, message)
        self.retcode = 0
        self.message = message


class BrokerFault(GatewayError):
    kind = "broker_fault"


class BadBrokerData(GatewayError):
    kind = "bad_data"

    def __init__(self, record_kind: str, key: str, reason: str, detail: str):
        super().__init__(f"{record_kind} {key} refused ({reason}): {detail}")
        self.record_kind = record_kind
        self.key = key
        self.reason = reason


class TradingDisabled(GatewayError):
    """The terminal refuses algorithmic trading (order_send None with -8): a configuration fault.

    Nothing was sent; sending again cannot help until a person changes the terminal's settings,
    so new orders halt with this message instead of being treated as an unknown outcome.
    """

    kind = "trading_disabled"


class NotExpressible(GatewayError):
    """The request cannot be put to the broker as asked (volume or price off the symbol's grid).

    Raised before anything is sent: nothing left the process. `reason` is a short label for
    the skipped-orders metric (volume_below_min, tick_size_unknown, volume_step_unknown, no_filling).
    """

    kind = "not_expressible"

    def __init__(self, message: str, reason: str = "not_expressible"):
        super().__init__(message)
        self.reason = reason
