"""Closed bars kept between cycles: a rolling window per (symbol, timeframe), topped up from the newest bars.

Why: a cycle used to re-read BARS+1 bars per symbol (121 over the bridge: 608 us, half of a cycle's
broker time) although at most one bar closed since the last cycle. A window asks the gateway only
for the newest few bars (`OVERLAP` already held, the new ones, the one still forming) and appends
the new closed ones; while the bar that was forming at the last read cannot have closed yet
(the broker's clock is before its end), it asks for nothing at all.

It must give exactly the closed bars a full read would give, so it falls back to a full read
(`gateway.bars(symbol, timeframe, count + 1)`, the forming bar dropped) whenever it cannot be sure:
- the first read, or more bars asked for than the window holds;
- a new gateway session (a reconnect: the terminal may have reloaded its history);
- a gap: the newest bars do not join the window (the window's newest `OVERLAP` bars are not found
  in the fetched ones with the same times and prices: a missing bar, history rewritten, or more
  bars closed than were fetched);
- every `capacity` appended bars, so a change deeper in the history than the overlap cannot last
  longer than one window.
Bar validation is the gateway's (bot/gateway/guard.py): a refused fetch raises BadBrokerData and
the window is left as it was, so the symbol is skipped with its counted reason exactly as before.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from mt5bridge.limits import timeframe_seconds

from ..gateway.types import Bars

log = logging.getLogger("bot.engine.bars")

#: Bars already held that every incremental read fetches again, to prove the new ones join the window.
#: Why 10 and not 1: the gateway's checks across bars (times increasing, not flat) mean little on
#: two or three bars (a quiet M1 bar is often flat), and a rewrite of the recent bars is caught too.
#: 12 bars a closed bar instead of 121 every cycle.
OVERLAP = 10
#: Full reads by reason (counted in `BarWindows.stats["full_<reason>"]`).
FULL_REASONS = ("first", "longer", "reconnect", "gap", "refresh")
_PRICES = ("open", "high", "low", "close")


@dataclass
class _Block:
    """Bars as two arrays: open times (int64) and one (4, n) block of open, high, low, close.

    Why one block: joining, appending and handing out the bars are then one numpy operation each
    instead of one per column (five columns: ~40 us a symbol and bar, most of the window's cost)."""

    time: np.ndarray
    prices: np.ndarray

    @classmethod
    def of(cls, bars: Bars) -> _Block:
        return cls(np.asarray(bars.time), np.stack([getattr(bars, name) for name in _PRICES]))

    def __len__(self) -> int:
        return len(self.time)

    def sliced(self, start: int | None, stop: int | None) -> _Block:
        return _Block(self.time[start:stop], self.prices[:, start:stop])


@dataclass
class _Window:
    block: _Block  # closed bars, oldest first, at most `capacity`
    symbol: str
    capacity: int
    session: Any  # the gateway session it was read in
    forming: int | None  # open time (UTC seconds) of the bar that was forming at the last read
    read_at: float | None = None  # the broker's time (UTC seconds) at the last read
    appended: int = 0  # bars appended since the last full read

    def tail(self, count: int) -> Bars:
        """The newest `count` closed bars, as fresh arrays: a strategy may scribble on what it gets."""
        prices = self.block.prices[:, -count:].copy()  # one copy; each column a row of it
        return Bars(self.symbol, self.block.time[-count:].copy(), prices[0], prices[1], prices[2], prices[3])


class BarWindows:
    """Every (symbol, timeframe) window of one engine. `stats` counts reads and bars fetched."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, int], _Window] = {}
        self.stats: Counter[str] = Counter()

    def closed(self, gateway: Any, symbol: str, timeframe: int, count: int) -> Bars:
        """The newest `count` closed bars of `symbol` (fewer if the broker has fewer), as a full read gives them."""
        key = (symbol, timeframe)
        window = self._windows.get(key)
        session = getattr(gateway, "sessions", None)
        reason = _full_read_reason(window, session, count)
        if reason is None:
            joined = self._top_up(gateway, symbol, timeframe, window)
            if joined:
                return window.tail(count)
            reason = "gap"
        window = self._full(gateway, symbol, timeframe, max(count, window.capacity if window else 0), session, reason)
        self._windows[key] = window
        return window.tail(count)

    def _full(self, gateway: Any, symbol: str, timeframe: int, count: int, session: Any, reason: str) -> _Window:
        fetched = gateway.bars(symbol, timeframe, count + 1)
        self._count(reason, len(fetched))
        if reason == "gap":
            log.debug("bars of %s do not join the window: read again in full", symbol,
                      extra={"symbol": symbol, "timeframe": timeframe})
        block = _Block.of(fetched)
        return _Window(block.sliced(0, -1), symbol, count, session, int(block.time[-1]), _broker_seconds(gateway))

    def _top_up(self, gateway: Any, symbol: str, timeframe: int, window: _Window) -> bool:
        """Append the bars closed since the last read; False when they do not join (a full read is due)."""
        seconds = timeframe_seconds(timeframe) or 60
        now = _broker_seconds(gateway)
        if now is not None and window.forming is not None and now < window.forming + seconds:
            self.stats["skipped"] += 1  # the bar forming at the last read is still forming: nothing new
            return True
        held = len(window.block)
        overlap = min(OVERLAP, held)
        # Bars closed since the last read, at most: the one forming then, and one per bar length since
        # (1 without a clock). From the last read, not the forming bar's open: a quiet market (no
        # tick, no new bar for hours) must not look like a long gap every cycle.
        since = window.read_at if window.read_at is not None else window.forming
        new = 1 if now is None or since is None else max(1, int((now - since) // seconds) + 1)
        if overlap + new > window.capacity:
            return False  # more bars closed than the window holds: a full read is as cheap
        fetched = _Block.of(gateway.bars(symbol, timeframe, overlap + new + 1))  # refused bars raise: window unchanged
        self._count("incremental", len(fetched))
        closed = fetched.sliced(0, -1)
        start = _join(window.block, closed, overlap)
        if start is None:
            return False
        fresh = len(closed) - start
        if fresh:
            kept = window.capacity
            window.block = _Block(np.concatenate((window.block.time, closed.time[start:]))[-kept:],
                                  np.concatenate((window.block.prices, closed.prices[:, start:]), axis=1)[:, -kept:])
            window.appended += fresh
        window.forming, window.read_at = int(fetched.time[-1]), now
        return True

    def _count(self, reason: str, bars: int) -> None:
        self.stats["reads"] += 1
        self.stats["bars_fetched"] += bars
        self.stats[reason if reason == "incremental" else f"full_{reason}"] += 1


def _full_read_reason(window: _Window | None, session: Any, count: int) -> str | None:
    if window is None:
        return "first"
    if window.session != session:
        return "reconnect"
    if count > window.capacity:
        return "longer"
    if window.appended >= window.capacity:
        return "refresh"
    if len(window.block) < OVERLAP:
        return "first"  # too short to prove a join (a broker with almost no history)
    return None


def _join(held: _Block, closed: _Block, overlap: int) -> int | None:
    """Index in `closed` of the first bar newer than `held`, or None when they do not join.

    The window's newest `overlap` bars must sit in `closed`, one after the other, with the same open
    times and prices: anything else (a bar missing, one rewritten, or more new bars than fetched)
    is a gap. Bars older than them may lead `closed` (the count to fetch is an estimate).

    Why Python lists and bytes, not numpy comparisons: `closed` is a dozen bars, and five numpy calls
    on them (~9 us a symbol and cycle) cost three times this. Prices compared as bytes are the same
    test as `==` on the prices the gateway lets through (finite and positive: no NaN, no -0.0)."""
    times = closed.time.tolist()
    newest = int(held.time[-1])
    if times.count(newest) != 1:
        return None
    stop = times.index(newest) + 1
    if stop < overlap:
        return None
    if held.time[-overlap:].tolist() != times[stop - overlap:stop]:
        return None
    if held.prices[:, -overlap:].tobytes() != closed.prices[:, stop - overlap:stop].tobytes():
        return None
    return stop


def _broker_seconds(gateway: Any) -> float | None:
    """The broker's now (UTC seconds) as the gateway last saw it, or None if it does not say."""
    moment = getattr(gateway, "broker_time", None)
    return moment.timestamp() if moment is not None else None
