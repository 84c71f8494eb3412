"""The broker day: the one definition of "a day" for daily P&L, rollups, reports and risk limits.

Why not the UTC day: MT5 brokers close their trading day at the trade server's midnight (usually
GMT+2 in winter, GMT+3 in summer, i.e. 17:00 New York), and swaps, the broker's daily statements
and prop firms' daily loss limits all count from there. Stored times stay true UTC; a broker day
is the *date at the server* plus the UTC instant it starts: with the server at GMT+2, broker day
2026-03-02 starts at 2026-03-01 22:00 UTC.

Where the offset comes from: the gateway measures it (bot.gateway.clock) and the bot records each
offset it measures in `broker_offsets` (account, since, offset_seconds), so db-side reports and
the exporter cut days the way the bot did. An offset holds from its `since` on; the account's first
one also holds for everything before it (deals imported from before the bot ran). An account with
no recorded offset has UTC days, and says so (`BrokerDay.label`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, select

from db.models import BrokerOffsetModel

_OFFSETS = BrokerOffsetModel.__table__
TABLE = _OFFSETS.name


def _utc(moment: datetime) -> datetime:
    """Aware UTC (a naive time read back from SQLite is UTC already, never local time)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def broker_date(moment: datetime, offset_seconds: int | None) -> date:
    """The date at the trade server at a UTC moment (the UTC date when the offset is unknown)."""
    return (_utc(moment) + timedelta(seconds=offset_seconds or 0)).date()


def day_start(day: date, offset_seconds: int | None) -> datetime:
    """The UTC instant of the server midnight that starts broker day `day`."""
    return datetime.combine(day, time(), tzinfo=UTC) - timedelta(seconds=offset_seconds or 0)


def gmt(offset_seconds: int) -> str:
    """An offset as traders write it: GMT+2, GMT-4:30."""
    sign = "-" if offset_seconds < 0 else "+"
    hours, rest = divmod(abs(int(offset_seconds)), 3600)
    return f"GMT{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")


@dataclass(frozen=True, slots=True)
class BrokerDay:
    """One broker day: the server's date and the offset that cuts it (None: unknown, a UTC day)."""

    date: date
    offset_seconds: int | None

    @classmethod
    def of(cls, moment: datetime, offset_seconds: int | None) -> BrokerDay:
        return cls(broker_date(moment, offset_seconds), offset_seconds)

    @property
    def start(self) -> datetime:
        return day_start(self.date, self.offset_seconds)

    @property
    def end(self) -> datetime:
        return day_start(self.date + timedelta(days=1), self.offset_seconds)

    def label(self) -> str:
        """'broker day 2026-03-02 (server GMT+2, starts 2026-03-01 22:00 UTC)', or the UTC fallback said."""
        if self.offset_seconds is None:
            return f"UTC day {self.date.isoformat()} (broker clock unknown: days cut at UTC midnight)"
        return (f"broker day {self.date.isoformat()} (server {gmt(self.offset_seconds)}, "
                f"starts {self.start:%Y-%m-%d %H:%M} UTC)")


class OffsetHistory:
    """An account's recorded server offsets in time order: which one held at a UTC moment."""

    def __init__(self, rows: Iterable[tuple[datetime, int]] = ()):
        ordered = sorted((_utc(since), int(offset)) for since, offset in rows)
        self._since = [since for since, _ in ordered]
        self._offsets = [offset for _, offset in ordered]

    def __bool__(self) -> bool:
        return bool(self._offsets)

    @property
    def latest(self) -> int | None:
        return self._offsets[-1] if self._offsets else None

    def at(self, moment: datetime) -> int | None:
        """The offset in force at `moment` (the first one for anything earlier; None: none recorded)."""
        if not self._offsets:
            return None
        index = bisect.bisect_right(self._since, _utc(moment)) - 1
        return self._offsets[max(index, 0)]

    def day_of(self, moment: datetime) -> BrokerDay:
        return BrokerDay.of(moment, self.at(moment))

    def day(self, day: date) -> BrokerDay:
        """Broker day `day` with the offset in force around its server midnight."""
        near = self.at(datetime.combine(day, time(), tzinfo=UTC))  # within a day of the real start
        return BrokerDay(day, self.at(day_start(day, near)))


def load(connection: Connection, account: str) -> OffsetHistory:
    query = select(_OFFSETS.c.since, _OFFSETS.c.offset_seconds).where(_OFFSETS.c.account == account)
    return OffsetHistory((row.since, row.offset_seconds) for row in connection.execute(query))


def load_all(connection: Connection, accounts: Iterable[str]) -> dict[str, OffsetHistory]:
    """The offset histories of several accounts in one query (accounts without any get an empty one)."""
    names = list(accounts)
    rows: dict[str, list[tuple[datetime, int]]] = {name: [] for name in names}
    if names:
        query = select(_OFFSETS.c.account, _OFFSETS.c.since, _OFFSETS.c.offset_seconds).where(
            _OFFSETS.c.account.in_(names))
        for row in connection.execute(query):
            rows[row.account].append((row.since, row.offset_seconds))
    return {name: OffsetHistory(found) for name, found in rows.items()}


def day_of(database, account: str, moment: datetime) -> BrokerDay:
    """The broker day of a stored UTC moment with the account's recorded offsets (one small read)."""
    from db.reading import reading

    with reading(database) as connection:
        return load(connection, account).day_of(moment)


def record(connection: Connection, account: str, since: datetime, offset_seconds: int) -> bool:
    """Store an offset the bot measured; False when it is already the one in force (nothing written).

    When the new offset changes the broker day of trades already rolled up (the account's first
    offset applies to all its history; a later one to trades closed after `since`), the account's
    rollups are rebuilt in the same transaction, so day rows never mix two ways of cutting days.
    """
    from db import rollups  # rollups read offsets too: imported here to keep the modules acyclic

    history = load(connection, account)
    since = _utc(since)
    if history and history.at(since) == int(offset_seconds):
        return False
    connection.execute(_OFFSETS.insert().values(account=account, since=since, offset_seconds=int(offset_seconds)))
    if rollups.has_closed_trades(connection, account, None if not history else since):
        rollups.rebuild(connection, account)
    return True
