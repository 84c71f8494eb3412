"""Depth of Market: which symbols have an open book (market_book_add/release) and what it shows.

The book is synthetic: retail forex brokers mostly stream no real depth, so ``market_book_get``
returns a plausible ladder around the current quote (``BOOK_LEVELS`` each side, one spread
apart, sizes growing away from the touch), sells first from the highest price, then buys from
the highest price, as the real package orders them.
"""

from mt5bridge.constants import BOOK_TYPE_BUY, BOOK_TYPE_SELL

from .records import BookInfo
from .symbols import SymbolSpec

BOOK_LEVELS = 5


class BookSubscriptions:
    """The symbols with an open Depth of Market (market_book_add until market_book_release)."""

    def __init__(self) -> None:
        self._open: set[str] = set()

    def add(self, symbol: str) -> bool:
        self._open.add(symbol)
        return True

    def release(self, symbol: str) -> bool:
        if symbol not in self._open:
            return False
        self._open.discard(symbol)
        return True

    def is_open(self, symbol: str) -> bool:
        return symbol in self._open


def book_view(spec: SymbolSpec, bid: int, ask: int) -> tuple:
    """A synthetic depth ladder around ``bid``/``ask`` (integer points)."""
    step = max(1, ask - bid)
    unit = float(spec.volume_min) * 100  # one "standard" clip, e.g. 1 lot for a 0.01-lot symbol
    sells = [
        BookInfo(
            type=BOOK_TYPE_SELL,
            price=spec.to_float(ask + level * step),
            volume=int(unit * (level + 1)),
            volume_dbl=unit * (level + 1),
        )
        for level in reversed(range(BOOK_LEVELS))
    ]
    buys = [
        BookInfo(
            type=BOOK_TYPE_BUY,
            price=spec.to_float(bid - level * step),
            volume=int(unit * (level + 1)),
            volume_dbl=unit * (level + 1),
        )
        for level in range(BOOK_LEVELS)
    ]
    return tuple(sells + buys)
