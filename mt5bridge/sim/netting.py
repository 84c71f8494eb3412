"""Netting accounts: one position per symbol, and what an order does to it.

On a netting server (``ACCOUNT_MARGIN_MODE_RETAIL_NETTING``) an order on a symbol with an open
position is netted against it: same side grows it (IN), opposite side reduces or closes it
(OUT), and an opposite order larger than the position closes it and opens the remainder the
other way in one deal (INOUT). A request's ``position`` ticket is optional; if given it must be
the symbol's position and the volume may not exceed it (a plain close).
"""

from decimal import Decimal

from .book import Books, Position
from .booking import Fill, Ledger, Origin, is_long

#: Names of the four outcomes, for logs and tests.
OPEN, ADD, REDUCE, REVERSE = "open", "add", "reduce", "reverse"


def position_of(books: Books, symbol: str) -> Position | None:
    for position in books.positions.values():
        if position.symbol == symbol:
            return position
    return None


def outcome(position: Position | None, is_buy: bool, volume: Decimal) -> str:
    if position is None:
        return OPEN
    if is_long(position) == is_buy:
        return ADD
    return REDUCE if volume <= position.volume else REVERSE


def apply(ledger: Ledger, symbol: str, is_buy: bool, volume: Decimal, price: int, origin: Origin) -> Fill:
    position = position_of(ledger.books, symbol)
    kind = outcome(position, is_buy, volume)
    if kind == OPEN:
        return ledger.open(symbol, is_buy, volume, price, origin)
    if kind == ADD:
        return ledger.add(position, volume, price, origin)
    if kind == REDUCE:
        return ledger.close(position, volume, price, origin)
    return ledger.reverse(position, volume, price, origin)
