"""A bounded local file of log lines Loki did not take yet, pushed again on the next start.

Why: the in-memory queue of the Loki handler is lost when the process exits, and
overflows after a long Loki outage.  Lines that cannot be delivered in time (Loki
down at exit, queue overflow) are kept here instead, beside the store spool, and
the next start pushes them before its own lines (Loki rejects lines far older
than a stream's newest).  One SQLite file in WAL mode; the primary key is the
line's timestamp plus a hash of its text, so a line kept twice (or pushed again
after a crash between push and delete) is one line; Loki also ignores an entry
whose timestamp and text it already has in the stream.  Bounded by ``max_lines``:
what does not fit is refused and the caller counts it as dropped.

Why our own and not a persistent-queue package (persist-queue and the like): none keys
entries by content for de-duplication or refuses beyond a bound, and sqlite3 in WAL
mode is what the store spool and the order queue already rely on.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

# (unix ns, level, account or None, line, structured metadata), as in bot.telemetry.loki
Entry = tuple[int, str, str | None, str, dict[str, str]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lines (
    ts INTEGER NOT NULL,
    hash TEXT NOT NULL,
    level TEXT NOT NULL,
    account TEXT NOT NULL,
    line TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (ts, hash)
);
"""


def line_hash(line: str) -> str:
    return hashlib.blake2b(line.encode("utf-8"), digest_size=8).hexdigest()


class LogBacklog:
    """Append, read oldest first, delete: safe to share between the logging and the sender thread."""

    def __init__(self, path: str | Path, max_lines: int = 100_000) -> None:
        if not isinstance(max_lines, int) or max_lines < 1:
            raise ValueError(f"log backlog max_lines must be a positive integer, got {max_lines!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_lines = max_lines
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a log line is not worth an fsync each
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._count = self._db.execute("SELECT COUNT(*) FROM lines").fetchone()[0]
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def put(self, entries: Iterable[Entry], account: str) -> int:
        """Keep lines (``account`` fills lines logged before it was known); returns how many did not fit."""
        rows = [(ts, line_hash(line), level, acct or account, line, json.dumps(meta, ensure_ascii=False))
                for ts, level, acct, line, meta in entries]
        if not rows:
            return 0
        with self._lock:
            if self._closed:
                return len(rows)
            room = max(0, self.max_lines - self._count)
            kept = rows[:room]
            self._db.execute("BEGIN")
            try:
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO lines VALUES (?, ?, ?, ?, ?, ?)", kept)
                self._count += self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows) - len(kept)

    def head(self, limit: int) -> list[Entry]:
        """The oldest ``limit`` lines."""
        with self._lock:
            if self._closed:
                return []
            rows = self._db.execute(
                "SELECT ts, level, account, line, metadata FROM lines ORDER BY ts, hash LIMIT ?", (limit,)
            ).fetchall()
        return [(ts, level, account, line, json.loads(meta)) for ts, level, account, line, meta in rows]

    def delete(self, entries: Iterable[Entry]) -> None:
        """Forget lines Loki accepted."""
        keys = [(entry[0], line_hash(entry[3])) for entry in entries]
        with self._lock:
            if self._closed or not keys:
                return
            self._db.execute("BEGIN")
            try:
                before = self._db.total_changes
                self._db.executemany("DELETE FROM lines WHERE ts = ? AND hash = ?", keys)
                self._count -= self._db.total_changes - before
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
