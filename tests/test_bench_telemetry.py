"""bench.telemetry's bottom-up correction: the timer's own cost is measured by a timed no-op per cycle."""

from __future__ import annotations

from types import SimpleNamespace

from bench._measure import ThreadCPUTimer
from bench.telemetry import cpu_per_cycle


def test_cpu_per_cycle_probes_once_before_each_cycle_and_time_only_the_cycle():
    events = []

    def busy_cycle():
        events.append("cycle")
        sum(range(20000))  # some CPU time inside the cycle

    app = SimpleNamespace(engine=SimpleNamespace(run_cycle=busy_cycle), liveness=SimpleNamespace(beat=lambda: None),
                          pacer=SimpleNamespace(wait=lambda: None))
    probe_timer = ThreadCPUTimer()
    probe = probe_timer.wrap(lambda: events.append("probe"), "timed no-op")
    us = cpu_per_cycle(app, 4, probe)
    assert events == ["probe", "cycle"] * 4
    assert probe_timer.calls == 4 and probe_timer.ns > 0
    assert us > 0
