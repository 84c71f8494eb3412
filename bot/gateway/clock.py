"""The broker's server clock: MT5 reports every time as the server's wall clock, not UTC.

A tick, bar, deal or order time from the MetaTrader5 package is "seconds since 1970" of the trade
server's *local* clock (usually GMT+2 in winter and GMT+3 in summer). Nothing above the gateway may
see such a time: the gateway converts each one to true UTC with the offset measured here, and
converts UTC arguments (history_*_get date ranges) back to server time.

How the offset is measured: the time of a fresh tick minus the true UTC now, rounded to the nearest
15 minutes (every real time zone is a multiple of 15 minutes). A tick that does not fit - its
time is more than `max_tick_age` seconds away from a 15-minute multiple, or the offset would be
beyond +-14 h - is stale (the market is closed, a quote break) and refused: the last good offset
stays. A *change* of offset (daylight saving) is accepted only when a second tick, later in server
time, agrees: a frozen quote cannot confirm itself. The offset is measured again hourly and at each
server-day rollover (`due`).

"Now in UTC" is the wall clock, except for the simulator, whose clock may run `speed` times faster
than the wall clock by design: the simulator offers a sim-only hook (`sim_clock()` on the stand-in
and the bridge client) that gives its own UTC now and speed, and the gateway uses that instead, so
an accelerated run is not mistaken for a server clock hours ahead.

The offsets measured in one session are kept as a history (server time from which each holds), so
a deal made before a daylight-saving change converts with the offset it was made under.

A restart must not trust one tick more than a running bot does: started on a weekend, every tick is
Friday's last, and one of them may look fresh by chance (at 600x simulated speed nearly every one
does: the tolerance saturates). So the engine `seed`s the clock with the offset an earlier run stored
(db.brokerday): it is in force for conversions at once, and a tick giving another offset must be
confirmed by a later tick like any change - a frozen weekend quote never is.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from db.brokerday import BrokerDay

from .errors import GatewayError

log = logging.getLogger("bot.gateway.clock")

QUARTER_HOUR = 900
HOUR = 3600
DAY = 86400
MAX_OFFSET = 14 * HOUR
#: Tolerance of a fresh tick: latency plus the time since the last price change in a quiet market.
MAX_TICK_AGE = 60.0


def wall_time() -> float:
    """True UTC now from the machine's clock (tests of a stepped simulator replace this)."""
    return time.time()


class ClockUnknown(GatewayError):
    """No good offset measured yet: a time cannot be converted (never stored as a guess)."""

    kind = "clock_unknown"


class BrokerClock:
    """Server-time <-> UTC conversion for one terminal, with the offset measured from ticks."""

    def __init__(self, max_tick_age: float = MAX_TICK_AGE,
                 on_change: Callable[[int | None, int], None] | None = None):
        self.max_tick_age = max_tick_age
        self.on_change = on_change
        self._starts: list[float] = []  # server epochs from which each offset holds (ascending)
        self._offsets: list[int] = []
        self._measured_at: float | None = None  # UTC epoch of the last good measurement
        self._measured_day: int | None = None  # server day number of it
        self._pending: tuple[int, float] | None = None  # (candidate offset, tick server time) to confirm
        self._refused_logged = False

    @property
    def offset(self) -> int | None:
        """Seconds the server clock is ahead of UTC (None: not measured yet)."""
        return self._offsets[-1] if self._offsets else None

    def due(self, utc_now: float) -> bool:
        """Whether to measure again: never measured, an hour since, or the server day rolled over."""
        if self._measured_at is None or self.offset is None:
            return True
        if utc_now - self._measured_at >= HOUR:
            return True
        return int((utc_now + self.offset) // DAY) != self._measured_day

    def seed(self, offset: int) -> bool:
        """Start from an offset an earlier run measured (the store's); False if one is measured already.

        It converts times at once, and is measured again at the next tick (`due`); a tick giving
        another offset needs a later tick to confirm it, as a daylight-saving change does.
        """
        if self._offsets:
            return False
        offset = int(offset)
        if offset % QUARTER_HOUR or abs(offset) > MAX_OFFSET:
            log.warning("broker clock: stored offset %r s is not a time zone; measuring from ticks", offset)
            return False
        self._starts, self._offsets = [float("-inf")], [offset]
        self._measured_at = self._measured_day = self._pending = None
        log.info("broker clock: server time is UTC%+.2g h, stored by an earlier run; measured again at the next "
                 "live tick", offset / HOUR, extra={"offset_seconds": offset})
        return True

    def reset(self) -> None:
        """A new session (reconnect): measure at the next tick; keep the history for conversions."""
        self._measured_at = None
        self._pending = None

    def observe(self, tick_server_time: float, utc_now: float, speed: float = 1.0) -> bool:
        """Measure from one tick; True when the offset it gives is (now) the offset in force."""
        raw = float(tick_server_time) - float(utc_now)
        candidate = int(round(raw / QUARTER_HOUR)) * QUARTER_HOUR
        # An accelerated simulator moves `speed` simulated seconds per wall second of latency;
        # the tolerance stays below half of 15 minutes so the rounding is never ambiguous.
        tolerance = min(self.max_tick_age * max(1.0, float(speed)), QUARTER_HOUR / 2 - 1)
        if abs(raw - candidate) > tolerance or abs(candidate) > MAX_OFFSET:
            if not self._refused_logged:
                self._refused_logged = True
                log.info("broker clock: tick at server time %s is stale (%.0f s from UTC now); keeping offset %s",
                         _iso(tick_server_time), raw, self.offset,
                         extra={"tick_time": _iso(tick_server_time), "offset_seconds": self.offset})
            return False
        self._refused_logged = False
        previous = self.offset
        if previous is not None and candidate != previous:
            pending = self._pending
            if pending is None or pending[0] != candidate or not tick_server_time > pending[1]:
                self._pending = (candidate, float(tick_server_time))
                return False  # wait for a later tick to confirm: a frozen quote cannot
        self._pending = None
        self._measured_at = float(utc_now)
        self._measured_day = int((utc_now + candidate) // DAY)
        if candidate != previous:
            self._starts.append(float(tick_server_time) if previous is not None else float("-inf"))
            self._offsets.append(candidate)
            if previous is None:
                log.info("broker clock: server time is UTC%+.2g h", candidate / HOUR,
                         extra={"offset_seconds": candidate})
            else:
                log.warning("broker clock: server offset changed from %+d s to %+d s (%s)", previous, candidate,
                            "daylight saving" if (candidate - previous) % HOUR == 0 else "not a whole-hour step",
                            extra={"offset_seconds": candidate, "previous_offset_seconds": previous})
            if self.on_change is not None:
                self.on_change(previous, candidate)
        return True

    def offset_at_server(self, server_epoch: float) -> int:
        """The offset in force at a server time (the first one measured for anything before it)."""
        if not self._offsets:
            raise ClockUnknown("the broker's server clock is not measured yet (no fresh tick)")
        index = bisect.bisect_right(self._starts, float(server_epoch)) - 1
        return self._offsets[max(index, 0)]

    def offsets_at_server(self, server_epochs: np.ndarray) -> np.ndarray:
        """`offset_at_server` of each time of an array (bar open times), as int64, in one pass."""
        if not self._offsets:
            raise ClockUnknown("the broker's server clock is not measured yet (no fresh tick)")
        if len(self._offsets) == 1:
            return np.full(len(server_epochs), self._offsets[0], dtype=np.int64)
        index = np.searchsorted(np.asarray(self._starts), np.asarray(server_epochs, dtype=float), side="right") - 1
        return np.asarray(self._offsets, dtype=np.int64)[np.maximum(index, 0)]

    def to_utc(self, server_epoch: float) -> datetime:
        """A server time (MT5 seconds) as an aware UTC datetime."""
        seconds = int(server_epoch)
        return datetime.fromtimestamp(seconds - self.offset_at_server(seconds), tz=UTC)

    def to_utc_seconds(self, server_epoch: float) -> int:
        return int(server_epoch) - self.offset_at_server(server_epoch)

    def to_server(self, moment: datetime) -> datetime:
        """A UTC datetime as the server's wall clock (aware, labelled UTC, as MT5 encodes it)."""
        if self.offset is None:
            raise ClockUnknown("the broker's server clock is not measured yet (no fresh tick)")
        return moment.astimezone(UTC) + timedelta(seconds=self.offset)

    def server_day_start(self, moment: datetime) -> datetime:
        """The UTC instant of the server midnight that starts `moment`'s broker day (db.brokerday)."""
        return BrokerDay.of(moment, self.offset).start


def _iso(server_epoch: float) -> str:
    try:
        return datetime.fromtimestamp(int(server_epoch), tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return str(server_epoch)
