"""Telemetry's cost as CPU time of the loop thread per cycle, and the bot's RSS growth over a long run.

Targets (issue 16, issue "Bot telemetry"): telemetry CPU cost <= 1 % of a cycle, printed with its
95 % confidence interval; RSS growth <= 5 MB over 20 000 cycles.

Why CPU time: the old cycles/s on/off ratio swung by +-15 % between single rounds (wall time sees
every other process on a shared machine, fsync waits and scheduler luck) and could not resolve the
2 % it was meant to test. The CPU time the loop thread itself spends in `run_cycle`
(time.thread_time_ns) leaves out time spent waiting and time other processes took.

Top-down: bots on identical simulated markets, BOTS_PER_SIDE (2) "on" and as many "off", run >= 50
rounds of cycles, all of them cycle by cycle in turn (who goes first rotates), so that a slow phase of
the machine (another process, a frequency change) falls on all. Each round gives one paired difference of
CPU time per cycle (the on bots' mean minus the off bots'); the figure is the median of those differences
relative to the off cycle, with the distribution-free 95 % interval for a median (order statistics of
the paired differences, i.e. the sign test's interval: bench._measure.median_ci).

Why several bots a side: each bot built in the process has a memory layout of its own, and two identical
bots without telemetry were measured 0.5-1.2 % apart over 40-60 rounds, one way in one run and the other
way in the next (not by the order they were built in): more rounds cannot average that out, more bots
can. They are built in turns whose order flips (on off floor, floor off on).

Bottom-up: the first "on" bot with every telemetry entry point the loop thread calls (the engine
observer, the gateway's call observer, the preflight/stop-out/broker-clock hooks, the metrics and
instrumentation the store and breakers report to, the Loki log handler) wrapped in a CPU timer that
counts outermost calls on the loop thread only: microseconds per cycle spent inside telemetry code.

"Off" is the bot as it always runs without telemetry: no `start_telemetry` (the engine keeps its
no-op observer, the gateway no call observer), JSON logs on (they are never switched off) and no Loki
handler on the root logger while it cycles (the handler is process-wide: each on bot's is on only while
that bot cycles, group_round). "On" adds everything telemetry adds:
Prometheus metrics on every broker call and cycle, the health and control servers, the per-cycle
history window and minute rollups, and the Loki push to a local endpoint answering 204.

Scrapes: the "on" bot is scraped every SCRAPE_EVERY (10) of its cycles, on a thread of its own (as the
metrics server's thread answers Prometheus). Prometheus scrapes every 15 s and the bot cycles every
30 s by default, so in production every cycle's observations are folded into their metrics by a
scrape (bot.telemetry.deferred), never by the loop, and the scrape feeds the minute history too
(bot.history_feed); unscraped, the loop folds them itself to bound
memory (`keep_bounded`, once 4 096 wait: ~240 cycles), which a bench without scrapes would measure
instead. Every 10 cycles and not every cycle: the cycles here run back to back, and a scrape's
~8 ms of work between two of them is cache traffic only the on bot's neighbours get (in
production a cycle follows 30 s of waiting either way). The scrapes' own time is printed beside the figures;
BENCH_TELEMETRY_SCRAPE_EVERY=0 turns them off.

Cold caches, on purpose: in production a cycle follows 30 s of waiting in which the machine's other
processes (PostgreSQL, Prometheus, Loki) and the bot's own threads run, so a cycle starts with little
of its working set in the CPU caches. Between two timed cycles the bench therefore reads a buffer
larger than the last-level cache (COLD_MB, 48 MiB; BENCH_TELEMETRY_COLD_MB=0 turns it off), for both
bots alike. This replaced a full garbage collection of the whole heap doing the same incidentally:
that took ~60 ms a cycle and left a different, random part of the heap cached each time, which
made single rounds swing by several percent. The heap is frozen after the warm-up (gc.freeze) so the
collection after each cycle walks only what the rounds allocated.

The noise floor: BOTS_PER_SIDE more bots without telemetry ("floor"), in the same rounds, compared with
the off bots exactly as the on bots are: the figure the bench reads when there is nothing to find. It is
printed beside the result.

At production pacing: the bench's cycles run back to back, so what telemetry does once a wall-clock
minute (close the minute and write its row in the next cycle's store unit, sample the process, feed
the history) falls on one cycle in thousands; at the default 30 s cycle it falls on every other one. A
further bot with telemetry runs PACED_CYCLES (240) cycles with its telemetry's wall clock advanced
PACED_SECONDS (30) a cycle, scraped after each (Prometheus's 15 s interval), timed bottom-up: the figure a trader's bot pays, printed beside the
target's (which it is not).

The RSS run measures the bot process alone, with the simulated terminal behind the bridge in a
process of its own (as a real terminal always is): an in-process simulator would add the broker's
growing deal history and its price caches to the bot's figure.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psutil
from prometheus_client import generate_latest

from bench import _rig
from bench._measure import MedianCI, ThreadCPUTimer, TimedProxy, median_ci
from bot.app import BotApp
from bot.telemetry.logging import attach_loki, detach_loki, setup_logging

ROUNDS = int(os.environ.get("BENCH_TELEMETRY_ROUNDS", "160"))  # the interval narrows as 1/sqrt(rounds)
PACED_SECONDS = float(os.environ.get("BENCH_TELEMETRY_PACED_SECONDS", "30"))  # the default CYCLE_SECONDS
PACED_CYCLES = int(os.environ.get("BENCH_TELEMETRY_PACED_CYCLES", "240"))
BOTS_PER_SIDE = int(os.environ.get("BENCH_TELEMETRY_BOTS", "2"))  # bots of each kind: on, off, floor (module doc)
CYCLES_PER_ROUND = int(os.environ.get("BENCH_TELEMETRY_CYCLES", "30"))
WARM_UP_CYCLES = int(os.environ.get("BENCH_TELEMETRY_WARM_UP", "20"))
BOTTOM_UP_ROUNDS = int(os.environ.get("BENCH_TELEMETRY_BOTTOM_UP_ROUNDS", "10"))
LONG_RUN = int(os.environ.get("BENCH_RSS_CYCLES", "20000"))
WARM_UP = int(os.environ.get("BENCH_RSS_WARM_UP", "1000"))
TARGET_PERCENT = 1.0
RSS_TARGET_MIB = 5
RAM_DIR = "/dev/shm"
COLD_MB = int(os.environ.get("BENCH_TELEMETRY_COLD_MB", "48"))  # > the last-level cache (see the module doc)
_COLD = bytearray()  # filled by overhead(): written bytes, real pages (a zeroed buffer would read one zero page)


class Scraper:
    """Scrapes a bot's registry on a thread of its own, as its metrics server does for Prometheus."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, app: BotApp) -> None:
        metrics = getattr(app, "metrics", None)
        if metrics is None:
            return
        started = time.perf_counter()
        worker = threading.Thread(target=generate_latest, args=(metrics.registry,), name="bench-scrape")
        worker.start()
        worker.join()
        self.seconds.append(time.perf_counter() - started)


SCRAPE = Scraper()
SCRAPE_EVERY = int(os.environ.get("BENCH_TELEMETRY_SCRAPE_EVERY", "10"))  # on-bot cycles per scrape; 0: never
COLLECT = os.environ.get("BENCH_TELEMETRY_COLLECT", "1") == "1"
_cycles_since_scrape: dict[int, int] = {}  # id(app) -> its cycles since its last scrape


def _rate(app: BotApp, cycles: int) -> float:
    started = time.perf_counter()
    for _ in range(cycles):
        app.engine.run_cycle()
        app.liveness.beat()
        app.pacer.wait()
    return cycles / (time.perf_counter() - started)


def cpu_per_cycle(app: BotApp, cycles: int, probe=None) -> float:
    """Mean CPU microseconds the calling (loop) thread spends in one `run_cycle`, over `cycles` cycles.

    With `probe`, a timed no-op (wrapped by the bottom-up timer's own kind) runs before each cycle:
    what the timer charges a call that does nothing, measured near the cache state of the loop."""
    spent = 0
    for _ in range(cycles):
        if probe is not None:  # thrice: what a warm timer costs (the first, after a collection, runs cold)
            probe()
            probe()
            probe()
        started = time.thread_time_ns()
        app.engine.run_cycle()
        spent += time.thread_time_ns() - started
        app.liveness.beat()
        _between_cycles(app)
        app.pacer.wait()
    return spent / cycles / 1000


def _cycle_ns(app: BotApp) -> int:
    started = time.thread_time_ns()
    app.engine.run_cycle()
    spent = time.thread_time_ns() - started
    app.liveness.beat()
    _between_cycles(app)
    app.pacer.wait()
    return spent


def _between_cycles(app: BotApp) -> None:
    """The on bot is scraped (a no-op for the off bot: no metrics); then, for both, a full collection.

    Why the collection: a scrape allocates (and collects) a lot on its own thread, so the on bot's
    next cycle would start with the collector's counters reset and run fewer collections than the
    off bot's: telemetry would look cheaper than nothing. Collecting after every cycle of both bots
    makes each timed cycle start alike, and a cycle's own allocations (telemetry's included) still
    trigger whatever collections they trigger inside it."""
    if SCRAPE_EVERY and getattr(app, "metrics", None) is not None:
        done = _cycles_since_scrape[id(app)] = _cycles_since_scrape.get(id(app), 0) + 1
        if done >= SCRAPE_EVERY:
            _cycles_since_scrape[id(app)] = 0
            SCRAPE(app)
    if COLLECT:
        gc.collect()
    if _COLD:
        _COLD.find(b"\x01")  # reads all of it: the next cycle starts with cold caches (see the module doc)


def group_round(bots: list[BotApp], cycles: int, shift: int) -> list[float]:
    """Mean loop-thread CPU microseconds per cycle of each of `bots` over one round: every bot runs one
    cycle in turn, cycle by cycle, the turn starting one bot later each cycle (and `shift` later each
    round), so that a slow phase of the machine hits all of them alike.

    A bot's own Loki handler (the on bots') is on the root logger only while that bot cycles: the
    handler is process-wide, and left on it would charge one bot's log lines to another's.
    """
    spent = [0] * len(bots)
    attached = None
    for k in range(cycles):
        for j in range(len(bots)):
            i = (j + k + shift) % len(bots)
            loki = getattr(bots[i], "loki", None)
            if loki is not attached:
                if attached is not None:
                    detach_loki(attached)
                if loki is not None:
                    attach_loki(loki)
                attached = loki
            spent[i] += _cycle_ns(bots[i])
    if attached is not None:
        detach_loki(attached)
    return [ns / cycles / 1000 for ns in spent]


def _build(tmp: str, loki_url: str) -> dict[str, list[BotApp]]:
    """BOTS_PER_SIDE bots of each kind (on, off, floor), built in turns whose order flips each time
    (on off floor, floor off on, ...): no kind is always built first, among the imports' leftovers."""
    bots: dict[str, list[BotApp]] = {"on": [], "off": [], "floor": []}
    for i in range(BOTS_PER_SIDE):
        for kind in ("on", "off", "floor") if i % 2 == 0 else ("floor", "off", "on"):
            if kind == "on":
                app = _rig.bot(f"{tmp}/{kind}{i}.db", LOKI_URL=loki_url)
                app.start_telemetry(serve=True)
            else:
                app = _rig.bot(f"{tmp}/{kind}{i}.db")
            bots[kind].append(app)
    return bots


def instrument(app: BotApp, timer: ThreadCPUTimer) -> None:
    """Route every telemetry entry point of a started bot through `timer` (public attributes only)."""
    instrumentation = app.instrumentation
    app.engine.observer = TimedProxy(instrumentation, timer)
    app.gateway.set_observer(timer.wrap(instrumentation.on_broker_call, "gateway call observer"),
                             instrumentation.quick_calls,  # the quick lane's append, timed too
                             timer.wrap(app.metrics.broker_calls.append, "gateway quick lane"))
    app.instrumentation = TimedProxy(instrumentation, timer)  # breakers' and reconnects' reports
    app.metrics = TimedProxy(app.metrics, timer)  # the store spool's and order queue's depth gauges
    for owner, hook in ((app.engine.preflight, "on_result"), (app.engine, "on_stop_out"),
                        (getattr(app.gateway, "clock", None), "on_change")):
        if owner is not None and callable(getattr(owner, hook, None)):
            setattr(owner, hook, timer.wrap(getattr(owner, hook)))
    if app.loki is not None:
        app.loki.handle = timer.wrap(app.loki.handle, "LokiHandler.handle")  # logging calls handler.handle(record)


def paced(app: BotApp) -> tuple[float, float, ThreadCPUTimer]:
    """Bottom-up at production pacing: `app`'s telemetry (instrumented, started) sees its wall clock
    advance PACED_SECONDS a cycle while the cycles run back to back, so the minute history closes a
    minute every other cycle at 30 s - its row, its process sample, its feed - as in production, and
    it is scraped after every cycle, as Prometheus's 15 s scrapes see a 30 s cycle.
    (loop-thread CPU us per cycle, net us inside telemetry per cycle, the timer)."""
    ahead = [0.0]

    def clock() -> float:
        return time.time() + ahead[0]

    app.instrumentation.clock = clock
    app.history.clock = clock
    timer, probe_timer = ThreadCPUTimer(), ThreadCPUTimer()
    instrument(app, timer)
    probe = probe_timer.wrap(lambda: None, "timed no-op")
    scrape = Scraper()  # its own: these scrapes are not the target run's
    spent = 0.0
    for _ in range(PACED_CYCLES):
        ahead[0] += PACED_SECONDS
        spent += cpu_per_cycle(app, 1, probe)
        scrape(app)  # Prometheus's 15 s scrapes see every 30 s cycle (they feed the minute history)
    probe_us = probe_timer.ns / 1000 / probe_timer.calls
    net = max(0.0, timer.ns / 1000 - probe_us * timer.calls) / PACED_CYCLES
    return spent / PACED_CYCLES, net, timer


def _percent(ci: MedianCI, base: float) -> str:
    return f"{ci.median / base * 100:+.2f} % (95 % CI {ci.low / base * 100:+.2f} .. {ci.high / base * 100:+.2f} %)"


def overhead() -> int:
    """Print the top-down and bottom-up telemetry cost; 1 if it misses its target."""
    setup_logging("INFO", service="bot", stream=_rig.Sink())
    loki = _rig.LokiSink()
    _COLD[:] = b"\x02" * (COLD_MB << 20)
    # The stores live in memory-backed files where there are some: the figure is about telemetry.
    with tempfile.TemporaryDirectory(dir=RAM_DIR if os.path.isdir(RAM_DIR) else None) as tmp:
        bots = _build(tmp, loki.url)
        everyone = bots["on"] + bots["off"] + bots["floor"]
        paced_app = _rig.bot(f"{tmp}/paced.db", LOKI_URL=loki.url)
        paced_app.start_telemetry(serve=True)
        detach_loki(paced_app.loki)
        on_app = bots["on"][0]
        try:
            for app in (*everyone, paced_app):  # reconciliation, the first-start history import, caches
                cpu_per_cycle(app, WARM_UP_CYCLES)
            gc.collect()
            gc.freeze()  # the collection after each cycle walks only what the rounds allocate (module doc)
            kinds = [kind for kind in ("on", "off", "floor") for _ in bots[kind]]
            on_us, off_us, floor = [], [], []
            for round_no in range(ROUNDS):
                spent = dict.fromkeys(bots, 0.0)
                for kind, us in zip(kinds, group_round(everyone, CYCLES_PER_ROUND, round_no), strict=True):
                    spent[kind] += us / BOTS_PER_SIDE
                on_us.append(spent["on"])
                off_us.append(spent["off"])
                floor.append((spent["off"] - spent["floor"]) / spent["floor"] * 100)
            if on_app.loki is not None:
                attach_loki(on_app.loki)  # the instrumented bot below logs to Loki as it always does
            timer, probe_timer = ThreadCPUTimer(), ThreadCPUTimer()
            instrument(on_app, timer)
            probe = probe_timer.wrap(lambda: None, "timed no-op")
            bottom_cycle_us = [cpu_per_cycle(on_app, CYCLES_PER_ROUND, probe) for _ in range(BOTTOM_UP_ROUNDS)]
            bottom_cycles = BOTTOM_UP_ROUNDS * CYCLES_PER_ROUND
            attach_loki(paced_app.loki)
            paced_cycle_us, paced_us, paced_timer = paced(paced_app) if PACED_CYCLES else (0.0, 0.0, None)
        finally:
            gc.unfreeze()
            for app in (*everyone, paced_app):
                app.close()
            loki.shutdown()
    base = statistics.median(off_us)
    paired = median_ci([a - b for a, b in zip(on_us, off_us, strict=True)])
    relative = median_ci([(a - b) / b * 100 for a, b in zip(on_us, off_us, strict=True)])
    inside_us = timer.ns / 1000 / bottom_cycles
    inside_pct = inside_us / statistics.mean(bottom_cycle_us) * 100
    # The timer's own cost (two clock reads, the wrapper's frame) is inside every timed call: taken off.
    probe_us = probe_timer.ns / 1000 / probe_timer.calls
    net_us = max(0.0, inside_us - probe_us * timer.calls / bottom_cycles)
    net_pct = net_us / (statistics.mean(bottom_cycle_us) - (inside_us - net_us)) * 100
    ok = relative.median <= TARGET_PERCENT
    out = sys.stdout
    out.write(f"loop-thread CPU per cycle, telemetry off: {base:9.1f} us  on: {statistics.median(on_us):9.1f} us  "
              f"(medians of {ROUNDS} rounds of {CYCLES_PER_ROUND} cycles each, {BOTS_PER_SIDE} bots a side, "
              "all in turn cycle by cycle)\n")
    out.write(f"telemetry cost, top-down : {paired.median:+8.1f} us per cycle = {_percent(paired, base)}\n")
    out.write(f"  per-round relative cost: median {relative.median:+.2f} %, 95 % CI {relative.low:+.2f} .. "
              f"{relative.high:+.2f} % (order-statistic interval of {relative.n} paired rounds, coverage "
              f"{relative.coverage:.3f})  target <= {TARGET_PERCENT:g} %  {'PASS' if ok else 'MISS'}\n")
    noise = median_ci(floor)
    out.write(f"  noise floor ({BOTS_PER_SIDE} more bots without telemetry against the off ones, the same way): "
              f"median {noise.median:+.2f} %, 95 % CI {noise.low:+.2f} .. {noise.high:+.2f} %\n")
    if relative.low <= TARGET_PERCENT < relative.high:
        out.write(f"  the interval straddles {TARGET_PERCENT:g} %: undecided, more rounds (BENCH_TELEMETRY_ROUNDS) "
                  "or a quieter machine resolve it\n")
    out.write(f"telemetry cost, bottom-up: {inside_us:8.1f} us per cycle inside telemetry code "
              f"({timer.calls / bottom_cycles:.1f} calls) = {inside_pct:.2f} % of the instrumented cycle's CPU "
              f"({bottom_cycles} cycles)\n")
    out.write(f"  less the timer's own cost ({probe_us:.2f} us a call, a timed no-op between cycles): {net_us:8.1f} us "
              f"per cycle = {net_pct:.2f} % of a cycle\n")
    if SCRAPE.seconds:
        out.write(f"  the on bot scraped every {SCRAPE_EVERY} of its cycles ({len(SCRAPE.seconds)} scrapes, on their own thread, "
                  f"not in these figures): median {statistics.median(SCRAPE.seconds) * 1000:.2f} ms a scrape\n")
    top = sorted(timer.by_name.items(), key=lambda item: -item[1])[:6]
    out.write("  largest, per cycle (timer included / less the timer, calls): " + ", ".join(
        f"{name} {ns / 1000 / bottom_cycles:.1f} / "
        f"{(ns / 1000 - probe_us * timer.calls_by_name[name]) / bottom_cycles:.1f} us "
        f"({timer.calls_by_name[name] / bottom_cycles:.1f})" for name, ns in top) + "\n")
    if paced_timer is not None:
        top = sorted(paced_timer.by_name.items(), key=lambda item: -item[1])[:3]
        out.write(f"at production pacing (telemetry's wall clock {PACED_SECONDS:g} s a cycle, {PACED_CYCLES} cycles, "
                  "a scrape after each: "
                  f"a minute row, a process sample and a history feed every {60 / PACED_SECONDS:g} cycles): "
                  f"{paced_us:.1f} us per cycle inside telemetry less the timer = "
                  f"{paced_us / (paced_cycle_us - paced_us) * 100:.2f} % of a cycle, not the target's figure "
                  "(the minute row is the last write of the cycle's store unit); largest: " + ", ".join(
                      f"{name} {ns / 1000 / PACED_CYCLES:.1f} us" for name, ns in top) + "\n")
    return 0 if ok else 1


def rss_growth() -> int:
    """Print the bot's RSS growth over a long run; 1 if it grew more than 5 MiB."""
    setup_logging("INFO", service="bot", stream=_rig.Sink())
    server = _rig.BridgeServer()
    loki = _rig.LokiSink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = _rig.bot(f"{tmp}/long.db", bridge=server, LOKI_URL=loki.url)
            app.start_telemetry(serve=True)
            process = psutil.Process()
            _rate(app, WARM_UP)  # caches, pools, imports, the first trades
            gc.collect()
            start = process.memory_info().rss
            started = time.perf_counter()
            checkpoints = []  # growth along the run: a leak keeps climbing, a filling cache levels off
            for done in range(0, LONG_RUN, max(1, LONG_RUN // 5)):
                _rate(app, min(max(1, LONG_RUN // 5), LONG_RUN - done))
                checkpoints.append((process.memory_info().rss - start) / 2**20)
            gc.collect()
            grown = process.memory_info().rss - start
            elapsed = time.perf_counter() - started
            _rig.close_bot(app)
    finally:
        loki.shutdown()
        server.stop()
    ok = grown <= RSS_TARGET_MIB * 2**20
    sys.stdout.write(f"RSS growth of the bot over {LONG_RUN} cycles after {WARM_UP} warm-up cycles: "
                     f"{grown / 2**20:6.2f} MiB  target <= {RSS_TARGET_MIB} MiB  {'PASS' if ok else 'MISS'} "
                     f"(telemetry on, terminal over the bridge), {LONG_RUN / elapsed:.0f} cycles/s\n")
    sys.stdout.write("  growth along the run (MiB): " + " ".join(f"{m:.2f}" for m in checkpoints) + "\n")
    return 0 if ok else 1


def main() -> int:
    failed = overhead()
    sys.stdout.flush()
    # In a fresh process: memory the overhead run freed stays mapped in this one and would hide growth.
    rss = subprocess.run([sys.executable, "-m", "bench.telemetry", "rss"], cwd=_rig.ROOT, check=False)
    return 1 if failed or rss.returncode else 0


if __name__ == "__main__":
    sys.exit(rss_growth() if sys.argv[1:] == ["rss"] else main())
