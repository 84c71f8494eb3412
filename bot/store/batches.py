"""The spooled store's batches: a cycle's writes as one unit of work, and the drain a chunk at a time.

Why a module of its own: these are the two places where many writes share one database
transaction, and where a failure must leave every write either committed or in the spool
(never neither): the rest of bot.store.spool is one call at a time.  See bot.store.spool's
docstring ("Group commit") for the behaviour; `Batches` is mixed into `SpooledRepository`, whose
state (`_lock`, `spool`, `breaker`, `repository`, the signal id cache) it uses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bot.store import codec
from bot.store.errors import is_connectivity_error
from db.errors import OutcomeConflict, StoreError

log = logging.getLogger("bot.store.spool")

# Spooled writes replayed per database transaction (and spool deletes per SQLite commit) while draining.
DELETE_BATCH = 64


class Batches:
    """Group commit (`unit`, `commit`) and the chunked drain of SpooledRepository."""

    # -- group commit ------------------------------------------------------------------------

    @contextmanager
    def unit(self) -> Iterator[None]:
        """One database transaction (and commit) for every call of this thread in the block: a cycle.

        Re-entrant. Committed at the end even when the block raises (what was stored stays stored,
        as with one transaction per call); a commit that fails spools the batch instead.
        """
        if self._unit_owner == threading.get_ident():
            yield
            return
        with self._lock, self.repository.unit():
            self._unit_owner = threading.get_ident()
            try:
                yield
            finally:
                try:
                    self.commit(durable=False)  # the cycle's end: its fsync runs beside the pacer's wait
                finally:
                    self._unit_owner = None

    def commit(self, durable: bool = True) -> None:
        """Make the open unit's writes durable now (right before an order leaves the process).

        Outside a unit a no-op. A commit that fails spools the unit's calls (durable in the spool
        file when this returns), so the caller may go on either way. `durable=False` is the end of
        the unit: on SQLite durable right after, off this thread (db.walsync).
        """
        if self._unit_owner != threading.get_ident():
            return
        calls, self._unit_calls = self._unit_calls, []
        trial, self._unit_trial = self._unit_trial, False
        try:
            self.repository.commit(durable)
        except Exception as exc:  # noqa: BLE001 - landed or not, the spool replays it idempotently
            self._unit_lost(calls, exc, trial)
            return
        if trial:
            self.breaker.record_success()

    def rollback(self) -> None:
        """Give up the open unit's transaction: its calls go to the spool, replayed when the database answers."""
        if self._in_unit():
            self._unit_lost(self._unit_calls, RuntimeError("unit rolled back"), False)

    @property
    def commits(self) -> int:
        """Database commits so far (db.database.Database.commits): one per cycle, plus one per order sent."""
        return self.repository.commits

    def _in_unit(self) -> bool:
        return self._unit_owner == threading.get_ident()

    def _unit_allows(self) -> bool:
        """The breaker is asked once per unit transaction (its one trial when half-open)."""
        if not self._unit_trial:
            self._unit_trial = self.breaker.allow()
        return self._unit_trial

    def _unit_lost(self, calls: list[tuple[str, dict[str, Any]]], exc: BaseException, trial: bool) -> None:
        """The unit's transaction is gone: its calls go to the spool as one batch, in order."""
        self._unit_calls, self._unit_trial = [], False
        try:
            self.repository.rollback()
        except Exception:  # noqa: BLE001 - a connection that is gone has nothing left to roll back
            log.debug("unit rollback failed", exc_info=True)
        if trial or is_connectivity_error(exc):
            self.breaker.record_failure()
        if calls:
            self.spool.append_many([(method, codec.dumps(arguments)) for method, arguments in calls])
            self._report_depth()
        log.warning("store unreachable (%s): this cycle's %d writes spooled, spooling from here on",
                    type(exc).__name__, len(calls), extra={"spooled": len(calls)})

    def _drain(self, deadline: float | None) -> int:
        """Replay the spool in order, a chunk per database transaction, deleting a chunk once committed."""
        if not self._schema_ready():
            return 0  # never into a schema older than the spooled writes
        if self._unit_calls:
            self.commit()  # a cycle's direct writes are older than anything spooled after them
        flushed = 0
        last = 0
        with self.repository.unit():
            while batch := self.spool.head(DELETE_BATCH, after=last):
                if not self.breaker.allow():
                    return flushed
                done, signal_ids, stop = self._replay_chunk(batch, deadline)
                if stop == "lost":
                    self.breaker.record_failure()
                    return flushed
                try:
                    self.repository.commit()
                except Exception as exc:  # noqa: BLE001 - nothing of the chunk is deleted: replayed later
                    self._lose_chunk(signal_ids)
                    if is_connectivity_error(exc):
                        self.breaker.record_failure()
                        return flushed
                    raise
                self.breaker.record_success()
                # A kill before this delete commits just replays these writes (idempotent).
                flushed += len(done)
                self._forget_flushed(done, signal_ids)
                if stop:
                    return flushed
                last = batch[-1].seq
        return flushed

    def _replay_chunk(self, batch: list[Any], deadline: float | None) -> tuple[list[int], list[tuple[int, int]], str]:
        """Run spooled calls in the open transaction: (seqs done, (provisional, real) signal ids, stop).

        stop: "" (go on), "deadline" (commit what ran, then stop) or "lost" (the connection failed:
        the transaction is rolled back, nothing of the chunk is done).
        """
        done: list[int] = []
        signal_ids: list[tuple[int, int]] = []
        for entry in batch:
            if deadline is not None and time.monotonic() >= deadline:
                return done, signal_ids, "deadline"
            try:
                arguments = self._translate(codec.loads(entry.arguments), final=True)
            except (ValueError, TypeError, StoreError) as exc:
                self._reject(entry, exc)
                continue
            try:
                result = getattr(self.repository, entry.method)(**arguments)
            except Exception as exc:
                if is_connectivity_error(exc):
                    self.repository.rollback()
                    self._lose_chunk(signal_ids)
                    return [], [], "lost"
                if not _superseded(entry.method, arguments, exc):
                    self._reject(entry, exc)
                    continue
                result = None
            except BaseException:
                self.repository.rollback()  # a kill: nothing of this chunk is committed
                self._lose_chunk(signal_ids)
                raise
            done.append(entry.seq)
            if entry.method == "record_signal":
                signal_ids.append((-entry.seq, int(result)))
                self._remember_signal_id(-entry.seq, int(result))  # later entries of the chunk refer to it
        return done, signal_ids, ""

    def _lose_chunk(self, signal_ids: list[tuple[int, int]]) -> None:
        """Real ids from a transaction that did not commit must not translate anything any more."""
        for provisional, _ in signal_ids:
            self._signal_ids.pop(provisional, None)

    def _forget_flushed(self, done: list[int], signal_ids: list[tuple[int, int]]) -> None:
        if not done:
            return
        self.spool.delete(done, signal_ids)
        done.clear()
        signal_ids.clear()
        self._report_depth()
        if not self.spool.depth:
            log.info("store spool drained: the database has every write")

    def _reject(self, entry: Any, exc: Exception) -> None:
        log.error("store refused spooled %s (seq %d): %s: %s; kept in the spool's rejected table",
                  entry.method, entry.seq, type(exc).__name__, exc)
        self.spool.reject(entry, f"{type(exc).__name__}: {exc}")
        self._mirror.clear()  # it had assumed this write would land
        self._report_depth()


def _superseded(method: str, arguments: dict[str, Any], exc: Exception) -> bool:
    """A replayed 'unknown' outcome of an order that has since settled: moot, not a refusal.

    'unknown' is never a final fact, so when a crash makes the flush replay
    [unknown, filled] after both landed, the repeated 'unknown' is dropped.
    """
    outcome = arguments.get("outcome")
    return (method == "record_order_outcome" and isinstance(exc, OutcomeConflict)
            and getattr(outcome, "status", None) == "unknown")
