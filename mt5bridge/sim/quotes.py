"""A terminal's view of prices: the seeded paths, plus test-only pinned quotes.

Pinning (``SimTerminal.set_price``) exists so tests can force exact prices for hand-computed
P&L; a pinned symbol quotes the pinned bid/ask from that moment on, for ticks, fills, SL/TP and
valuation. Bars keep following the seeded path.
"""

import numpy as np

from .pricepath import PricePath, price_path
from .symbols import SymbolSpec


class Quotes:
    """Prices of one broker's symbols (``symbols``: the profile's table, by broker name)."""

    def __init__(self, seed: int, symbols: dict[str, SymbolSpec]):
        self.specs = symbols
        self._paths: dict[str, PricePath] = {name: price_path(seed, spec) for name, spec in symbols.items()}
        self._pins: dict[str, tuple[int, int]] = {}

    def spec(self, symbol: str) -> SymbolSpec:
        return self.specs[symbol]

    def path(self, symbol: str) -> PricePath:
        return self._paths[symbol]

    def quote(self, symbol: str, k: int) -> tuple[int, int]:
        """(bid, ask) in points at tick ``k``."""
        pinned = self._pins.get(symbol)
        return pinned if pinned is not None else self._paths[symbol].tick(k)

    def is_pinned(self, symbol: str) -> bool:
        return symbol in self._pins

    def window(self, symbol: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(bid, ask) arrays for ticks ``first..last`` within one trading day."""
        pinned = self._pins.get(symbol)
        if pinned is None:
            return self._paths[symbol].window(first, last)
        size = last - first + 1
        return np.full(size, pinned[0]), np.full(size, pinned[1])

    def pin(self, symbol: str, bid: int, ask: int) -> None:
        self._pins[symbol] = (bid, ask)

    def unpin(self, symbol: str) -> None:
        self._pins.pop(symbol, None)
