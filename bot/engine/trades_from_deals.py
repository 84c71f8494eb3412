"""Trades derived from one position's broker deals: IN, OUT, INOUT and OUT_BY, partial closes, reversals.

Why a trade is not simply "a position": on a netting account (one position per symbol) an
opposite deal larger than the position closes it and opens the rest the other way in ONE
``DEAL_ENTRY_INOUT`` deal, and the position keeps its identifier. A trader (and the broker's
positions history) sees two trades there: the one the INOUT closed and the one it opened. So the
deals of one position identifier are cut into segments:

- the first segment starts at the first IN deal and is keyed by the position identifier (the
  opening order's ticket, which is also the position ticket MT5 reports);
- IN deals on the same side add to the open segment (netting), OUT / OUT_BY deals reduce it
  (a partial close leaves it open), and it is closed once its volume is back to zero;
- an INOUT deal closes the open segment and starts the next one with the remainder, keyed by
  the INOUT deal's order ticket (the ticket the reversed position carries at the broker).

The INOUT deal's commission is shared between the two segments by volume (to the cent, the rest
to the new one), so the segments' net profits add up to the broker's deals exactly. On a hedging
account there is no INOUT and every position is one segment. Pure functions, no broker calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from db.vocabulary import CLOSE_REASONS as STORED_CLOSE_REASONS
from mt5bridge import constants as mt5

from ..gateway import Deal

CENT = Decimal("0.01")

#: DEAL_REASON_* of the deal that closed a trade -> the close reason stored in logs and /status.
CLOSE_REASONS = {
    mt5.DEAL_REASON_CLIENT: "manual",
    mt5.DEAL_REASON_MOBILE: "manual",
    mt5.DEAL_REASON_WEB: "manual",
    mt5.DEAL_REASON_EXPERT: "expert",
    mt5.DEAL_REASON_SL: "stop_loss",
    mt5.DEAL_REASON_TP: "take_profit",
    mt5.DEAL_REASON_SO: "stop_out",
    mt5.DEAL_REASON_ROLLOVER: "rollover",
    mt5.DEAL_REASON_VMARGIN: "variation_margin",
    mt5.DEAL_REASON_SPLIT: "split",
}
STOP_OUT = "stop_out"
_EXITS = (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY)


def close_reason(reason: int) -> str:
    return CLOSE_REASONS.get(int(reason), f"reason_{int(reason)}")


def stored_close_reason(reason: str | None) -> str | None:
    """A close reason as `trades.close_reason` keeps it: one MT5 adds later is 'other' there."""
    if reason is None:
        return None
    return reason if reason in STORED_CLOSE_REASONS else "other"


def direction(deal_type: int) -> str:
    return "BUY" if deal_type == mt5.DEAL_TYPE_BUY else "SELL"


@dataclass
class Segment:
    """One trade: from the deal that opened it to the deal that brought its volume back to zero."""

    ticket: int
    position_id: int
    symbol: str
    direction: str
    entry_deal: Deal  # the IN (or INOUT) deal that opened it: its comment names our order
    entry_time: datetime
    volume: Decimal = Decimal(0)  # every volume that went in
    open_volume: Decimal = Decimal(0)
    entry_value: Decimal = Decimal(0)  # sum of price * volume in
    exit_volume: Decimal = Decimal(0)
    exit_value: Decimal = Decimal(0)
    exit_time: datetime | None = None
    gross_profit: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    swap: Decimal = Decimal(0)
    closed: bool = False
    reason: str | None = None  # close reason: that of its last exit deal
    stop_outs: list[int] = field(default_factory=list)  # tickets of its DEAL_REASON_SO exit deals

    def entry_price(self, digits: int) -> Decimal:
        return (self.entry_value / self.volume).quantize(Decimal(1).scaleb(-digits))

    def exit_price(self, digits: int) -> Decimal:
        return (self.exit_value / self.exit_volume).quantize(Decimal(1).scaleb(-digits))

    @property
    def net_profit(self) -> Decimal:
        return self.gross_profit + self.commission + self.swap

    def _take_in(self, volume: Decimal, price: Decimal, commission: Decimal) -> None:
        self.volume += volume
        self.open_volume += volume
        self.entry_value += price * volume
        self.commission += commission

    def _take_out(self, deal: Deal, volume: Decimal, profit: Decimal, commission: Decimal, swap: Decimal) -> None:
        self.exit_volume += volume
        self.exit_value += deal.price * volume
        self.exit_time = deal.time
        self.gross_profit += profit
        self.commission += commission
        self.swap += swap
        self.open_volume -= volume
        if deal.reason == mt5.DEAL_REASON_SO:
            self.stop_outs.append(deal.ticket)
        self.reason = close_reason(deal.reason)  # the last exit deal's reason is the trade's close reason
        if self.open_volume <= 0:
            self.closed = True


def segments(deals: list[Deal]) -> list[Segment]:
    """The trades of one position identifier's deals (any order; sorted by time, then ticket)."""
    out: list[Segment] = []
    current: Segment | None = None
    for deal in sorted(deals, key=lambda d: (d.time, d.ticket)):
        if deal.entry == mt5.DEAL_ENTRY_IN:
            if current is None:
                current = _start(deal, deal.position_id or deal.order, deal.volume, deal.commission)
                out.append(current)
            else:
                current._take_in(deal.volume, deal.price, deal.commission)
                current.swap += deal.swap
        elif deal.entry in _EXITS and current is not None:
            current._take_out(deal, min(deal.volume, current.open_volume), deal.profit, deal.commission, deal.swap)
            if current.closed:
                current = None
        elif deal.entry == mt5.DEAL_ENTRY_INOUT and current is not None:
            closing = current.open_volume
            share = (deal.commission * closing / deal.volume).quantize(CENT) if deal.volume else deal.commission
            current._take_out(deal, closing, deal.profit, share, deal.swap)
            current = None
            rest = deal.volume - closing
            if rest > 0:
                current = _start(deal, deal.order, rest, deal.commission - share)
                out.append(current)
    return out


def _start(deal: Deal, ticket: int, volume: Decimal, commission: Decimal) -> Segment:
    segment = Segment(ticket=ticket, position_id=deal.position_id, symbol=deal.symbol,
                      direction=direction(deal.type), entry_deal=deal, entry_time=deal.time)
    segment._take_in(volume, deal.price, commission)
    return segment
