"""Correlation ids carried through contextvars.

Why contextvars: a cycle id and a correlation id have to reach every log line and
exemplar produced while handling one cycle or one order, without threading them
through every function signature. ContextVars follow the logical flow of control
(including asyncio tasks and threads started with ``contextvars.copy_context().run``),
and unlike thread-locals they are reset cleanly by the context managers below.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

cycle_id: ContextVar[str | None] = ContextVar("cycle_id", default=None)
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_ID_BYTES = 6  # 12 hex chars: short enough for a log line and an MT5 comment, 2**48 values


#: Why a generator of our own, not `secrets`: these ids only tell cycles and orders apart in logs and
#: rows (nothing is authorised by them), and os.urandom is a system call per id, nine a cycle. Why not
#: the `random` module's shared one: a strategy seeding it (random.seed(42), for a reproducible
#: backtest) would make every run's ids the same. Seeded from the OS, again in a forked child.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_bits = _ids.getrandbits


def _new_id() -> str:
    return f"{_bits(_ID_BYTES * 8):0{_ID_BYTES * 2}x}"


def new_cycle_id() -> str:
    """Return a fresh 12-hex-char id for one engine cycle."""
    return _new_id()


def new_correlation_id() -> str:
    """Return a fresh id that follows one order (or request) end to end: 16 hex chars, the UTC
    wall-clock second it was made (8 hex, unix epoch) then 8 random hex.

    Why the time prefix (the ULID / MongoDB ObjectId idea): Grafana's trade-to-logs link finds
    when the bot logged an order from the id stored with the trade, whatever clock the broker
    (or the accelerated simulator) stamps trades with, without an extra column.
    """
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{_bits(32):08x}"


@contextmanager
def cycle_context(cycle: str | None = None) -> Iterator[str]:
    """Set the cycle id for the duration of the block (a new one when none is given)."""
    value = cycle if cycle is not None else new_cycle_id()
    token = cycle_id.set(value)
    try:
        yield value
    finally:
        cycle_id.reset(token)


@contextmanager
def correlation_context(correlation: str | None = None) -> Iterator[str]:
    """Set the correlation id for the duration of the block (a new one when none is given)."""
    value = correlation if correlation is not None else new_correlation_id()
    token = correlation_id.set(value)
    try:
        yield value
    finally:
        correlation_id.reset(token)


def current_ids() -> dict[str, str | None]:
    """The ids in effect right now, ``None`` where unset: ``{"correlation_id": …, "cycle_id": …}``."""
    return {"correlation_id": correlation_id.get(), "cycle_id": cycle_id.get()}
