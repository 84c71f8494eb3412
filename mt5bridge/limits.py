"""The bridge's resource limits: connections, handshake time, frame sizes, per-call sizes, lock waits.

Why: the bridge is the one process that owns the terminal. A peer that never finishes its
handshake, opens thousands of sockets, sends a compressed frame that inflates to gigabytes,
or asks for a million bars must cost the server a bounded amount of memory, threads and
terminal time, and every other client must keep being served. Every limit lives here, in
one table, with the error text the peer sees.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Server-side limits (defaults sized for one bot plus a few tools on one terminal)."""

    #: The whole handshake (TLS + token) must finish within this, however slowly bytes arrive.
    handshake_seconds: float = 5.0
    #: Connections still in their handshake; more are closed at once (no thread is spent on them).
    max_unauthenticated: int = 64
    #: Authenticated sessions (one thread each); the next one is told the server is full.
    max_sessions: int = 16
    #: A frame from a client, on the wire and after decompression.
    max_request_bytes: int = 2 * MIB
    #: A call waiting longer than this for the terminal fails with kind "busy".
    lock_wait_seconds: float = 5.0
    max_bars: int = 10_000
    max_ticks: int = 50_000
    #: history_*_get / *_total date ranges (the bot looks back HISTORY_DAYS <= 3650, plus a week ahead).
    max_history_days: int = 3700
    #: copy_ticks_range: ticks per day are unbounded on a busy symbol, so the range is kept short.
    max_tick_range_days: int = 2


DEFAULT_LIMITS = Limits()

#: Replies the client accepts: bars/ticks/history at their limits stay well below this.
MAX_REPLY_BYTES = 64 * MIB


class CallLimited(Exception):
    """A call refused for its size (or for carrying what must not cross); ``kind`` goes to the client."""

    def __init__(self, message: str, kind: str = "limit") -> None:
        super().__init__(message)
        self.kind = kind


def _argument(raw: dict[str, Any], name: str, index: int) -> Any:
    """A call argument by name, or by position in the ``{"args": [...], "kwargs": {...}}`` payload form."""
    if name in raw:
        return raw[name]
    kwargs = raw.get("kwargs")
    if type(kwargs) is dict and name in kwargs:
        return kwargs[name]
    args = raw.get("args")
    if type(args) is list and 0 <= index < len(args):
        return args[index]
    return None


def _epoch(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return None  # the call's own argument rules refuse it


def timeframe_seconds(timeframe: int) -> int | None:
    """MT5 TIMEFRAME_* codes: minutes below 0x4000, hours as 0x4000|h, W1 0x8001, MN1 0xC001."""
    if type(timeframe) is not int or timeframe <= 0:
        return None
    if timeframe < 0x4000:
        return timeframe * 60
    if timeframe & 0xC000 == 0x4000:
        return (timeframe & 0xFF) * 3600
    if timeframe == 0x8001:
        return 7 * 86400
    if timeframe == 0xC001:
        return 28 * 86400  # the shortest month: the estimate may only overcount
    return None


#: call -> (count argument and its position, which limit) for calls sized by a count.
COUNTED_CALLS: dict[str, tuple[str, int, str]] = {
    "copy_rates_from": ("count", 3, "max_bars"),
    "copy_rates_from_pos": ("count", 3, "max_bars"),
    "copy_ticks_from": ("count", 2, "max_ticks"),
}
#: call -> (date_from position, date_to position, which limit in days).
RANGED_CALLS: dict[str, tuple[int, int, str]] = {
    "copy_rates_range": (2, 3, "bars"),
    "copy_ticks_range": (1, 2, "max_tick_range_days"),
    "history_orders_get": (0, 1, "max_history_days"),
    "history_deals_get": (0, 1, "max_history_days"),
    "history_orders_total": (0, 1, "max_history_days"),
    "history_deals_total": (0, 1, "max_history_days"),
}
#: The broker password lives on the terminal side only (the bridge server's MT5_PASSWORD): call ->
#: the password's position (login(login, password, ...); initialize takes it by keyword only).
CREDENTIAL_CALLS: dict[str, int] = {"initialize": -1, "login": 1}


def check_call(name: str, raw: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a call whose size is over a limit, before it takes the terminal lock."""
    # A password string is refused; another type is left to the call's argument rules (the package's error).
    if name in CREDENTIAL_CALLS and type(_argument(raw, "password", CREDENTIAL_CALLS[name])) is str:
        raise CallLimited(
            f"{name}: the broker password is not accepted over the bridge; "
            f"set MT5_LOGIN/MT5_PASSWORD/MT5_SERVER on the bridge server",
            kind="bad_request",
        )
    counted = COUNTED_CALLS.get(name)
    if counted is not None:
        argument, index, limit_name = counted
        count = _argument(raw, argument, index)
        limit = getattr(limits, limit_name)
        if type(count) is int and count > limit:
            raise CallLimited(f"{name}: count {count} is over the bridge's limit of {limit} per call; page the request")
    ranged = RANGED_CALLS.get(name)
    if ranged is not None:
        _check_range(name, raw, ranged, limits)


def _check_range(name: str, raw: dict[str, Any], ranged: tuple[int, int, str], limits: Limits) -> None:
    from_index, to_index, limit_name = ranged
    start = _epoch(_argument(raw, "date_from", from_index))
    end = _epoch(_argument(raw, "date_to", to_index))
    if start is None or end is None or end <= start:
        return
    seconds = end - start
    if limit_name == "bars":
        step = timeframe_seconds(_argument(raw, "timeframe", 1))
        if step is not None and seconds / step > limits.max_bars:
            raise CallLimited(
                f"{name}: the range holds about {int(seconds / step)} bars, over the bridge's limit of "
                f"{limits.max_bars} per call; ask for a shorter range"
            )
        return
    days = getattr(limits, limit_name)
    if seconds > days * 86400:
        raise CallLimited(
            f"{name}: a range of {seconds / 86400:.0f} days is over the bridge's limit of {days} days per call"
        )


class TerminalLock:
    """A first-come-first-served lock with a bounded wait.

    Why not threading.Lock: its waiters are woken in no particular order, so a client that
    calls back-to-back can keep winning and starve another; here the lock goes to the
    longest waiter, and a waiter that gives up (timeout) leaves the queue.
    """

    def __init__(self) -> None:
        # The condition's own lock, taken directly: `with` on a Lock runs in C,
        # `with` on a Condition adds two Python frames (every bridge call takes and releases this).
        self._mutex = threading.Lock()
        self._condition = threading.Condition(self._mutex)
        self._queue: deque[object] = deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._mutex:  # the condition's lock: wait_for below waits on it
            if not self._held and not self._queue:  # uncontended (the usual case): no ticket, no wait
                self._held = True
                return True
            ticket = object()
            self._queue.append(ticket)
            granted = self._condition.wait_for(lambda: not self._held and self._queue[0] is ticket, timeout)
            if granted:
                self._queue.popleft()
                self._held = True
            else:
                self._queue.remove(ticket)
                self._condition.notify_all()  # the next waiter may now be first
            return granted

    def release(self) -> None:
        with self._mutex:  # the condition's lock: notify_all below is called holding it
            self._held = False
            if self._queue:
                self._condition.notify_all()
