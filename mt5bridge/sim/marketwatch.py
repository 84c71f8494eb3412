"""Market Watch and Depth of Market subscriptions: which symbols the terminal shows and streams.

A real terminal answers ``symbol_info_tick`` only for symbols in Market Watch (``symbol_select``
adds them), and refuses to hide a symbol that still has open positions or an open Depth of
Market. Brokers start accounts with some symbols hidden (broker profiles say which), so code that
forgets ``symbol_select`` fails here as it would at such a broker.

The book is synthetic: retail forex brokers mostly stream no real depth, so ``market_book_get``
returns a plausible ladder around the current quote (``BOOK_LEVELS`` each side, one spread
apart, sizes growing away from the touch), sells first from the highest price, then buys from
the highest price, as the real package orders them.
"""

from collections.abc import Iterable

from mt5bridge.constants import BOOK_TYPE_BUY, BOOK_TYPE_SELL

from .records import BookInfo
from .symbols import SymbolSpec

BOOK_LEVELS = 5


class MarketWatch:
    """The symbols shown in Market Watch and those with an open Depth of Market."""

    def __init__(self, symbols: Iterable[str], hidden: Iterable[str] = ()):
        self._selected = set(symbols) - set(hidden)
        self._books: set[str] = set()

    def is_selected(self, symbol: str) -> bool:
        return symbol in self._selected

    def select(self, symbol: str, enable: bool, has_positions: bool) -> bool:
        """MT5's symbol_select: hiding fails while positions or a book are open on the symbol."""
        if enable:
            self._selected.add(symbol)
            return True
        if has_positions or symbol in self._books:
            return False
        self._selected.discard(symbol)
        return True

    def book_add(self, symbol: str) -> bool:
        """Opening a book puts the symbol in Market Watch, as the terminal does."""
        self._selected.add(symbol)
        self._books.add(symbol)
        return True

    def book_release(self, symbol: str) -> bool:
        if symbol not in self._books:
            return False
        self._books.discard(symbol)
        return True

    def has_book(self, symbol: str) -> bool:
        return symbol in self._books


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
