"""Which strategy owns each open position, as one map per cycle.

Why: a strategy only closes or adds to its own positions, and the owner is the trade's
strategy in the store.  Reading the open trades for every non-HOLD signal cost a store query
each; the map is read once, and only in a cycle that needs it (most cycles only HOLD), and a
position an order of this cycle opened is added as it appears, before the books record its trade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..gateway import Position
from .orders import client_order_id_from


class Ownership:
    """`load()` gives (ticket, strategy) of the open trades in the store; `reset()` starts a cycle."""

    def __init__(self, load: Callable[[], Iterable[tuple[int, str | None]]]) -> None:
        self._load = load
        self._owners: dict[int, str | None] | None = None
        self._opened: dict[str, str] = {}  # client order id -> strategy, of this cycle's opening orders
        self._tickets: dict[int, str] = {}  # broker ticket -> strategy, of this cycle's opening orders

    def reset(self) -> None:
        self._owners = None
        self._opened.clear()
        self._tickets.clear()

    def owners(self) -> dict[int, str | None]:
        if self._owners is None:
            self._owners = dict(self._load())
            for ticket, strategy in self._tickets.items():
                if self._owners.get(ticket) is None:
                    self._owners[ticket] = strategy
        return self._owners

    def of(self, positions: list[Position], symbol: str, strategy: str) -> list[Position]:
        """The positions on `symbol` that `strategy` owns (the store is not asked when none is on it)."""
        on_symbol = [p for p in positions if p.symbol == symbol]
        if not on_symbol:
            return []
        owners = self.owners()
        self._adopt(on_symbol)
        return [p for p in on_symbol if owners.get(p.ticket) == strategy]

    def opened(self, client_order_id: str, strategy: str, ticket: int | None) -> None:
        """An opening order of this cycle was sent: its position belongs to `strategy` once seen."""
        self._opened[client_order_id] = strategy
        if ticket is None:
            return
        self._tickets[ticket] = strategy
        if self._owners is not None and self._owners.get(ticket) is None:
            self._owners[ticket] = strategy

    def _adopt(self, positions: list[Position]) -> None:
        if not self._opened:
            return
        owners = self.owners()
        for p in positions:
            if owners.get(p.ticket) is None and (strategy := self._opened.get(client_order_id_from(p.comment) or "")):
                owners[p.ticket] = strategy
