"""The MT5-report figures of every account for /metrics, recomputed only when its deals change.

Why a cache: the figures need every deal of an account in order (a balance curve has no
shortcut), and a scrape comes every 15 seconds.  Each scrape reads, per account, how many deals it
has and the newest deal's time: its mark, kept by every deal write (db.deal_marks).
When neither moved, the account's figures are those computed before; when they did, only the deals
after the last one walked are read and added to the kept walk (db.mt5report.Mt5Fold), unless the
count says an older deal arrived too: then the whole history again.  (A deal corrected in place, same
count and newest time, is picked up at a restart.)  The marks are one row per account, not a count of
the deals table (with 20 M deals that scan was seconds: bench/fleet.py BENCH_FLEET_DEALS=1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from threading import Lock

from db import deal_marks
from db.database import Database
from db.mt5deals import kind_of
from db.mt5report import Mt5Figures, Mt5Fold, account_deals
from db.reading import reading


@dataclass(slots=True)
class _Kept:
    """An account's figures, the walk they came from, and where it stands: (deals, newest time) as the
    marks said, the last folded deal's (time, ticket)."""

    mark: tuple
    fold: Mt5Fold
    last: tuple[datetime, int] | None
    figures: Mt5Figures


class Mt5Board:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._cache: dict[str, _Kept] = {}
        self._lock = Lock()  # two scrapes at once compute an account once

    def figures(self) -> dict[str, Mt5Figures]:
        """Account -> figures of its whole history, for the accounts that have deals."""
        with self._lock, reading(self._database) as connection:
            fresh = {}
            for account, count, newest in deal_marks.marks(connection):
                mark = (count, newest)
                kept = self._cache.get(account)
                if kept is None or kept.mark != mark:
                    kept = _extended(connection, account, kept, mark) or _whole(connection, account, mark)
                fresh[account] = kept
            self._cache = fresh
        return {account: kept.figures for account, kept in sorted(fresh.items())}


def _whole(connection, account: str, mark: tuple) -> _Kept:
    fold, last = Mt5Fold(), None
    for deal in account_deals(connection, account):
        fold.add(deal)
        last = (deal.time, deal.ticket)
    return _Kept(mark, fold, last, fold.figures())


def _extended(connection, account: str, kept: _Kept | None, mark: tuple) -> _Kept | None:
    """The kept walk with the deals after its last one added, when those are all that is new: the count
    of the marks is the kept count plus theirs (deals are only ever inserted, never changed or deleted:
    db.repository.record_deal, db.history_store, db.report_import, each moving the marks: db.deal_marks).
    None otherwise (a deal older than the last folded one arrived, or nothing was kept): then the whole
    history is walked again."""
    if kept is None or kept.last is None:
        return None
    newer = [deal for deal in account_deals(connection, account, since=kept.last[0])
             if (deal.time, deal.ticket) > kept.last]
    if kept.mark[0] + len(newer) != mark[0]:
        return None
    for deal in newer:  # a deal the walk would refuse fails here, before the kept walk is touched
        kind_of(deal.type)
    for deal in newer:
        kept.fold.add(deal)
    if newer:
        kept.last = (newer[-1].time, newer[-1].ticket)
    kept.mark = mark
    kept.figures = kept.fold.figures()
    return kept
