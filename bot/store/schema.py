"""The schema gate: the database is used only once it is migrated to the code's head.

Why: migrating in the constructor made a database that is down at start (server
stopped, closed port, wrong password) a traceback and exit 1, and under
``restart: unless-stopped`` a crash loop that never traded although the store
spool exists for exactly this.  Now:

- each successful migration records the head it reached in the spool file's
  ``state`` table, durable and beside the writes it goes with;
- when that recorded head is the code's head, the schema the database will have
  is known: the bot trades from its first cycle, every write goes to the spool,
  and :meth:`SchemaGate.poll` retries the migration on a backoff schedule;
- with no known head (a first-ever start, or new code with a new migration) the
  bot cannot know what it would write into, so it waits: :meth:`SchemaGate.wait`
  retries with tenacity, logs every backoff step and says why through
  ``reason`` (readiness, metrics);
- the gate opens only after a migration succeeded, so the spool never drains
  into a schema older than its writes.

A wrong password is "unreachable" too (the server answers, but not to us): the
reason says so without the password.  Failures that are not about reaching the
database (a broken migration) propagate: that is a bug, not an outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import tenacity

from bot.store.errors import is_connectivity_error
from bot.store.spool_file import SpoolFile
from db import migrate
from db.database import Database
from db.url import redact_url

log = logging.getLogger(__name__)

HEAD_KEY = "migration_head"


def unreachable_reason(database: Database, exc: BaseException) -> str:
    """One line on why the database cannot be used, never with its password."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = reason[0] if reason else type(exc).__name__
    password = database.url.password
    if password:
        text = text.replace(str(password), "***")
    return f"database {redact_url(database.url)} unreachable: {text}"


class SchemaGate:
    """Tracks whether the store's schema is at head; migrates when the database answers."""

    def __init__(
        self,
        database: Database,
        spool: SpoolFile,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.spool = spool
        self.code_head = migrate.head_revision()
        self.ready = False
        self.reason: str | None = "not migrated yet"
        self.attempts = 0
        self._clock = clock
        self._wait = tenacity.wait_exponential_jitter(multiplier=initial_backoff, max=max_backoff,
                                                      jitter=initial_backoff / 2)
        self._next_at = 0.0
        self._lock = threading.Lock()
        # The head the last successful migration reached (this run or an earlier one).
        self.known_head: str | None = spool.get_state(HEAD_KEY)

    @property
    def schema_known(self) -> bool:
        """True when the store may be written (directly, or spooled for the known schema)."""
        return self.ready or self.known_head == self.code_head

    @property
    def waiting(self) -> bool:
        """True while nothing may be stored at all: no database and no known schema."""
        return not self.schema_known

    def attempt(self) -> bool:
        """One migration attempt now; True once the schema is at head."""
        with self._lock:
            if self.ready:
                return True
            self.attempts += 1
            try:
                migrate.upgrade(self.database.engine, "head")
            except Exception as exc:
                if not is_connectivity_error(exc):
                    raise
                self.reason = unreachable_reason(self.database, exc)
                self._next_at = self._clock() + self.next_delay()
                changed = False
            else:
                self.spool.set_state(HEAD_KEY, self.code_head)
                self.known_head = self.code_head
                self.ready, self.reason, changed = True, None, True
        if changed:
            log.info("database %s at schema revision %s", redact_url(self.database.url), self.code_head,
                     extra={"attempts": self.attempts})
        return self.ready

    def poll(self) -> bool:
        """Non-blocking: True when migrated; otherwise one attempt if the backoff step is over."""
        if self.ready:
            return True
        if self._clock() < self._next_at:
            return False
        return self.attempt()

    def next_delay(self) -> float:
        """Seconds before the next attempt, on tenacity's exponential schedule with jitter."""
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = max(1, self.attempts)
        return float(self._wait(state))

    def wait(self, stop: threading.Event) -> bool:
        """Block until migrated (True) or `stop` is set (False), logging every backoff step."""
        if self.ready or self.attempt():
            return True
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda ok: not ok),
            wait=lambda _state: self.next_delay(),
            stop=lambda _state: stop.is_set(),
            sleep=stop.wait,
            before_sleep=self._log_step,
            retry_error_callback=lambda _state: False,
        )
        return bool(retrying(self.attempt))

    def _log_step(self, state: tenacity.RetryCallState) -> None:
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("no database and no known schema (first start): waiting %.1f s before attempt %d: %s",
                    delay, self.attempts + 1, self.reason,
                    extra={"attempts": self.attempts, "retry_in_s": round(delay, 3)})
