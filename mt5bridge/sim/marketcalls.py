"""The terminal calls added for the stand-in: history by date, ticks and the Depth of Market.

SimTerminal exposes them through one hook, ``SimTerminal.market_call(name, *args)``, so the
terminal's own module stays the API facade it was and the logic lives here (``marketdata`` for
bars and ticks, ``marketbook`` for the book). Arguments arrive already type-checked by the
stand-in (``mt5bridge.sim.mt5module``); what is checked here is what only the terminal knows:
the symbol exists, the timeframe is served, counts are positive, a book was opened first.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mt5bridge.constants import RES_E_INVALID_PARAMS, RES_E_NOT_FOUND, TIMEFRAME_SECONDS

from . import marketdata
from .marketbook import BookSubscriptions, book_view
from .quotes import Quotes
from .symbols import SymbolSpec
from .tradingtime import to_epoch

NOT_FOUND = (RES_E_NOT_FOUND, "Terminal: Not found")
INVALID_PARAMS = (RES_E_INVALID_PARAMS, "Terminal: Invalid params")


class Unavailable(Exception):
    """The terminal refuses the call: return the failure value, last_error() is ``error``."""

    def __init__(self, error: tuple[int, str]):
        super().__init__(error[1])
        self.error = error


@dataclass(frozen=True)
class Market:
    """What these calls read from the terminal, as of one instant (tick ``k``)."""

    quotes: Quotes
    k: int
    symbols: Mapping[str, SymbolSpec]
    maxbars: int
    books: BookSubscriptions

    def symbol(self, symbol: Any) -> str:
        if not isinstance(symbol, str) or symbol not in self.symbols:
            raise Unavailable(NOT_FOUND)
        return symbol


def _int(value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise Unavailable(INVALID_PARAMS)
    return value


def _seconds(timeframe: Any) -> int:
    seconds = TIMEFRAME_SECONDS.get(timeframe) if isinstance(timeframe, int) else None
    if seconds is None:
        raise Unavailable(INVALID_PARAMS)
    return seconds


def _epoch(value: Any) -> float:
    try:
        epoch = to_epoch(value)
    except TypeError:
        raise Unavailable(INVALID_PARAMS) from None
    if not math.isfinite(epoch):
        raise Unavailable(INVALID_PARAMS)
    return epoch


def copy_rates_from(m: Market, symbol, timeframe, date_from, count):
    symbol, seconds = m.symbol(symbol), _seconds(timeframe)
    return marketdata.rates_from(m.quotes, symbol, seconds, _epoch(date_from), _int(count, 1), m.k, m.maxbars)


def copy_rates_range(m: Market, symbol, timeframe, date_from, date_to):
    symbol, seconds = m.symbol(symbol), _seconds(timeframe)
    return marketdata.rates_range(
        m.quotes, symbol, seconds, _epoch(date_from), _epoch(date_to), m.k, m.maxbars
    )


def copy_ticks_from(m: Market, symbol, date_from, count, flags):
    symbol = m.symbol(symbol)
    return marketdata.ticks_from(m.quotes, symbol, _epoch(date_from), _int(count, 1), _int(flags, -1), m.k)


def copy_ticks_range(m: Market, symbol, date_from, date_to, flags):
    symbol = m.symbol(symbol)
    return marketdata.ticks_range(m.quotes, symbol, _epoch(date_from), _epoch(date_to), _int(flags, -1), m.k)


def market_book_add(m: Market, symbol) -> bool:
    return m.books.add(m.symbol(symbol))


def market_book_release(m: Market, symbol) -> bool:
    if not m.books.release(m.symbol(symbol)):
        raise Unavailable(INVALID_PARAMS)  # no book was open
    return True


def market_book_get(m: Market, symbol) -> tuple:
    symbol = m.symbol(symbol)
    if not m.books.is_open(symbol):
        raise Unavailable(NOT_FOUND)  # market_book_add first
    return book_view(m.symbols[symbol], *m.quotes.quote(symbol, m.k))


CALLS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (
        copy_rates_from,
        copy_rates_range,
        copy_ticks_from,
        copy_ticks_range,
        market_book_add,
        market_book_release,
        market_book_get,
    )
}


def run(name: str, market: Market, args: tuple) -> Any:
    """Run call ``name`` (one of CALLS) on ``market``; raises Unavailable when it fails."""
    return CALLS[name](market, *args)
