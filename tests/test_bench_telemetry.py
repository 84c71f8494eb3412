"""bench.telemetry: the timer's own cost is measured by timed no-ops per cycle; the on bot is scraped
between cycles, on a thread of its own, as its metrics server is."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from bench import telemetry
from bench._measure import ThreadCPUTimer
from bench.telemetry import cpu_per_cycle


def test_cpu_per_cycle_probes_before_each_cycle_and_time_only_the_cycle():
    events = []

    def busy_cycle():
        events.append("cycle")
        sum(range(20000))  # some CPU time inside the cycle

    app = SimpleNamespace(engine=SimpleNamespace(run_cycle=busy_cycle), liveness=SimpleNamespace(beat=lambda: None),
                          pacer=SimpleNamespace(wait=lambda: None))
    probe_timer = ThreadCPUTimer()
    probe = probe_timer.wrap(lambda: events.append("probe"), "timed no-op")
    us = cpu_per_cycle(app, 4, probe)
    assert events == ["probe", "probe", "probe", "cycle"] * 4
    assert probe_timer.calls == 12 and probe_timer.ns > 0
    assert us > 0


def test_a_bot_with_metrics_is_scraped_every_n_cycles_on_a_thread_of_its_own_outside_the_timing(monkeypatch):
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import GaugeMetricFamily

    events = []

    class Seen:
        def collect(self):
            events.append(("scrape", threading.current_thread().name))
            yield GaugeMetricFamily("bench_seen", "a scrape ran", value=1)

    registry = CollectorRegistry()
    registry.register(Seen())
    events.clear()  # registering may collect once

    def cycle():
        events.append(("cycle", threading.current_thread().name))

    app = SimpleNamespace(engine=SimpleNamespace(run_cycle=cycle), liveness=SimpleNamespace(beat=lambda: None),
                          pacer=SimpleNamespace(wait=lambda: None), metrics=SimpleNamespace(registry=registry))
    monkeypatch.setattr(telemetry, "SCRAPE", telemetry.Scraper())
    monkeypatch.setattr(telemetry, "SCRAPE_EVERY", 2)
    monkeypatch.setattr(telemetry, "_cycles_since_scrape", [0])
    cpu_per_cycle(app, 6)
    main = threading.current_thread().name
    assert events == [("cycle", main), ("cycle", main), ("scrape", "bench-scrape")] * 3
    assert len(telemetry.SCRAPE.seconds) == 3


def test_the_noise_floor_pairs_two_bots_without_the_on_bots_loki_handler(monkeypatch):
    """Two bots without telemetry are paired as on and off are; the on bot's Loki handler is off the root
    logger while they cycle and back on after; the figure is their relative difference."""
    import logging

    monkeypatch.setattr(telemetry, "COLLECT", False)
    monkeypatch.setattr(telemetry, "SCRAPE_EVERY", 0)
    handler = logging.NullHandler()
    root = logging.getLogger()
    attached_while_cycling = []
    order = []

    def bot(name, work):
        def run_cycle():
            order.append(name)
            attached_while_cycling.append(handler in root.handlers)
            sum(range(work))
        return SimpleNamespace(engine=SimpleNamespace(run_cycle=run_cycle), liveness=SimpleNamespace(beat=lambda: None),
                               pacer=SimpleNamespace(wait=lambda: None))

    monkeypatch.setattr(telemetry, "attach_loki", lambda h: root.addHandler(h))
    monkeypatch.setattr(telemetry, "detach_loki", lambda h: root.removeHandler(h))
    on_app = SimpleNamespace(loki=handler)
    root.addHandler(handler)
    try:
        figure = telemetry.floor_round(on_app, bot("a", 400_000), bot("b", 40_000), 4, a_first=True)
        assert handler in root.handlers  # back on for the on bot's next round
    finally:
        root.removeHandler(handler)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]  # cycle by cycle, who goes first alternating
    assert not any(attached_while_cycling)
    assert figure > 100  # a's cycles cost several times b's: (a - b) / b in percent


def test_the_cold_buffer_is_read_between_cycles(monkeypatch):
    reads = []

    class Buffer(bytearray):
        def find(self, *args):
            reads.append(args)
            return -1

    monkeypatch.setattr(telemetry, "_COLD", Buffer(b"\x02" * 64))
    monkeypatch.setattr(telemetry, "COLLECT", False)
    app = SimpleNamespace(engine=SimpleNamespace(run_cycle=lambda: None), liveness=SimpleNamespace(beat=lambda: None),
                          pacer=SimpleNamespace(wait=lambda: None))
    cpu_per_cycle(app, 3)
    assert len(reads) == 3
