"""Stop-out: the server closes positions when the margin level falls below ``stop_out``.

Most servers close the position with the largest loss first, re-check, and go on until the
level is back above stop-out (or nothing is left); deals carry ``DEAL_REASON_SO`` and a comment
like MT5's ``[so 29.52%/2952.10/10000.00]`` (level, equity, margin). Detection scans the tick
path with floats (numpy, one trading day at a time) for the first candidate tick; the decision
at that tick is taken again exactly, in Decimal, so the books never depend on float rounding.
"""

from decimal import Decimal

import numpy as np

from . import money
from .book import Position
from .booking import is_long


def level_path(broker, first: int, last: int) -> np.ndarray | None:
    """Approximate margin level (percent) per tick ``first..last`` with the open positions."""
    positions = list(broker.books.positions.values())
    margin = broker.margin(first)
    if not positions or margin <= 0:
        return None
    equity = np.full(last - first + 1, float(broker.books.balance))
    for position in positions:
        equity += float(position.swap) + _profit_path(broker, position, first, last)
    return equity / float(margin) * 100.0


def _profit_path(broker, position: Position, first: int, last: int) -> np.ndarray:
    spec = broker.quotes.spec(position.symbol)
    bid, ask = broker.quotes.window(position.symbol, first, last)
    long = is_long(position)
    current = (bid if long else ask).astype(float)
    move = (current - position.price_open) if long else (position.price_open - current)  # points
    if spec.base == broker.converter.currency != spec.quote:  # converted at its own price, tick by tick
        return move / spec.scale * float(spec.contract_size) * float(position.volume) / (current / spec.scale)
    rate = broker.converter.profit_rate(spec, first, spec.to_price(int(current[0])))
    return move * float(money.tick_value(spec, rate)) * float(position.volume)


def worst_first(broker, k: int) -> list[Position]:
    """Open positions, largest floating loss first (ties: oldest ticket first)."""
    return sorted(broker.books.positions.values(), key=lambda p: (broker.valuation(p, k)[0], p.ticket))


def below(broker, k: int) -> bool:
    state = broker.account(k)
    return state.margin > 0 and state.margin_level < Decimal(str(broker.account_spec.stop_out))
