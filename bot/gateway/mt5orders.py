"""Orders through the gateway: order_send with the symbol's filling mode (one retry on 10030), and
order_check / order_calc_margin before a send.

A mixin of `bot.gateway.mt5api.Mt5ApiGateway` (whose calls, guard and symbol specs it uses), kept
apart so that module stays the call machinery and the reads.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from mt5bridge import constants as mt5

from . import convert, margin
from .errors import BrokerUnavailable, GatewayError, OrderRejected, OutcomeUnknown, WatchOnlyRefused
from .filling import NAMES as FILLING_NAMES
from .filling import next_filling
from .ordersend import market_request
from .types import OrderCheck, OrderRequest, OrderResult, SymbolSpec

log = logging.getLogger("bot.gateway")

FILLED = {mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_DONE_PARTIAL, mt5.TRADE_RETCODE_PLACED}
REQUOTED = {mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_PRICE_CHANGED, mt5.TRADE_RETCODE_PRICE_OFF}


class OrderCalls:
    """Gateway methods that send or check orders (mixed into Mt5ApiGateway)."""


    def order_send(self, request: OrderRequest) -> OrderResult:
        """Send once with the filling mode the symbol allows; on 10030 re-read it and retry once.

        10030 (invalid filling) means nothing executed, so the one retry carries the same comment
        (the same client order id) with the next allowed mode: at most one order can result.
        """
        if not self.trading:
            error = WatchOnlyRefused()
            self._observe("order_send", 0.0, error)
            log.error("order refused at the gateway: %s", error, extra={"gateway": self.name, "symbol": request.symbol})
            raise error
        self._reads.forget()  # the account changes with the order
        self.read_ahead.forget()
        spec = self._order_spec(request.symbol)
        payload = market_request(request, spec)
        result = self._call("order_send", payload)
        if int(result.get("retcode", 0)) == mt5.TRADE_RETCODE_INVALID_FILL:
            tried = payload["type_filling"]
            fresh = self._order_spec(request.symbol, refresh=True)
            retry = next_filling(fresh.exemode, fresh.filling_bits, {tried})
            if retry is not None:
                log.info("order %s: filling %s refused (10030), retrying once with %s", request.comment,
                         FILLING_NAMES.get(tried, tried), FILLING_NAMES.get(retry, retry),
                         extra={"symbol": request.symbol, "filling": FILLING_NAMES.get(retry, retry)})
                result = self._call("order_send", dict(payload, type_filling=retry))
        retcode = int(result.get("retcode", 0))
        if retcode in mt5.OUTCOME_UNKNOWN_RETCODES:
            raise OutcomeUnknown(f"order_send: retcode {retcode} ({result.get('comment', '')})")
        if retcode not in FILLED:
            raise OrderRejected(retcode, str(result.get("comment", "")))
        problem = self.guard.judge("order_result", result, "order_send")
        if problem is not None:  # it may have executed: looked up at the broker, never resent
            raise OutcomeUnknown(f"order_send: reply refused ({problem.reason}): {problem.detail}")
        digits = self._digits_of(request.symbol)
        return OrderResult(
            retcode=retcode,
            order=int(result.get("order", 0)),
            deal=int(result.get("deal", 0)),
            volume=convert.volume(result.get("volume", 0)),
            price=convert.price(result.get("price", 0), digits),
            comment=str(result.get("comment", "")),
        )

    def _order_spec(self, symbol: str, refresh: bool = False) -> SymbolSpec:
        """The symbol's rules for an order; a failed read means the order was certainly not sent."""
        if not refresh and symbol in self._specs:
            return self._specs[symbol]
        try:
            return self.symbol(symbol)
        except GatewayError as exc:
            raise BrokerUnavailable(f"order_send: not sent, cannot read {symbol}: {exc}") from None

    # -- before a send (bot.gateway.margin; the risk guard asks) ------------------------------

    def order_check(self, request: OrderRequest) -> OrderCheck:
        """The request order_send would send (the symbol's grid and filling mode), checked, not sent."""
        return margin.order_check(self._call, market_request(request, self._order_spec(request.symbol)))

    def order_calc_margin(self, side: str, symbol: str, volume, price) -> Decimal:
        return margin.order_calc_margin(self._call, side, symbol, volume, price)


def outcome_word(call: str, result: Any, error: GatewayError | None) -> str:
    """"ok" / "failed", and for order_send what the broker's retcode says (a requote is no "ok")."""
    if error is not None:
        return "failed"
    if call != "order_send" or not isinstance(result, dict):
        return "ok"
    retcode = result.get("retcode")
    if retcode in FILLED:
        return "ok"
    if retcode in REQUOTED:
        return f"requoted (retcode {retcode})"
    if retcode in mt5.OUTCOME_UNKNOWN_RETCODES:
        return f"outcome unknown (retcode {retcode})"
    return f"rejected (retcode {retcode})"
