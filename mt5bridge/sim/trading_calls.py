"""The simulated terminal's trading calls: order_calc_margin/profit, order_check and order_send, with the
real package's argument checks and failure style (a mixin of SimTerminal, whose broker and state they use)."""

import logging
from collections.abc import Mapping
from decimal import Decimal

from mt5bridge.constants import (
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_RETCODE_DONE,
)

from . import money
from .apicall import INVALID_PARAMS as _INVALID_PARAMS
from .apicall import TRADEAPI_DISABLED as _TRADEAPI_DISABLED
from .apicall import ApiError as _ApiError
from .apicall import ReplyAfter as _ReplyAfter
from .apicall import amount as _amount
from .apicall import api as _api
from .orderrequest import Rejected, echo, parse
from .records import OrderCheckResult, OrderSendResult

log = logging.getLogger("mt5bridge.sim.terminal")  # the terminal's own log, as before the split


class TradingCalls:
    """SimTerminal's MT5 trading calls (mixed into SimTerminal)."""

    # ================================================================ trading
    @_api()
    def order_calc_margin(self, action, symbol, volume, price):
        spec = self._symbols[self._known_symbol(symbol)]
        if action not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            raise _ApiError(_INVALID_PARAMS)
        at = _amount(price)
        rate = self._broker.converter.margin_rate(spec, self._k, at)
        required = money.margin(spec, _amount(volume), at, self._leverage, rate)
        return float(money.cents(required))

    @_api()
    def order_calc_profit(self, action, symbol, volume, price_open, price_close):
        spec = self._symbols[self._known_symbol(symbol)]
        if action not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            raise _ApiError(_INVALID_PARAMS)
        opened, closed = _amount(price_open), _amount(price_close)
        if closed == 0:
            raise _ApiError(_INVALID_PARAMS)
        rate = self._broker.converter.profit_rate(spec, self._k, closed)
        return float(money.profit(spec, action == ORDER_TYPE_BUY, _amount(volume), opened, closed, rate))

    @_api()
    def order_check(self, request) -> OrderCheckResult:
        if not isinstance(request, Mapping):
            raise _ApiError(_INVALID_PARAMS)
        request = dict(request)
        if not self._trading.tradeapi:
            raise _ApiError(_TRADEAPI_DISABLED)
        try:
            refusal = self._trading.refusal()
            if refusal is not None:
                raise Rejected(*refusal)
            parsed = parse(request, self._symbols)
            after, required = self._broker.check(parsed, self._server_now, self._k)
            retcode, comment = 0, "Done"
        except Rejected as rejected:
            after, required = self._broker.account(self._k), Decimal(0)
            retcode, comment = rejected.retcode, rejected.comment
        return OrderCheckResult(
            retcode=retcode,
            balance=float(after.balance),
            equity=float(after.equity),
            profit=float(after.profit),
            margin=float(required),
            margin_free=float(after.margin_free),
            margin_level=float(after.margin_level),
            comment=comment,
            request=echo(request),
        )

    @_api()
    def order_send(self, request):
        if not isinstance(request, Mapping):
            raise _ApiError(_INVALID_PARAMS)
        request = dict(request)
        if not self._trading.tradeapi:
            raise _ApiError(_TRADEAPI_DISABLED)  # the terminal refuses the Python API: None, -8
        books = self._broker.books
        request_id = books.take_request_id()
        self._broker.dirty = True
        bid = ask = 0
        spec = self._symbols.get(request.get("symbol")) if isinstance(request.get("symbol"), str) else None
        if spec is not None:
            bid, ask = self._quote(spec.name)

        def result(retcode, comment, deal=0, order=0, volume=0.0, price=0.0):
            return OrderSendResult(
                retcode=retcode,
                deal=deal,
                order=order,
                volume=volume,
                price=price,
                bid=spec.to_float(bid) if spec else 0.0,
                ask=spec.to_float(ask) if spec else 0.0,
                comment=comment,
                request_id=request_id,
                retcode_external=0,
                request=echo(request),
            )

        forced = self._faults.take_reject()
        if forced is not None:
            log.info("order_send rejected by fault injection with %d", forced)
            return result(forced, "Rejected (injected fault)")
        refusal = self._trading.refusal()
        if refusal is not None:
            log.info("order_send refused: %d %s", *refusal)
            return result(*refusal)
        timeout = self._faults.take_timeout()
        try:
            fill = self._broker.execute(parse(request, self._symbols), self._server_now, self._k, request_id)
        except Rejected as rejected:
            log.info("order_send rejected: %d %s", rejected.retcode, rejected.comment)
            reply = result(rejected.retcode, rejected.comment)
        else:
            if fill.order:
                log.info(
                    "order_send filled %s %s at %s (order %d, deal %d)",
                    request.get("symbol"),
                    fill.volume,
                    spec.to_price(fill.price),
                    fill.order,
                    fill.deal,
                )
            price = spec.to_float(fill.price) if fill.price else 0.0
            reply = result(
                TRADE_RETCODE_DONE, "Request executed", fill.deal, fill.order, float(fill.volume), price
            )
        return _ReplyAfter(timeout) if timeout is not None else reply
