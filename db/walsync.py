"""SQLite durability by fsyncing the WAL ourselves: at once, or right after the commit off the caller's thread.

Why: with ``synchronous=FULL`` SQLite fsyncs the WAL inside every COMMIT, on the committing thread.
A trading cycle's store writes are one transaction (group commit, db.database), and that one
fsync (~0.3 ms on a plain SSD) was a tenth of a whole cycle (issue 16). The connection runs with
``synchronous=NORMAL`` instead (in WAL mode: consistent after a power loss, the last commits may
be missing) and this class restores FULL's guarantee after each commit that wrote:

- a durable commit (the default: every commit but one kind) fsyncs the WAL before it returns,
  exactly what FULL does, so an order intent committed right before ``order_send`` and a spool
  chunk deleted after its replay are on disk first;
- a deferred commit (`deferred()`: the end of a cycle's unit, bot.store.batches) leaves the fsync
  to a background thread that looks every SYNC_INTERVAL_SECONDS (50 ms): one fsync covers every
  commit since the last. Those rows (the cycle's signals, snapshots, outcomes already known to the
  broker) are on disk within ~50 ms, and always before the next durable commit returns (the fsync
  covers the whole file). This is PostgreSQL's asynchronous commit, with its wal_writer_delay. A power loss in that window loses what a restart
  reconciles from the broker anyway; a killed process loses nothing (the OS has the pages).

A commit that changed no row (a read's; every transaction here begins with BEGIN IMMEDIATE, so
the transaction itself does not tell) fsyncs nothing: the connection's ``total_changes`` tells.
Schema changes count no rows, but a migration's commit also updates ``alembic_version``. Written
here rather than imported: neither sqlite3 nor SQLAlchemy offers a per-commit choice of sync.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_local = threading.local()

SYNC_INTERVAL_SECONDS = 0.05  # a deferred commit is on disk within this (plus the fsync's own time)


@contextmanager
def deferred() -> Iterator[None]:
    """Commits of this thread in the block are made durable in the background (see the module)."""
    previous = getattr(_local, "deferred", False)
    _local.deferred = True
    try:
        yield
    finally:
        _local.deferred = previous


class WalSync:
    """fsync of one database's WAL file, now or by a background thread; one per engine."""

    def __init__(self, database_path: str, interval: float = SYNC_INTERVAL_SECONDS) -> None:
        self.wal_path = database_path + "-wal"
        self.interval = interval
        self.syncs = 0  # fsyncs done (tests, benches)
        self.failures = 0
        self._lock = threading.Lock()  # one fsync at a time (the thread's, a durable commit's, flush's)
        self._done = threading.Condition()  # wait_idle
        self._pending = False  # a deferred commit not fsynced yet: set without a lock (see after_commit)
        self._busy = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failing = False
        self.on_failure: Callable[[], None] | None = None  # told of each failed fsync (the bot's metric)

    def after_commit(self) -> None:
        if not getattr(_local, "deferred", False):
            self.sync()
            return
        # Only a flag: the thread looks every `interval`. Waking it per commit (a Condition) cost the
        # loop ~0.5 ms a cycle in handing the GIL back and forth on 2 cores, as much as the fsync.
        # No lock: the thread clears the flag before it fsyncs, and a commit sets it after COMMIT
        # returned, so a commit is either covered by the fsync under way or seen next round.
        self._pending = True
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._done:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="sqlite-wal-sync", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Every deferred commit on disk, then the thread stops (Database.dispose); a later deferred
        commit starts it again."""
        with self._done:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(10)
        self.flush()

    def sync(self) -> None:
        """fsync the WAL now; raises what fsync raises."""
        with self._lock:
            try:
                fd = os.open(self.wal_path, os.O_RDONLY)
            except FileNotFoundError:
                return  # no WAL (checkpointed away at the last close): nothing unsynced
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.syncs += 1

    def flush(self) -> None:
        """Make every deferred commit durable now (at shutdown); never raises."""
        self._pending = False
        self._sync_logged()  # also waits for a background fsync under way (the lock)

    def wait_idle(self, timeout: float) -> bool:
        """True once no deferred fsync is pending or under way (tests, benches), False after `timeout` s."""
        with self._done:
            return self._done.wait_for(lambda: not (self._pending or self._busy), timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            if not self._pending:
                continue
            self._busy, self._pending = True, False
            try:
                self._sync_logged()
            finally:
                with self._done:
                    self._busy = False
                    self._done.notify_all()

    def _sync_logged(self) -> None:
        try:
            self.sync()
        except OSError as exc:
            self.failures += 1
            if self.on_failure is not None:
                self.on_failure()
            if not self._failing:  # said once per streak; the next durable commit raises it itself
                self._failing = True
                log.error("store WAL fsync failed: %s: the last cycle's writes may not be on disk", exc)
            return
        if self._failing:
            self._failing = False
            log.info("store WAL fsync works again")


class SyncingConnection(sqlite3.Connection):
    """A sqlite3 connection whose commit() makes the commit durable through its WalSync (if any)."""

    wal_sync: WalSync | None = None
    _changes_at_commit = 0

    def commit(self) -> None:
        super().commit()
        changes = self.total_changes
        if self.wal_sync is not None and changes != self._changes_at_commit:
            self._changes_at_commit = changes
            self.wal_sync.after_commit()
