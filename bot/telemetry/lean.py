"""Lean counters and histograms for the loop's hottest series, exposed exactly as prometheus_client's.

Why not prometheus_client's own Counter/Histogram here: the loop observes a broker call ~17 times a
cycle and a signal once per (symbol, strategy). prometheus_client spends four Python frames per
update (observable check, amount check, a value object behind its own lock; a histogram takes two
such locks, the sum's and the bucket's); measured on the bench bot that was most of telemetry's
loop-thread cost (issue 16: "telemetry CPU cost <= 1 % of a cycle"). A child here is one frame
and one lock. Everything else stays prometheus_client's: the registry, the exposition formats and
the metric families (CounterMetricFamily, HistogramMetricFamily) these collectors yield, with the
same samples a prometheus_client metric of the same name yields (`_total` / `_bucket` `_count`
`_sum`, `_created`, exemplars): tests/test_telemetry_lean.py compares the two expositions.

Only what the bot uses is here: labelled metrics, `labels(*values)` (positional), `inc`, `observe`,
`observe_many` (a batch, as many `observe` calls), and `fold_first`: observations the loop left pending
(bot.telemetry.deferred) are folded in before every collect, so a reader sees all of them.
`FoldingGauge` is prometheus_client's own Gauge with that `fold_first`, for gauges a fold sets.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import partial, reduce
from operator import add
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from bot.telemetry.deferred import Deferred

EXEMPLAR_MAX_RUNES = 128  # OpenMetrics: label names and values of an exemplar together


def _exemplar(labels: Mapping[str, str], value: float) -> Exemplar:
    runes = sum(len(k) + len(v) for k, v in labels.items())
    if runes > EXEMPLAR_MAX_RUNES:
        raise ValueError(f"exemplar labels have {runes} UTF-8 characters, exceeding the limit of {EXEMPLAR_MAX_RUNES}")
    return Exemplar(dict(labels), value, time.time())


class _Family(Collector):
    """A labelled metric: children by label values, registered on `registry` as one collector."""

    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()
        self._pending: list[Deferred] = []
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str):
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values, got {len(values)}")
        key = tuple(str(v) for v in values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._child()
        return child

    def _child(self):
        raise NotImplementedError

    def fold_first(self, pending: Deferred, ahead: bool = False) -> None:
        """Fold `pending` into this family's children before every collect (bot.telemetry.deferred);
        `ahead`: before the pending lists registered so far (a fold of `pending` appends to them)."""
        if ahead:
            self._pending.insert(0, pending)
        else:
            self._pending.append(pending)

    def _snapshot(self) -> list[tuple[tuple[str, ...], object]]:
        for pending in self._pending:
            pending.fold_pending()
        with self._lock:
            return list(self._children.items())

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> Metric:
        raise NotImplementedError


class LeanCounterChild:
    __slots__ = ("_lock", "_value", "created")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        with self._lock:
            self._value += amount

    def get(self) -> float:
        with self._lock:
            return self._value


class LeanCounter(_Family):
    """A labelled counter; `name` without `_total` (as prometheus_client.Counter is given it)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry | None = None) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, registry)

    def _child(self) -> LeanCounterChild:
        return LeanCounterChild()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._snapshot():
            family.add_metric(values, child.get(), created=child.created)
        yield family


class LeanHistogramChild:
    __slots__ = ("_bounds", "_bucket_of", "_counts", "_exemplars", "_lock", "_sum", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._bucket_of = partial(bisect_left, bounds)  # C-level: no Python frame per value in observe_many
        self._counts = [0.0] * len(bounds)
        self._exemplars: list[Exemplar | None] = [None] * len(bounds)
        self._sum = 0.0
        self._lock = threading.Lock()
        self.created = time.time()

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        if amount != amount:  # NaN (bisect would put it first): prometheus_client adds it to the sum only
            with self._lock:
                self._sum += amount
            return
        index = bisect_left(self._bounds, amount)  # the first bucket with amount <= le (+Inf catches all)
        if exemplar:
            exemplar = _exemplar(exemplar, amount)
        with self._lock:
            self._sum += amount
            self._counts[index] += 1
            if exemplar:
                self._exemplars[index] = exemplar

    def observe_many(self, amounts: Iterable[float]) -> None:
        """`observe(a)` for each of `amounts` in order (no exemplars), under one lock: the same counts and
        the same sum, added in the same order. A NaN among them takes the one-by-one path."""
        amounts = list(amounts)
        buckets = list(map(self._bucket_of, amounts))
        with self._lock:
            total = reduce(add, amounts, self._sum)
            # A NaN among them (bisect would put it in the first bucket): one by one, as observe() does.
            if total != total and (self._sum == self._sum or any(map(math.isnan, amounts))):
                nan = True
            else:
                nan = False
                counts = self._counts
                for index in buckets:
                    counts[index] += 1
                self._sum = total
        if nan:
            for amount in amounts:
                self.observe(amount)

    def snapshot(self) -> tuple[list[float], list[Exemplar | None], float]:
        with self._lock:
            return list(self._counts), list(self._exemplars), self._sum


class LeanHistogram(_Family):
    """A labelled histogram with fixed buckets (+Inf added when missing)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 registry: CollectorRegistry | None = None) -> None:
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        if len(bounds) < 2:
            raise ValueError("Must have at least two buckets")
        self.bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> LeanHistogramChild:
        return LeanHistogramChild(self.bounds)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, child in self._snapshot():
            counts, exemplars, total = child.snapshot()
            buckets, running = [], 0.0
            for le, count, exemplar in zip(self._le, counts, exemplars, strict=True):
                running += count
                buckets.append((le, running, exemplar) if exemplar is not None else (le, running))
            family.add_metric(values, buckets, total)
            family.samples.append(Sample(self.name + "_created", dict(zip(self.labelnames, values, strict=True)),
                                         child.created))
        yield family


class FoldingGauge(Gauge):
    """prometheus_client's Gauge that folds pending observations (bot.telemetry.deferred) before every
    collect: for gauges set from what the loop left pending (the last cycle's end, account, positions)."""

    def fold_first(self, pending: Deferred) -> None:
        """Fold `pending` before every collect of this gauge (its labelled children are read then)."""
        # Set here, not in __init__: prometheus_client builds each labelled child with the class's own
        # constructor and its keyword arguments; the parent is what the registry collects.
        self.__dict__.setdefault("_fold_before", []).append(pending)

    def collect(self) -> Iterable[Metric]:
        for pending in self.__dict__.get("_fold_before", ()):
            pending.fold_pending()
        return super().collect()
