"""The durable local queue of store writes: one SQLite file in WAL mode with synchronous=FULL.

A write the database could not take is appended here and is on disk (the WAL
fsynced by the commit) before `append` returns, so a killed process loses
nothing.  Entries keep their order (`seq`, never reused thanks to
AUTOINCREMENT, which also makes `-seq` a unique provisional id).  An entry is
deleted only after the database committed it; the provisional -> real signal
id it produced is stored in the same SQLite transaction, so a crash between
the database commit and the delete just replays one idempotent write.
Entries the database refuses for good are moved to `rejected` (kept for an
operator) instead of blocking the queue.  A small `state` table keeps what the
next start must know without the database (the migration head, a checkpoint
of the store as last seen): it lives here so it is exactly as durable as the
writes it goes with.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    method TEXT NOT NULL,
    arguments TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS signal_ids (
    provisional INTEGER PRIMARY KEY,
    real INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    method TEXT NOT NULL,
    arguments TEXT NOT NULL,
    created_at TEXT NOT NULL,
    error TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# Provisional ids are only referenced by calls made shortly after record_signal: keep a generous tail.
SIGNAL_IDS_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    seq: int
    method: str
    arguments: str  # JSON from bot.store.codec
    created_at: str


class SpoolFile:
    """Append, peek, delete: a FIFO on disk, safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit mode: every statement is its own durable transaction unless we BEGIN.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"spool {self.path}: SQLite refused WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=15000")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    @property
    def depth(self) -> int:
        """Entries waiting for the database."""
        return self._depth

    def append(self, method: str, arguments: str) -> int:
        """Store one call durably; returns its seq."""
        created_at = datetime.now(UTC).isoformat()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO entries (method, arguments, created_at) VALUES (?, ?, ?)",
                (method, arguments, created_at),
            )
            self._depth += 1
            return int(cursor.lastrowid)

    def append_many(self, calls: list[tuple[str, str]]) -> list[int]:
        """Store a cycle's calls (method, arguments) durably in one transaction (one fsync); their seqs."""
        created_at = datetime.now(UTC).isoformat()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seqs = [int(self._db.execute(
                    "INSERT INTO entries (method, arguments, created_at) VALUES (?, ?, ?)",
                    (method, arguments, created_at)).lastrowid) for method, arguments in calls]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth += len(seqs)
            return seqs

    def next_seq(self) -> int:
        """The seq the next append will get (for a provisional id handed out before appending)."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
            return (row[0] if row else 0) + 1

    def head(self, limit: int = 100, after: int = 0) -> list[SpoolEntry]:
        """The oldest entries with seq > `after`, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, method, arguments, created_at FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [SpoolEntry(*row) for row in rows]

    def delete(self, seqs: list[int], signal_ids: list[tuple[int, int]] = ()) -> None:
        """Drop committed entries in one transaction, remembering their (provisional, real) signal ids.

        Batched because each SQLite commit is an fsync; a crash before this
        commit only replays writes the database already has (idempotent).
        """
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR REPLACE INTO signal_ids (provisional, real) VALUES (?, ?)",
                                     list(signal_ids))
                if signal_ids:
                    newest = min(provisional for provisional, _ in signal_ids)
                    self._db.execute("DELETE FROM signal_ids WHERE provisional > ?", (newest + SIGNAL_IDS_KEPT,))
                deleted = self._db.executemany("DELETE FROM entries WHERE seq = ?", [(s,) for s in seqs]).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= deleted

    def reject(self, entry: SpoolEntry, error: str) -> None:
        """Move an entry the database refused for good out of the queue, keeping it for an operator."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?)",
                    (entry.seq, entry.method, entry.arguments, entry.created_at, error,
                     datetime.now(UTC).isoformat()),
                )
                deleted = self._db.execute("DELETE FROM entries WHERE seq = ?", (entry.seq,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= deleted

    def real_signal_id(self, provisional: int) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT real FROM signal_ids WHERE provisional = ?", (provisional,)).fetchone()
        return None if row is None else int(row[0])

    def rejected(self) -> list[tuple[int, str, str]]:
        """(seq, method, error) of the entries the database refused."""
        with self._lock:
            return [tuple(row) for row in self._db.execute("SELECT seq, method, error FROM rejected ORDER BY seq")]

    def get_state(self, key: str) -> str | None:
        """A value kept for the next start (None when absent)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str | None) -> None:
        """Keep (or, with None, forget) a value for the next start; durable when this returns."""
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def ping(self) -> bool:
        """True if the spool file can take a write (a rolled-back one)."""
        try:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
