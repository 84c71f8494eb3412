"""The gateway's guard: every broker record is judged by its schema once, and a refusal is reported once.

Why memory: a bad deal stays in the 7-day history window the bot fetches, and a bad quote may
last for hours. Judging and reporting each of them every cycle would flood the log and the
store (and, before this guard, failed every cycle). So:
- history records (deals, orders) are remembered by content: the same refused record is refused
  again silently, without judging it again; a changed record is judged afresh;
- records that change every cycle (positions, quotes, bars, account, symbol, order replies) are
  judged every time but reported once per streak (same key, same reason); the end of a streak
  is logged once too;
- every deal accepted is remembered by ticket with its content's fingerprint: the same ticket met
  again with other content is a conflict (reported as `ticket_conflict`), and the first version
  stays the one the bot knows.
The memories are bounded (oldest forgotten first). A report goes to `on_reject` (the engine's
quarantine: store, count, log); the guard itself never raises on a record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from . import schema
from .schema import Context, Problem

log = logging.getLogger("bot.gateway.guard")

#: Refused records and accepted deal tickets remembered, each (about 100 bytes an entry): the deal
#: fetch window overlaps by an hour, so this covers far more than one window's worth of deals.
MEMORY = 5_000
#: Strings longer than this are cut in the quarantined copy (the length is kept).
RAW_TEXT_MAX = 256


@dataclass(frozen=True)
class Rejection:
    """One refused broker record, as reported: where it came from, why, and its raw content."""

    kind: str
    key: str
    reason: str
    field: str | None
    detail: str
    raw: str
    fingerprint: str
    symbol: str | None
    broker_time: datetime | None
    conflict: bool = False


class BrokerDataGuard:
    def __init__(self, symbol_known: Callable[[str], bool], memory: int = MEMORY):
        self.symbol_known = symbol_known
        self.on_reject: Callable[[Rejection], None] | None = None
        self.clock: datetime | None = None  # the broker's time: the newest accepted quote
        self.memory = memory
        self._refused: OrderedDict[tuple[str, str], str] = OrderedDict()  # (kind, fingerprint or key) -> reason
        self._deals: OrderedDict[int, int | None] = OrderedDict()  # ticket -> content digest (None: not a trade)
        self.deals_seen = 0  # distinct deal tickets met, balance operations included
        self._last_context: Context | None = None

    def judge(self, kind: str, record: Any, key: str) -> Problem | None:
        """None if the record may be used; else its problem (reported once, see the module docstring)."""
        if kind in schema.IMMUTABLE_KINDS:
            return self._judge_history(kind, record, key)
        problem = schema.check(kind, record, self._context())
        slot = (kind, key)
        if problem is None:
            if self._refused.pop(slot, None) is not None:
                log.info("broker %s %s is plausible again", kind, key, extra={"record_kind": kind, "key": key})
            return None
        if self._refused.get(slot) != problem.reason:
            self._remember(self._refused, slot, problem.reason)
            self._report(kind, key, record, problem, fingerprint(record))
        return problem

    def _context(self) -> Context:
        """The judging context for the current broker clock (made again only when the clock moved)."""
        context = self._last_context
        if context is None or context.clock != self.clock:
            context = self._last_context = Context(self.clock, self.symbol_known)
        return context

    def note_deal(self, ticket: Any) -> None:
        """A deal row met (trade or not): counts distinct tickets, which tells the equity check deals happened."""
        if isinstance(ticket, int) and not isinstance(ticket, bool) and ticket not in self._deals:
            self._remember(self._deals, ticket, None)
            self.deals_seen += 1

    def _judge_history(self, kind: str, record: Any, key: str) -> Problem | None:
        content = fingerprint(record)
        slot = (kind, content)  # by content: the same ticket may come as the good and a bad version
        if slot in self._refused:
            return Problem(self._refused[slot], None, "refused before")  # judged and reported already
        problem = schema.check(kind, record, self._context())
        conflict = False
        if problem is None and kind == "deal":
            ticket, digest = record["ticket"], int(content[:16], 16)  # an int: a third of the memory of the text
            known = self._deals.get(ticket)
            if known is None:
                self._remember(self._deals, ticket, digest)
            elif known != digest:
                conflict = True
                problem = Problem("ticket_conflict", "ticket",
                                  f"deal ticket {ticket} was seen before with other content; the first is kept")
        if problem is None:
            return None
        self._remember(self._refused, slot, problem.reason)
        self._report(kind, key, record, problem, content, conflict)
        return problem

    def _report(self, kind: str, key: str, record: Any, problem: Problem, content: str, conflict: bool = False) -> None:
        symbol = record.get("symbol") if isinstance(record, Mapping) and kind != "bars" else None
        rejection = Rejection(
            kind=kind, key=key[:64], reason=problem.reason, field=problem.field, detail=problem.detail[:500],
            raw=raw_text(record), fingerprint=content, symbol=symbol[:32] if isinstance(symbol, str) else None,
            broker_time=self.clock, conflict=conflict,
        )
        if self.on_reject is None:
            log.warning("broker %s %s refused (%s): %s", kind, key, problem.reason, problem.detail)
            return
        try:
            self.on_reject(rejection)
        except Exception:  # noqa: BLE001 - reporting must never break the broker call that met the record
            log.exception("reporting a refused broker record failed")

    def _remember(self, memory: OrderedDict, key: Any, value: Any) -> None:
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > self.memory:
            memory.popitem(last=False)


def fingerprint(record: Any) -> str:
    """A stable digest of a record's full content (32 hex characters)."""
    text = json.dumps(record, sort_keys=True, default=_default, allow_nan=True)
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).hexdigest()


def raw_text(record: Any) -> str:
    """The record as JSON text fit for any database: non-finite numbers spelled out, long strings cut."""
    return json.dumps(_safe(record), sort_keys=True, default=_default, allow_nan=False)


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        if len(value) > RAW_TEXT_MAX:
            return f"{value[:RAW_TEXT_MAX]}... ({len(value)} characters)"
        return value.replace("\x00", "\\x00")
    if isinstance(value, np.ndarray):
        return _safe(value.tolist())
    if isinstance(value, Mapping):
        return {str(k)[:RAW_TEXT_MAX]: _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return repr(value)[:RAW_TEXT_MAX]
