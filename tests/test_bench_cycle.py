"""The cycle benches' measuring tools on known data: commits counted, median intervals that cover,
slopes fitted, CPU timers that count what they wrap (bench/_measure.py), and the benches' bots
classified and instrumented as the benches need. No timing assertion: figures are the bench's job.
"""

from __future__ import annotations

import math
import threading
from itertools import count

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench import _rig
from bench._measure import CommitCounter, ThreadCPUTimer, TimedProxy, fit_line, median_ci
from bench.cycle import BAR_STEP, NO_BAR_STEP, Bot, verdicts
from bench.telemetry import group_round, instrument


@pytest.fixture
def database(scratch_sqlite):
    return scratch_sqlite  # tests/conftest.py


def test_commit_counter_counts_committed_transactions_only(database):
    counter = CommitCounter(database.engine)
    for value in range(3):
        with database.engine.begin() as conn:  # Core: one commit each
            conn.execute(text("insert into t values (:x)"), {"x": value})
    with Session(database.engine) as session:  # ORM: one commit
        session.execute(text("insert into t values (9)"))
        session.commit()
    with database.engine.connect() as conn:  # rolled back: not a commit
        conn.execute(text("insert into t values (10)"))
        conn.rollback()
    assert counter.count == 4
    counter.close()
    with database.engine.begin() as conn:
        conn.execute(text("insert into t values (11)"))
    assert counter.count == 4  # closed: no longer listening
    with database.engine.connect() as conn:
        assert conn.execute(text("select count(*) from t")).scalar() == 5


def test_median_interval_is_the_binomial_order_statistics():
    ci = median_ci(range(1, 11))
    # n = 10: P(B <= 1) = 11/1024 <= 2.5 % < P(B <= 2) = 56/1024, so [x_(2), x_(9)]
    assert (ci.median, ci.low, ci.high) == (5.5, 2, 9)
    assert ci.coverage == pytest.approx(1 - 2 * 11 / 1024)
    with pytest.raises(ValueError, match="too few"):
        median_ci([1, 2, 3, 4, 5])  # no order-statistic interval reaches 95 % with five values


def test_median_interval_covers_the_true_median_on_skewed_data():
    rng = np.random.default_rng(16)
    true_median = math.exp(1.0)  # lognormal(mu=1): median e, far from its mean
    trials = 400
    covered = 0
    for _ in range(trials):
        ci = median_ci(rng.lognormal(1.0, 0.8, size=60))
        assert ci.low <= ci.median <= ci.high and ci.coverage >= 0.95
        covered += ci.low <= true_median <= ci.high
    assert 0.93 <= covered / trials <= 0.995  # nominal coverage >= 95 %, exact for n = 60 about 97 %
    shifted = median_ci(rng.normal(0.8, 1.0, size=200))  # paired differences centred on +0.8
    assert shifted.low <= 0.8 <= shifted.high and shifted.low > 0


def test_fit_line_recovers_cost_per_pair_and_fixed_cost():
    pairs = [1, 4, 8, 12]
    assert fit_line(pairs, [1.4 + 0.955 * p for p in pairs]) == (pytest.approx(0.955), pytest.approx(1.4))
    rng = np.random.default_rng(5)
    noisy = [2.0 + 0.25 * p + rng.normal(0, 0.01) for p in pairs]
    slope, intercept = fit_line(pairs, noisy)
    assert slope == pytest.approx(0.25, abs=0.01) and intercept == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError):
        fit_line([4, 4], [1.0, 2.0])


def test_cpu_timer_counts_outermost_calls_on_its_thread_only():
    ticks = count(0, 10)
    timer = ThreadCPUTimer(clock=lambda: next(ticks))
    inner = timer.wrap(lambda x: x + 1)
    outer = timer.wrap(lambda x: inner(x) * 2)
    assert outer(1) == 4
    assert (timer.calls, timer.ns) == (1, 10)  # one clock read before, one after: the inner call is inside
    assert inner(1) == 2 and timer.calls == 2
    other = threading.Thread(target=lambda: outer(5))
    other.start()
    other.join(10)
    assert timer.calls == 2  # another thread's calls are not the loop thread's cost

    class Observer:
        label = "obs"

        def signal(self, action):
            return action.lower()

    proxy = TimedProxy(Observer(), timer)
    assert proxy.label == "obs" and proxy.signal("BUY") == "buy" and timer.calls == 3
    with pytest.raises(ValueError):
        timer.wrap(lambda: (_ for _ in ()).throw(ValueError("boom")))()
    assert timer.calls == 4 and timer._depth == 0  # an exception still closes the timing


def test_verdicts_miss_what_was_not_measured(capsys):
    from bench.cycle import TARGETS

    values = {name: target for name, (_unit, target) in TARGETS.items()}
    assert verdicts(values) == 0  # a figure at its target passes
    assert capsys.readouterr().out.count("PASS") == len(TARGETS)
    values["bar cycle at 4x2, over the bridge"] = float("nan")
    values["bridge call / bare TCP round trip"] = 8.4
    assert verdicts(values) == 2
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.endswith("MISS") for line in lines) == 2 and len(lines) == len(TARGETS)


def test_bench_bot_classifies_bar_cycles_and_counts_its_commits(tmp_path):
    bar = Bot("bar", _rig.bot(f"{tmp_path}/bar.db", symbols=("EURUSD",), strategies=("ma_crossover",),
                              cycle_seconds=BAR_STEP), 1)
    quiet = Bot("quiet", _rig.bot(f"{tmp_path}/quiet.db", symbols=("EURUSD",), strategies=("ma_crossover",),
                                  cycle_seconds=NO_BAR_STEP), 1)
    try:
        bar.run(1, keep=False)
        quiet.run(1, keep=False)
        bar.run(3)
        quiet.run(6)
    finally:
        bar.close()
        quiet.close()
    assert all(c.error is None for c in bar.cycles + quiet.cycles)
    assert [c.new_bar for c in bar.cycles] == [True] * 3  # a 60 s step closes an M1 bar every cycle
    assert sum(c.new_bar for c in quiet.cycles) <= 1  # 5 s steps: at most one bar closes in 30 s
    assert all(c.commits >= 1 for c in bar.cycles)  # 60 s apart: every cycle stores its snapshot
    # 5 s apart: a snapshot at most every 20 s when nothing changed (bot.engine.snapshot), not every cycle
    assert 1 <= sum(c.commits >= 1 for c in quiet.cycles) < len(quiet.cycles)


def test_bottom_up_instrumentation_times_telemetry_without_breaking_cycles(tmp_path):
    app = _rig.bot(f"{tmp_path}/on.db", symbols=("EURUSD",), strategies=("ma_crossover",), cycle_seconds=BAR_STEP)
    try:
        app.start_telemetry(serve=False)
        app.engine.run_cycle()
        timer = ThreadCPUTimer()
        instrument(app, timer)
        reports = [app.engine.run_cycle() for _ in range(2)]
        assert all(r.ok for r in reports)
        assert timer.calls >= 2 * 2  # at least cycle_finished and a broker call per cycle
        assert timer.ns > 0
        assert app.metrics.registry is not None  # proxied attributes still read through
    finally:
        _rig.close_bot(app)


def test_group_round_runs_real_bots_in_turn_through_the_same_market_time(tmp_path):
    on = _rig.bot(f"{tmp_path}/on.db", symbols=("EURUSD",), strategies=("ma_crossover",), cycle_seconds=BAR_STEP)
    off = _rig.bot(f"{tmp_path}/off.db", symbols=("EURUSD",), strategies=("ma_crossover",), cycle_seconds=BAR_STEP)
    try:
        on.start_telemetry(serve=False)
        order = []
        for app, name in ((on, "on"), (off, "off")):
            run = app.engine.run_cycle
            app.engine.run_cycle = lambda run=run, name=name: order.append(name) or run()
        on_us, off_us = group_round([on, off], 3, shift=1)
        assert order == ["off", "on", "on", "off", "off", "on"]
        assert on_us > 0 and off_us > 0
        assert on.engine.cycles == off.engine.cycles == 3
        assert on.sim.now() == off.sim.now()  # both stepped through the same market time
    finally:
        _rig.close_bot(on)
        _rig.close_bot(off)


def test_cpu_timer_splits_its_total_by_entry_point():
    ticks = count(0, 5)
    timer = ThreadCPUTimer(clock=lambda: next(ticks))
    first, second = timer.wrap(lambda: None, "first"), timer.wrap(lambda: None, "second")
    first(), first(), second()
    assert timer.by_name == {"first": 10, "second": 5} and timer.ns == 15
    assert timer.calls_by_name == {"first": 2, "second": 1} and timer.calls == 3


def test_on_one_cpu_pins_this_process_and_the_others_for_the_block_and_puts_them_back() -> None:
    import os
    import subprocess
    import sys

    from bench.cycle import PINNABLE, on_one_cpu

    assert PINNABLE  # the CI machine is Linux: the comparison's judged figure is the pinned one
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = os.sched_getaffinity(0)
        with on_one_cpu(child.pid):
            assert os.sched_getaffinity(0) == os.sched_getaffinity(child.pid) == {min(before)}
        assert os.sched_getaffinity(0) == os.sched_getaffinity(child.pid) == before
        try:
            with on_one_cpu(child.pid):
                raise RuntimeError("a failed measurement")
        except RuntimeError:
            pass
        assert os.sched_getaffinity(0) == before  # this process is put back even so
    finally:
        child.kill()
        child.wait()
