"""MinuteRollup.add_many: a batch folded at once gives what adding its figures one by one gives.

The batch fold (bot.history, issue 16) sums each column with C-level folds when a batch lies in one
minute and in the settled broker day; any other batch goes figure by figure. Here two rollups get the
same figures, one in batches and one figure by figure, over minutes, day rollovers, an offset change,
a clock stepped back and figures without a broker time: every stored minute row, every closed day
and every offset written must be the same, to the last bit of the float sums.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bot.history import FIGURE_FIELDS, MinuteRollup
from bot.instrumentation import CycleFigures

START = datetime(2026, 3, 27, 21, 50, tzinfo=UTC)  # broker midnight at GMT+2 is 22:00 UTC: a rollover soon


class Repo:
    def __init__(self) -> None:
        self.minutes: list = []
        self.offsets: list = []

    def record_metrics_minute(self, minute) -> None:
        self.minutes.append(minute)

    def prune_metrics_history(self, account, older_than) -> None:
        pass

    def record_broker_offset(self, account, since, offset) -> None:
        self.offsets.append((since, offset))


def _rollup(offset: dict) -> tuple[MinuteRollup, Repo, list]:
    repo, days = Repo(), []
    return MinuteRollup(repo, "1", on_day_closed=days.append, clock=lambda: 1.0e9,
                        offset_of=lambda: offset["now"]), repo, days


def _cycles(rng: random.Random, count: int):
    """Figures as Instrumentation builds them: mostly seconds apart, now and then a jump or a step back."""
    wall, broker = START.timestamp(), START
    for n in range(count):
        step = rng.choice((0.1, 0.2, 0.3, 0.5)) if rng.random() > 0.01 else rng.choice((-90.0, 61.0, 400.0))
        wall += step
        broker += timedelta(seconds=abs(step))
        yield CycleFigures(wall, rng.uniform(0.001, 0.02), rng.randint(0, 8), rng.randint(0, 2), rng.randint(0, 1),
                           rng.randint(5, 30), rng.uniform(0.0, 0.01), 1_000_000 + n, rng.uniform(0, 100), True,
                           None if n % 97 == 5 else broker)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_store_what_figure_by_figure_stores(seed: int) -> None:
    rng = random.Random(seed)
    offset = {"now": 7200}
    batched, batched_repo, batched_days = _rollup(offset)
    single, single_repo, single_days = _rollup(offset)
    one_by_one = []
    batched.add = lambda figures: (one_by_one.append(figures), MinuteRollup.add(batched, figures))
    figures = list(_cycles(rng, 6000))
    fed = 0
    while fed < len(figures):
        if fed > 3000 and offset["now"] == 7200:
            offset["now"] = 10800  # the offset changes (a DST switch): both see it from the same figure on
        batch = figures[fed:fed + rng.randint(1, 40)]
        fed += len(batch)
        batched.add_many(batch)
        for one in batch:
            single.add(one)
    batched.flush()
    single.flush()
    assert batched_repo.minutes == single_repo.minutes
    assert batched_days == single_days and len(single_days) >= 1
    assert batched_repo.offsets == single_repo.offsets and len(single_repo.offsets) >= 2
    assert len(single_repo.minutes) > 50
    assert one_by_one and len(figures) - len(one_by_one) > len(figures) // 3  # both ways were taken, often


def test_the_fold_reads_every_field_of_a_cycle_figures() -> None:
    """The fold reads the figures by position: CycleFigures must have the layout it was written for."""
    assert len(CycleFigures._fields) == FIGURE_FIELDS
    assert CycleFigures._fields[:9] == ("finished_at", "duration_seconds", "signals", "orders", "trades_executed",
                                        "broker_calls", "broker_latency_seconds", "memory_rss_bytes", "cpu_percent")
    assert CycleFigures._fields[10] == "broker_time"


def test_figures_that_are_not_tuples_are_added_one_by_one() -> None:
    offset = {"now": 0}
    rollup, repo, _ = _rollup(offset)
    moment = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    kinds = []
    rollup.add = lambda figures: (kinds.append(type(figures)), MinuteRollup.add(rollup, figures))
    figures = [SimpleNamespace(finished_at=moment.timestamp() + n, duration_seconds=0.01, signals=1, orders=0,
                               trades_executed=0, broker_calls=3, broker_latency_seconds=0.001, memory_rss_bytes=1,
                               cpu_percent=1.0, ok=True, broker_time=moment + timedelta(seconds=n)) for n in range(4)]
    rollup.add_many(figures[:1])  # settles the day
    rollup.add_many(figures[1:])
    rollup.flush()
    assert kinds == [SimpleNamespace] * 4
    assert [m.cycles for m in repo.minutes] == [4] and repo.minutes[0].broker_calls == 12
