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
    monkeypatch.setattr(telemetry, "_cycles_since_scrape", {})
    cpu_per_cycle(app, 6)
    main = threading.current_thread().name
    assert events == [("cycle", main), ("cycle", main), ("scrape", "bench-scrape")] * 3
    assert len(telemetry.SCRAPE.seconds) == 3


def test_a_round_runs_every_bot_in_turn_with_only_its_own_loki_handler_on(monkeypatch):
    """All bots cycle in turn, the turn starting one later each cycle (and `shift` later each round); a
    bot's Loki handler is on the root logger only while that bot cycles, and off after the round."""
    import logging

    monkeypatch.setattr(telemetry, "COLLECT", False)
    monkeypatch.setattr(telemetry, "SCRAPE_EVERY", 0)
    root = logging.getLogger()
    monkeypatch.setattr(telemetry, "attach_loki", lambda h: root.addHandler(h))
    monkeypatch.setattr(telemetry, "detach_loki", lambda h: root.removeHandler(h))
    seen = []

    def bot(name, work, loki=None):
        def run_cycle():
            seen.append((name, [h for h in root.handlers if h is loki_a or h is loki_b]))
            sum(range(work))
        return SimpleNamespace(engine=SimpleNamespace(run_cycle=run_cycle), liveness=SimpleNamespace(beat=lambda: None),
                               pacer=SimpleNamespace(wait=lambda: None), loki=loki)

    loki_a, loki_b = logging.NullHandler(), logging.NullHandler()
    bots = [bot("on_a", 400_000, loki_a), bot("off", 40_000), bot("on_b", 40_000, loki_b)]
    us = telemetry.group_round(bots, 3, shift=1)
    assert [name for name, _ in seen] == ["off", "on_b", "on_a", "on_b", "on_a", "off", "on_a", "off", "on_b"]
    own = {"on_a": [loki_a], "on_b": [loki_b], "off": []}
    assert [(name, handlers) for name, handlers in seen if handlers != own[name]] == []
    assert loki_a not in root.handlers and loki_b not in root.handlers  # off after the round
    assert len(us) == 3 and us[0] > 3 * us[1]  # per bot, in the order given: on_a's cycles cost the most


def test_each_kind_is_built_in_turns_whose_order_flips(monkeypatch):
    built = []

    def fake_bot(path, **extra):
        built.append(path.rsplit("/", 1)[1])
        return SimpleNamespace(start_telemetry=lambda serve: built.append("telemetry"))

    monkeypatch.setattr(telemetry._rig, "bot", fake_bot)
    monkeypatch.setattr(telemetry, "BOTS_PER_SIDE", 2)
    bots = telemetry._build("/tmp/x", "http://127.0.0.1:1")
    assert built == ["on0.db", "telemetry", "off0.db", "floor0.db", "floor1.db", "off1.db", "on1.db", "telemetry"]
    assert [len(bots[kind]) for kind in ("on", "off", "floor")] == [2, 2, 2]


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


def test_paced_runs_the_minute_history_at_production_pacing_and_times_it(tmp_path, monkeypatch):
    """The paced bot's telemetry sees its wall clock advance PACED_SECONDS a cycle: 8 cycles at 30 s close
    a minute every other cycle (rows in its store), and the timed entry points include the unit's closing hook."""
    import sqlite3

    from bench import _rig

    monkeypatch.setattr(telemetry, "PACED_CYCLES", 8)
    monkeypatch.setattr(telemetry, "PACED_SECONDS", 30.0)
    scrapes = []

    class Scraper(telemetry.Scraper):
        def __call__(self, app) -> None:
            scrapes.append(app)
            super().__call__(app)

    monkeypatch.setattr(telemetry, "Scraper", Scraper)
    app = _rig.bot(f"{tmp_path}/p.db", symbols=("EURUSD",), strategies=("ma_crossover",))
    try:
        app.start_telemetry(serve=False)
        cycle_us, net_us, timer = telemetry.paced(app)
    finally:
        _rig.close_bot(app)
    with sqlite3.connect(f"{tmp_path}/p.db") as db:
        (rows,) = db.execute("SELECT count(*) FROM metrics_history").fetchone()
    assert 4 <= rows <= 6  # 240 s of telemetry's clock: four or five minutes touched
    assert cycle_us > net_us >= 0
    assert timer.calls_by_name["Instrumentation.store_unit_closing"] == 8
    assert scrapes == [app] * 8  # a scrape after every cycle, as Prometheus's 15 s interval sees 30 s cycles
