"""The store's figures for /metrics, read again only when the store changed (or the broker day did).

Why: a fleet's scrape reads and renders thousands of series (exporter/cardinality.py); doing it on
every scrape of every Prometheus costs tens of milliseconds of CPU even when nothing happened.
Each scrape first asks the store for its change marker (db.reading.change_marker: one short
statement); while it equals the marker of the snapshot the figures were read in, and the broker
day of every account is the same, the figures are those of the current store exactly and are
reused, rendered text included (exporter/exposition.py keeps a family's text).  What depends on
the clock alone (a snapshot's age) is computed by the caller on every scrape.

`max_age_seconds` > 0 also reuses figures of a store that changed, for at most that long since they
were read: a bound on the reading cost when two Prometheus servers (an HA pair) scrape a fleet whose
bots write every second.  The default, 0, never shows a figure the store no longer has (with max_age_seconds, a store that
went away is noticed at the first scrape after that age).
Either way the scrape says how long ago its figures were read: tradewatch_exporter_figures_age_seconds.

Backends without a cheap exact marker (SQLite: one bot, a small scrape) are read on every scrape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Generic, TypeVar

from db.database import Database
from db.reading import store_marker

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """What a read of the store returned, and which snapshot it is of."""

    value: T
    marker: str | None  # db.reading.change_marker of the snapshot read (None: no marker)
    valid_from: datetime | None = None  # `now` outside [valid_from, valid_until): read again
    valid_until: datetime | None = None


class Reused(Generic[T]):
    """The last Read, returned again while the store (and the clock's window) says it still holds."""

    def __init__(self, read: Callable[[datetime, Callable[[], str | None]], Read[T]], max_age_seconds: float = 0.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_age_seconds < 0:
            raise ValueError("max_age_seconds must be >= 0")
        self._read = read
        self._max_age = max_age_seconds
        self._monotonic = monotonic
        self._last: Read[T] | None = None
        self._read_at = 0.0
        self._lock = Lock()  # two scrapes at once read the store once
        self.reads = 0  # how often the store was read (the rest were reuses)

    def get(self, now: datetime, marker: Callable[[], str | None]) -> tuple[T, float]:
        """(the figures, seconds since they were read from the store); `marker()`: the store's marker now
        (a StoreMarker, so that the readers of one scrape ask the store once)."""
        with self._lock:
            last = self._last
            if last is not None and self._holds(last, now, marker):
                return last.value, self._monotonic() - self._read_at
            started = self._monotonic()
            fresh = self._read(now, marker)
            self._last, self._read_at = fresh, started
            self.reads += 1
            return fresh.value, 0.0

    @property
    def last(self) -> Read[T] | None:
        """The last read (what a read may build on)."""
        return self._last

    def _holds(self, last: Read[T], now: datetime, marker: Callable[[], str | None]) -> bool:
        if last.marker is None:
            return False
        if last.valid_from is not None and now < last.valid_from:
            return False
        if last.valid_until is not None and now >= last.valid_until:
            return False
        if self._max_age and self._monotonic() - self._read_at < self._max_age:
            return True
        return marker() == last.marker


class StoreMarker:
    """The store's change marker, asked for at most once (make one per scrape)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._marker: str | None = None
        self._asked = False

    def __call__(self) -> str | None:
        if not self._asked:
            self._marker = store_marker(self._database)
            self._asked = True
        return self._marker
