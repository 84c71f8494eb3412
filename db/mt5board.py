"""The MT5-report figures of every account for /metrics, recomputed only when its deals change.

Why a cache: the figures need every deal of an account in order (a balance curve has no
shortcut), and a scrape comes every 15 seconds.  Each scrape reads only one row per account
from the (account, time) index of the deals table: how many deals and the newest deal's time.
When neither moved, the account's figures are those computed before.  (A deal corrected in
place, same count and newest time, is picked up at the account's next deal or a restart.)
"""

from __future__ import annotations

from threading import Lock

from sqlalchemy import func, select

from db.database import Database
from db.models import DealModel
from db.mt5report import Mt5Figures, account_deals, mt5_figures
from db.reading import reading


class Mt5Board:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._cache: dict[str, tuple[tuple, Mt5Figures]] = {}
        self._lock = Lock()  # two scrapes at once compute an account once

    def figures(self) -> dict[str, Mt5Figures]:
        """Account -> figures of its whole history, for the accounts that have deals."""
        table = DealModel.__table__
        with self._lock, reading(self._database) as connection:
            marks = connection.execute(
                select(table.c.account, func.count(), func.max(table.c.time)).group_by(table.c.account)
            ).all()
            fresh = {}
            for account, count, newest in marks:
                mark = (count, newest)
                cached = self._cache.get(account)
                if cached is None or cached[0] != mark:
                    cached = (mark, mt5_figures(account_deals(connection, account)))
                fresh[account] = cached
            self._cache = fresh
        return {account: figures for account, (_, figures) in sorted(fresh.items())}
