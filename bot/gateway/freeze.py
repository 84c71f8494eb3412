"""The freeze level: a position whose SL or TP is within `trade_freeze_level` points of the market
cannot be closed or changed (the broker answers 10029, TRADE_RETCODE_FROZEN).

The bot knows this from the symbol's specification and the quote it decided on, so such a close is
never sent: it is skipped for the cycle (NotExpressible, reason "freeze_level", counted on
tradewatch_orders_skipped_total like the other orders the grid cannot express) and decided again
on a later cycle - usually the SL or TP, being that near, has closed the position by then.

The rule is the server's (and mt5bridge.sim.broker `_check_freeze`, which mirrors it): distances
are measured from the price the SL/TP triggers on - Bid for a long, Ask for a short - and a
distance of exactly the freeze level is allowed. Distances are compared as prices (points times
`point`), exact in Decimal since prices and stops sit on the symbol's grid.
"""

from __future__ import annotations

from decimal import Decimal

from .errors import NotExpressible
from .types import Position, Quote, SymbolSpec

REASON = "freeze_level"


def frozen_by(spec: SymbolSpec, position: Position, bid: Decimal, ask: Decimal) -> str | None:
    """Which of the position's stops ("SL" / "TP") freezes it at this quote, or None: free to close."""
    if not spec.freeze_level:
        return None
    freeze = spec.point * spec.freeze_level
    if position.direction == "BUY":  # a long's SL and TP trigger on the Bid
        distances = {"SL": bid - position.sl if position.sl else None,
                     "TP": position.tp - bid if position.tp else None}
    else:  # a short's trigger on the Ask
        distances = {"SL": position.sl - ask if position.sl else None,
                     "TP": ask - position.tp if position.tp else None}
    return next((name for name, distance in distances.items() if distance is not None and distance < freeze), None)


def check_close(spec: SymbolSpec, position: Position, quote: Quote) -> None:
    """Raise NotExpressible (reason "freeze_level") when closing `position` now would be refused 10029."""
    stop = frozen_by(spec, position, quote.bid, quote.ask)
    if stop is not None:
        level = position.sl if stop == "SL" else position.tp
        raise NotExpressible(
            f"{spec.name}: position {position.ticket} not closed this cycle: its {stop} {level} is within the "
            f"freeze level ({spec.freeze_level} points) of the market (bid {quote.bid}, ask {quote.ask})", REASON)
