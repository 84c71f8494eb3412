"""A terminal's view of prices: the seeded paths, plus test-only pinned quotes.

Pinning (``SimTerminal.set_price``) exists so tests can force exact prices for hand-computed
P&L; a pinned symbol quotes the pinned bid/ask from that moment on, for ticks, fills, SL/TP and
valuation. Bars keep following the seeded path.
"""

import numpy as np

from .pricepath import PricePath, price_path
from .sessions import FULL_SESSIONS, last_open, open_mask
from .symbols import SymbolSpec
from .tradingtime import tick_epoch, tick_index


class Quotes:
    """Prices of one broker's symbols (``symbols``: the profile's table, by broker name)."""

    def __init__(self, seed: int, symbols: dict[str, SymbolSpec]):
        self.specs = symbols
        self._paths: dict[str, PricePath] = {name: price_path(seed, spec) for name, spec in symbols.items()}
        self._pins: dict[str, tuple[int, int]] = {}
        #: Symbols quoted on every tick (no quote break), whose current tick is always ``k`` itself.
        self._always = frozenset(
            name for name, spec in symbols.items() if not spec.quote_sessions or spec.quote_sessions == FULL_SESSIONS
        )

    def spec(self, symbol: str) -> SymbolSpec:
        return self.specs[symbol]

    def path(self, symbol: str) -> PricePath:
        return self._paths[symbol]

    def quote_k(self, symbol: str, k: int) -> int:
        """The tick that is the current quote at ``k``: outside the symbol's quote sessions (a
        metal's daily break) the last quote before the break stands, as on a real server."""
        if symbol in self._always:
            return k
        sessions = self.specs[symbol].quote_sessions
        epoch = tick_epoch(k)
        last = last_open(sessions, epoch)
        return k if last is None or last == epoch else tick_index(last)

    def reopens(self, symbol: str, k: int) -> bool:
        """True for the first tick after a quote break, where the price may have jumped."""
        return k > 0 and self.quote_k(symbol, k) == k and self.quote_k(symbol, k - 1) != k - 1

    def quote(self, symbol: str, k: int) -> tuple[int, int]:
        """(bid, ask) in points at tick ``k``."""
        pinned = self._pins.get(symbol)
        if pinned is not None:
            return pinned
        return self._paths[symbol].tick(k if symbol in self._always else self.quote_k(symbol, k))

    def pinned(self) -> tuple[tuple[str, tuple[int, int]], ...]:
        """Every pinned quote, (symbol, (bid, ask)) in pinning order: what a valuation depends on besides k."""
        return tuple(self._pins.items())

    def is_pinned(self, symbol: str) -> bool:
        return symbol in self._pins

    def window(self, symbol: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(bid, ask) arrays for ticks ``first..last`` within one trading day."""
        pinned = self._pins.get(symbol)
        if pinned is None:
            bid, ask = self._paths[symbol].window(first, last)
            if symbol in self._always:
                return bid, ask
            sessions = self.specs[symbol].quote_sessions
            index = np.where(open_mask(sessions, tick_epoch(first), last - first + 1), np.arange(bid.size), -1)
            index = np.maximum.accumulate(index)
            if index.min() >= 0:
                return bid[index], ask[index]
            head_bid, head_ask = self.quote(symbol, first)  # closed since before the window
            return np.where(index >= 0, bid[index], head_bid), np.where(index >= 0, ask[index], head_ask)
        size = last - first + 1
        return np.full(size, pinned[0]), np.full(size, pinned[1])

    def pin(self, symbol: str, bid: int, ask: int) -> None:
        self._pins[symbol] = (bid, ask)

    def unpin(self, symbol: str) -> None:
        self._pins.pop(symbol, None)
