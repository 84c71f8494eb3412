"""The measuring tools of the cycle benches: commit counting, medians with confidence, slopes, CPU timers.

Kept apart from the benches so tests/test_bench_cycle.py can prove them on known data in seconds:
a bench figure is only as good as the function that computes it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import event
from sqlalchemy.engine import Engine


class CommitCounter:
    """Counts the COMMITs a SQLAlchemy engine sends (ORM sessions and Core connections alike).

    It listens on the engine's ``commit`` connection event, which fires once per transaction that
    is committed - whatever code above it (the repository, a spool flush, a migration) asked for it.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.count = 0
        event.listen(engine, "commit", self._on_commit)

    def _on_commit(self, _connection: Any) -> None:
        self.count += 1

    def close(self) -> None:
        if event.contains(self.engine, "commit", self._on_commit):
            event.remove(self.engine, "commit", self._on_commit)


@dataclass(frozen=True)
class MedianCI:
    """A sample median and its distribution-free confidence interval."""

    median: float
    low: float
    high: float
    coverage: float  # the interval's exact coverage (>= the confidence asked for)
    n: int


def median_ci(values: Sequence[float], confidence: float = 0.95) -> MedianCI:
    """The median of `values` with the order-statistic confidence interval for the true median.

    Method (distribution-free, no assumption on the shape of the data): the number of values
    below the true median is Binomial(n, 1/2). With the sorted values x_(1) <= ... <= x_(n), the
    interval [x_(j), x_(n-j+1)] misses the true median only if fewer than j values are below it or
    fewer than j above, so its coverage is 1 - 2 P(B <= j-1); j is the largest for which that is at
    least `confidence`. Applied to paired differences (on minus off, one per round) it is the
    interval of the sign test. Written out rather than imported: scipy is not a dependency and the
    computation is ten lines of exact binomial sums.
    """
    x = sorted(float(v) for v in values)
    n = len(x)
    tail = (1 - confidence) / 2
    cumulative, j = 0.0, 0
    while j < n and cumulative + math.comb(n, j) / 2**n <= tail:
        cumulative += math.comb(n, j) / 2**n
        j += 1
    if j == 0:
        raise ValueError(f"{n} values are too few for a {confidence:.0%} interval of the median")
    return MedianCI(float(np.median(x)), x[j - 1], x[n - j], 1 - 2 * cumulative, n)


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ys over xs (the cost per pair and the fixed cost)."""
    if len(set(xs)) < 2:
        raise ValueError("a slope needs at least two distinct x values")
    slope, intercept = np.polyfit(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), 1)
    return float(slope), float(intercept)


class ThreadCPUTimer:
    """CPU time the calling thread spends inside wrapped callables (outermost calls only, one thread).

    Used for the bottom-up telemetry figure: every telemetry entry point the loop calls is wrapped,
    and a telemetry call that calls another wrapped one (an observer method that logs into the Loki
    handler) is counted once. Calls from other threads (the Loki pusher, the HTTP server) are not
    counted: the figure is the loop thread's.
    """

    def __init__(self, thread: threading.Thread | None = None, clock: Callable[[], int] = time.thread_time_ns):
        self.thread_id = (thread or threading.current_thread()).ident
        self.clock = clock
        self.ns = 0
        self.calls = 0
        self.by_name: dict[str, int] = {}  # nanoseconds per wrapped callable (outermost calls)
        self.calls_by_name: dict[str, int] = {}  # outermost calls per wrapped callable
        self._depth = 0

    def wrap(self, function: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        name = name or getattr(function, "__qualname__", repr(function))

        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self.thread_id:
                return function(*args, **kwargs)
            outermost = self._depth == 0
            self._depth += 1
            started = self.clock() if outermost else 0
            try:
                return function(*args, **kwargs)
            finally:
                self._depth -= 1
                if outermost:
                    spent = self.clock() - started
                    self.ns += spent
                    self.calls += 1
                    self.by_name[name] = self.by_name.get(name, 0) + spent
                    self.calls_by_name[name] = self.calls_by_name.get(name, 0) + 1

        timed.__wrapped__ = function  # type: ignore[attr-defined]
        return timed


class TimedProxy:
    """Stands in for an object: every method called through it is timed by `timer`."""

    def __init__(self, target: Any, timer: ThreadCPUTimer):
        self._target = target
        self._timer = timer

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        return self._timer.wrap(value, f"{type(self._target).__name__}.{name}") if callable(value) else value
