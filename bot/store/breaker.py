"""A small, generic circuit breaker whose lock guards only its bookkeeping.

Why not pybreaker: pybreaker holds one lock for the whole wrapped call, so a
slow database (or broker) call would serialise every other caller behind it,
which is exactly when a bot must keep answering.  Here the lock is taken only
to read and change the state; the wrapped call runs outside it.

States: "closed" (calls flow, consecutive failures are counted), "open" (calls
fail fast for `reset_timeout` seconds, nothing is attempted), "half_open"
(exactly one trial call at a time is let through: success closes the breaker,
failure opens it again).  Every transition is reported to
`on_state_change(name, state)` outside the lock, so a slow or failing
observer can neither block nor break callers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

log = logging.getLogger(__name__)

CLOSED = "closed"
HALF_OPEN = "half_open"
OPEN = "open"
STATES = (CLOSED, HALF_OPEN, OPEN)

T = TypeVar("T")


class CircuitOpenError(RuntimeError):
    """Refused without trying: the breaker is open, or half-open with its one trial already in flight."""

    def __init__(self, breaker: str, retry_after: float) -> None:
        super().__init__(f"circuit {breaker!r} is open: not calling, retry in {retry_after:.1f}s")
        self.breaker = breaker
        self.retry_after = retry_after


def _count_everything(_exc: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Fail fast after `failure_threshold` consecutive failures; probe again after `reset_timeout` seconds.

    Use `call(fn, *args, **kwargs)`, the `guard()` context manager, or the
    explicit protocol `allow()` then exactly one of `record_success()` /
    `record_failure()`.  `is_failure(exc)` decides which exceptions count
    against the service (e.g. a refused INSERT means the database answered:
    not a failure); the exception is re-raised either way.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        on_state_change: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = _count_everything,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"breaker name must be a non-empty string, got {name!r}")
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
            raise ValueError(f"failure_threshold must be an integer >= 1, got {failure_threshold!r}")
        if isinstance(reset_timeout, bool) or not isinstance(reset_timeout, int | float) or not reset_timeout > 0:
            raise ValueError(f"reset_timeout must be a number of seconds > 0, got {reset_timeout!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = float(reset_timeout)
        self.is_failure = is_failure
        self._on_state_change = on_state_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started: float | None = None  # set while the half-open trial is in flight

    # -- what callers read ---------------------------------------------------------------

    @property
    def state(self) -> str:
        """"closed", "half_open" or "open" (an open breaker whose timeout passed reports half_open)."""
        with self._lock:
            changed = self._expire_open()
            state = self._state
        self._notify(changed)
        return state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far in the closed state."""
        with self._lock:
            return self._failures

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a trial through (0 when it would now)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    # -- the explicit protocol -----------------------------------------------------------

    def allow(self) -> bool:
        """May a call be attempted now?  In half-open, True for exactly one caller until it reports back."""
        with self._lock:
            changed = self._expire_open()
            if self._state == CLOSED:
                allowed = True
            elif self._state == OPEN:
                allowed = False
            else:
                now = self._clock()
                # A trial whose caller vanished without reporting must not wedge the breaker forever.
                stale = self._trial_started is not None and now - self._trial_started >= self.reset_timeout
                allowed = self._trial_started is None or stale
                if allowed:
                    self._trial_started = now
        self._notify(changed)
        return allowed

    def record_success(self) -> None:
        """The attempted call reached the service: close (from half-open) and forget past failures."""
        with self._lock:
            self._failures = 0
            self._trial_started = None
            changed = self._move(CLOSED)
        self._notify(changed)

    def record_failure(self) -> None:
        """The attempted call failed to reach the service: count it; open at the threshold or on a failed trial."""
        with self._lock:
            self._trial_started = None
            changed = None
            if self._state == HALF_OPEN:
                changed = self._open()
            elif self._state == CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    changed = self._open()
            # Already open (a call allowed before it opened came back late): stay open, keep the timer.
        self._notify(changed)

    def reset(self) -> None:
        """Force the closed state (an operator's action, or tests)."""
        with self._lock:
            self._failures = 0
            self._trial_started = None
            changed = self._move(CLOSED)
        self._notify(changed)

    # -- wrappers ------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` through the breaker; raises CircuitOpenError without calling it when refused."""
        with self.guard():
            return fn(*args, **kwargs)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """`with breaker.guard(): ...` — the block is the guarded call (raises CircuitOpenError when refused)."""
        if not self.allow():
            raise CircuitOpenError(self.name, self.retry_after())
        try:
            yield
        except BaseException as exc:
            if self.is_failure(exc):
                self.record_failure()
            else:
                self.record_success()
            raise
        self.record_success()

    # -- internals (called with the lock held) -------------------------------------------

    def _expire_open(self) -> str | None:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._trial_started = None
            return self._move(HALF_OPEN)
        return None

    def _open(self) -> str | None:
        self._opened_at = self._clock()
        self._failures = 0
        return self._move(OPEN)

    def _move(self, state: str) -> str | None:
        if self._state == state:
            return None
        self._state = state
        return state

    def _notify(self, state: str | None) -> None:
        if state is None:
            return
        level = logging.WARNING if state == OPEN else logging.INFO
        log.log(level, "circuit %s is now %s", self.name, state, extra={"breaker": self.name, "state": state})
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(self.name, state)
        except Exception:  # an observer's bug must not break the guarded path
            log.exception("on_state_change observer failed for circuit %s", self.name)
