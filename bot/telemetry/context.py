"""Correlation ids carried through contextvars.

Why contextvars: a cycle id and a correlation id have to reach every log line and
exemplar produced while handling one cycle or one order, without threading them
through every function signature. ContextVars follow the logical flow of control
(including asyncio tasks and threads started with ``contextvars.copy_context().run``),
and unlike thread-locals they are reset cleanly by the context managers below.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

cycle_id: ContextVar[str | None] = ContextVar("cycle_id", default=None)
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_ID_BYTES = 6  # 12 hex chars: short enough for a log line and an MT5 comment, 2**48 values


def _new_id() -> str:
    return secrets.token_hex(_ID_BYTES)


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
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(4)}"


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
