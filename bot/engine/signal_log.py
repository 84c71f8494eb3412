"""A cycle's signals on their way to the store: HOLDs wait, the next signal that needs its id takes them along.

Why: every (symbol, strategy) pair records a signal each bar, HOLD included, and one store write
per signal (a statement, a savepoint, a counter upsert) was most of what a pair cost a cycle.
Nothing reads a HOLD's id, so a HOLD is kept here until a BUY or SELL needs its own id (it is
about to become an order) or the cycle's loop over the strategies ends; then every waiting signal
goes to the store in one `record_signals` call.  The store sees the same calls in the same order
as one `record_signal` per signal (so the rows and their ids are the same) and nothing reads the
signals table in between; the one difference is when a store refusal (a repeated signal with
other content) is raised: at the flush, not at the HOLD.
"""

from __future__ import annotations

from typing import Any

from db import SignalRecord


class PendingSignals:
    """The signals of the cycle not stored yet, oldest first."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo
        self._waiting: list[SignalRecord] = []

    def hold(self, rec: SignalRecord) -> None:
        """A signal whose id nobody asks for: stored with the next `record` or `flush`."""
        self._waiting.append(rec)

    def record(self, rec: SignalRecord) -> int:
        """Store the waiting signals and this one; this one's id."""
        self._waiting.append(rec)
        return self._store()[-1]

    def flush(self) -> None:
        """Store the waiting signals (the end of the cycle's strategies, or a cycle that failed)."""
        if self._waiting:
            self._store()

    def _store(self) -> list[int]:
        batch, self._waiting = self._waiting, []
        record_many = getattr(self.repo, "record_signals", None)  # a test's fake store may have only the one
        if record_many is None:
            return [self.repo.record_signal(rec) for rec in batch]
        return record_many(batch)
