"""Booking deals: every fill becomes one history order and one deal, and moves the balance.

The ledger knows nothing of why a deal happens (an expert's request, SL/TP, stop-out, a netting
reversal); the caller says it with an ``Origin``. Profit is converted to the account currency at
the moment of the deal (``conversion``); commission per lot is charged on IN, OUT and INOUT deals.
"""

from dataclasses import dataclass
from decimal import Decimal

from mt5bridge.constants import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_INOUT,
    DEAL_ENTRY_OUT,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_STATE_FILLED,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    POSITION_REASON_EXPERT,
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
)

from . import money
from .book import Books, Deal, HistoryOrder, Position
from .conversion import Converter
from .quotes import Quotes


@dataclass(frozen=True)
class Fill:
    order: int
    deal: int
    volume: Decimal
    price: int


@dataclass(frozen=True)
class Origin:
    """Who asked for a deal and under which rules."""

    k: int  # tick index of the deal (for currency conversion)
    time_msc: int  # server time
    magic: int
    comment: str
    deal_reason: int
    order_reason: int
    filling: int
    type_time: int
    request_price: int  # the order's price_open as requested (0: the fill price)
    sl: int = 0
    tp: int = 0


def is_long(position: Position) -> bool:
    return position.type == POSITION_TYPE_BUY


class Ledger:
    def __init__(self, books: Books, quotes: Quotes, converter: Converter):
        self.books = books
        self.quotes = quotes
        self.converter = converter

    def profit(self, position: Position, volume: Decimal, price: int, k: int) -> Decimal:
        """Profit in account currency of closing ``volume`` of ``position`` at ``price``."""
        spec = self.quotes.spec(position.symbol)
        close = spec.to_price(price)
        rate = self.converter.profit_rate(spec, k, close)
        return money.profit(spec, is_long(position), volume, spec.to_price(position.price_open), close, rate)

    def _record(self, symbol, is_buy, volume, price, entry, position_id, origin, profit, swap) -> Fill:
        books = self.books
        spec = self.quotes.spec(symbol)
        ticket, deal_ticket = books.take_order_ticket(), books.take_deal_ticket()
        position_id = position_id or ticket
        commission = money.commission(spec, volume)
        books.orders.append(
            HistoryOrder(
                ticket=ticket,
                symbol=symbol,
                type=ORDER_TYPE_BUY if is_buy else ORDER_TYPE_SELL,
                type_filling=origin.filling,
                type_time=origin.type_time,
                state=ORDER_STATE_FILLED,
                magic=origin.magic,
                position_id=position_id,
                reason=origin.order_reason,
                volume=volume,
                price_open=origin.request_price or price,
                price_current=price,
                sl=origin.sl,
                tp=origin.tp,
                time_setup_msc=origin.time_msc,
                time_done_msc=origin.time_msc,
                comment=origin.comment,
            )
        )
        books.deals.append(
            Deal(
                ticket=deal_ticket,
                order=ticket,
                time_msc=origin.time_msc,
                type=DEAL_TYPE_BUY if is_buy else DEAL_TYPE_SELL,
                entry=entry,
                magic=origin.magic,
                position_id=position_id,
                reason=origin.deal_reason,
                volume=volume,
                price=price,
                commission=commission,
                swap=swap,
                profit=profit,
                symbol=symbol,
                comment=origin.comment,
            )
        )
        books.balance += profit + commission + swap
        return Fill(ticket, deal_ticket, volume, price)

    def open(self, symbol: str, is_buy: bool, volume: Decimal, price: int, origin: Origin) -> Fill:
        """A new position (IN deal) whose ticket is the order's."""
        fill = self._record(symbol, is_buy, volume, price, DEAL_ENTRY_IN, 0, origin, Decimal(0), Decimal(0))
        self.books.positions[fill.order] = Position(
            ticket=fill.order,
            symbol=symbol,
            type=ORDER_TYPE_BUY if is_buy else ORDER_TYPE_SELL,
            volume=volume,
            price_open=price,
            sl=origin.sl,
            tp=origin.tp,
            time_msc=origin.time_msc,
            time_update_msc=origin.time_msc,
            magic=origin.magic,
            comment=origin.comment,
            reason=POSITION_REASON_EXPERT,
        )
        return fill

    def close(self, position: Position, volume: Decimal, price: int, origin: Origin) -> Fill:
        """Close ``volume`` of ``position`` (OUT deal, opposite side); the rest stays open."""
        profit = self.profit(position, volume, price, origin.k)
        swap = position.swap if volume == position.volume else money.cents(position.swap * volume / position.volume)
        fill = self._record(
            position.symbol, not is_long(position), volume, price, DEAL_ENTRY_OUT, position.position_id,
            origin, profit, swap,
        )  # fmt: skip
        position.swap -= swap
        position.volume -= volume
        position.time_update_msc = origin.time_msc
        if position.volume == 0:
            del self.books.positions[position.ticket]
        return fill

    def add(self, position: Position, volume: Decimal, price: int, origin: Origin) -> Fill:
        """Netting: a same-side deal grows the position (IN); its price becomes the volume-weighted
        average, kept in whole points like every sim price."""
        fill = self._record(
            position.symbol, is_long(position), volume, price, DEAL_ENTRY_IN, position.position_id,
            origin, Decimal(0), Decimal(0),
        )  # fmt: skip
        total = position.volume + volume
        average = (position.price_open * position.volume + price * volume) / total
        position.price_open = int(average.to_integral_value())
        position.volume = total
        position.time_update_msc = origin.time_msc
        if origin.sl or origin.tp:
            position.sl, position.tp = origin.sl, origin.tp
        return fill

    def reverse(self, position: Position, volume: Decimal, price: int, origin: Origin) -> Fill:
        """Netting: an opposite deal larger than the position closes it and opens the rest the
        other way, in one INOUT deal. The position keeps its identifier; its ticket becomes the
        reversing order's, as on a real netting server."""
        closed = position.volume
        profit = self.profit(position, closed, price, origin.k)
        fill = self._record(
            position.symbol, not is_long(position), volume, price, DEAL_ENTRY_INOUT, position.position_id,
            origin, profit, position.swap,
        )  # fmt: skip
        del self.books.positions[position.ticket]
        identifier = position.position_id
        position.ticket = fill.order
        position.identifier = identifier
        position.type = POSITION_TYPE_SELL if is_long(position) else POSITION_TYPE_BUY
        position.volume = volume - closed
        position.price_open = price
        position.swap = Decimal(0)
        position.sl, position.tp = origin.sl, origin.tp
        position.time_msc = position.time_update_msc = origin.time_msc
        position.magic, position.comment = origin.magic, origin.comment
        self.books.positions[position.ticket] = position
        return fill
