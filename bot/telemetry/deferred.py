"""Observations the trading loop hands over with one C-level append, folded into their metrics later.

Why: the loop reports ~17 broker calls, a signal per (symbol, strategy) and a cycle every cycle.
Folding each into its histogram or counter as it happens costs a Python frame or two, a lock and a
bisect per event, and most of that is cold-cache time between the cycle's own work (issue 16:
"telemetry CPU cost <= 1 % of a cycle"). Here the producer only calls `append` - the bound
`list.append` of the pending list, which runs in C and is atomic under the GIL - and the pending
observations are folded in one batch, the same code hot in the cache for every item.

When they are folded, so that nothing is lost or counted twice:

- by every reader: the metric families register a `Deferred` with `fold_first` and fold it at the
  start of their `collect()`, so /metrics, `registry.get_sample_value` and tests see every
  observation appended before the read;
- by the loop, once `fold_every` items are waiting (`keep_bounded`, checked at least every 32 cycles,
  bot.instrumentation): memory stays bounded when nobody scrapes - at most `fold_every` items plus
  what the cycles between two checks append (~550 broker calls).

One lock orders the folds: a fold takes the items not yet folded and moves a cursor past them,
whichever thread does it, while producers go on appending. Optionally (`count_cycles`) a second
cursor hands each cycle the items appended since the previous one (`take`): the per-minute history
counts the cycle's broker calls from them, whether or not a scrape has folded them meanwhile.

Written here rather than taken from a library: prometheus_client updates its metrics in place
(a lock and frames per update) and offers no deferred form; its multiprocess mode writes files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

FOLD_EVERY = 4096  # items: ~240 cycles of broker calls at 17 a cycle; a few hundred KiB at most


class Deferred:
    """A pending list of observations and the function that folds a batch of them into metrics.

    `fold(batch)` gets the items in the order they were appended, under this object's lock, and
    must not raise (what it folds was validated when it was appended).
    """

    def __init__(self, fold: Callable[[list[Any]], None], fold_every: int = FOLD_EVERY) -> None:
        if fold_every < 1:
            raise ValueError(f"fold_every must be a positive integer, got {fold_every!r}")
        #: The pending list itself: producers append, folds and takes remove from the front.
        self.items: list[Any] = []
        #: What producers call, from any thread: the list's own append (no Python frame).
        self.append: Callable[[Any], None] = self.items.append
        #: Several at once, from a list (a cycle's signals): list.extend of a list, one C call, as atomic.
        self.extend: Callable[[list[Any]], None] = self.items.extend
        #: Items removed from the front so far: `removed + len(items)` counts every item ever appended
        #: (read it through `appended`, which no drop on another thread can tear).
        self.removed = 0
        self._drops = 0  # odd while a drop runs, one more after it (see appended)
        self._fold = fold
        self.fold_every = fold_every
        self._lock = threading.Lock()
        self._folded = 0  # items before this index (counted from the first ever) are in the metrics
        self._counted: int | None = None  # with count_cycles: items before this index were taken

    def __len__(self) -> int:
        """Items held: not yet folded, or folded but not yet taken."""
        return len(self.items)

    def fold_pending(self) -> None:
        """Fold every item appended so far (any thread; what a reader calls before it reads)."""
        with self._lock:
            items = self.items
            end = len(items)
            start = self._folded - self.removed
            if end > start:
                self._fold(items[start:end])
                self._folded = self.removed + end
            if self._counted is None:
                self._drop(self._folded)

    def appended(self) -> int:
        """How many items were ever appended, from any thread, without waiting for the lock.

        A drop (by a fold or a take, possibly a reader's on another thread) deletes the front of the
        list and then moves `removed`: a sum read in between would be short. So the sum is read between
        two reads of a drop counter that a drop makes odd while it runs (a sequence lock): equal and
        even, no drop ran meanwhile. Else, rarely, the sum is read under the lock. Not the lock every
        time: a scrape folds a batch under it, and the loop calls this every cycle (bot.instrumentation)."""
        drops = self._drops
        count = self.removed + len(self.items)
        if drops == self._drops and not drops & 1:
            return count
        with self._lock:
            return self.removed + len(self.items)

    def keep_bounded(self) -> None:
        """Fold once `fold_every` items are held (the loop calls this regularly)."""
        if len(self.items) >= self.fold_every:
            self.fold_pending()

    def count_cycles(self) -> None:
        """From now on, keep every item until `take` has handed it out too (the caller takes regularly)."""
        with self._lock:
            if self._counted is None:
                self._counted = self.removed + len(self.items)

    def take(self, end: int | None = None) -> tuple[int, list[Any]]:
        """(index of the first, items) appended since the previous `take` and before index `end` (all so
        far without it), folded or not, oldest first; indexes count from the first item ever appended."""
        with self._lock:
            first = self._counted
            if first is None:
                raise RuntimeError("take() needs count_cycles() first")
            items = self.items
            removed = self.removed
            stop = len(items) if end is None else end - removed
            taken = items[first - removed:stop]
            self._counted = removed + stop
            self._drop(min(self._folded, self._counted))
        return first, taken

    def _drop(self, done: int) -> None:
        drop = done - self.removed
        if drop > 0:
            self._drops += 1  # odd: a drop runs (see appended)
            del self.items[:drop]  # atomic: an append racing with it lands after the kept items
            self.removed = done
            self._drops += 1
