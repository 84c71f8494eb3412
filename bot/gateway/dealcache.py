"""Deals already judged and converted, remembered by ticket and content: a deal never changes once made.

Why: the deal sync's window (an hour of overlap, bot.engine.books) and each position's deals come
back every time they are asked for, and judging (the guard's fingerprint and schema) and
converting (Decimals, UTC) every row again cost tens of microseconds a deal, each time.  A row
met again with the same ticket and the same content (the hash of its fields) under the same
server offset is the same Deal; anything else (new, changed, unhashable) goes the whole way, so
a changed record is judged afresh and the guard still sees a ticket conflict.  What a cached row
skips is a second judgement of content already accepted; only the context could differ (a symbol
the terminal stopped listing, a broker clock years on), which never makes a stored deal wrong.
Bounded (oldest forgotten first): a busy account simply goes the whole way for the rest.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .types import Deal

#: Deals remembered (a Deal is about 1.5 KB): more than an hour's window of a busy account.
SIZE = 1024


class DealCache:
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._rows: OrderedDict[int, tuple[int, Any, Deal]] = OrderedDict()  # ticket -> (content, stamp, deal)

    @staticmethod
    def content(row: dict) -> int | None:
        """The row's content key, or None when it cannot have one (then it is never cached)."""
        try:
            return hash(tuple(row.items()))
        except TypeError:  # an unhashable value: a hostile row, judged in full every time
            return None

    def get(self, row: dict, content: int | None, stamp: Any) -> Deal | None:
        """The Deal made from this very row under `stamp` (digits, server offset), or None."""
        if content is None or stamp is None:
            return None
        entry = self._rows.get(row.get("ticket"))
        if entry is None or entry[0] != content or entry[1] != stamp:
            return None
        return entry[2]

    def put(self, content: int | None, stamp: Any, deal: Deal) -> None:
        if content is None or stamp is None:
            return
        rows = self._rows
        rows[deal.ticket] = (content, stamp, deal)
        rows.move_to_end(deal.ticket)
        if len(rows) > self.size:
            rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()
