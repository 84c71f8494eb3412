"""Telemetry overhead and memory: cycles/s with telemetry on and off, RSS growth over a long run.

Targets (issue "Bot telemetry"): on/off >= 0.98, RSS growth <= 5 MB over 20 000 cycles.

The RSS run measures the bot process alone, with the simulated terminal behind the bridge in a
process of its own (as a real terminal always is): an in-process simulator would add the broker's
growing deal history and its price caches to the bot's figure.

"Off" is the bot as it always runs: JSON logs on stdout stay on in both (they are never switched
off). "On" adds what telemetry adds: Prometheus metrics on every broker call and cycle, the
health server, the per-cycle history window and the Loki push (to a local endpoint answering 204).
"""

from __future__ import annotations

import gc
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bot.app import BotApp
from bot.config import Settings
from bot.telemetry.logging import setup_logging
from mt5bridge.client import connect
from mt5bridge.sim import SimTerminal

ROUNDS = int(os.environ.get("BENCH_TELEMETRY_ROUNDS", "20"))
CYCLES_PER_ROUND = int(os.environ.get("BENCH_TELEMETRY_CYCLES", "200"))
LONG_RUN = int(os.environ.get("BENCH_RSS_CYCLES", "20000"))
WARM_UP = int(os.environ.get("BENCH_RSS_WARM_UP", "1000"))
ROOT = Path(__file__).resolve().parents[1]
RAM_DIR = "/dev/shm"


class _Sink(io.TextIOBase):
    """Swallows log lines after they were fully formatted (so formatting cost is measured)."""

    def write(self, text: str) -> int:
        return len(text)


class _LokiSink:
    """`bench._loki_sink` in a child process (a real Loki is not in the bot's process either)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._loki_sink"], cwd=ROOT, stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def shutdown(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def _app(tmp: str, name: str, telemetry: bool, loki_url: str | None = None) -> BotApp:
    env = {"DATABASE_URL": f"sqlite:///{tmp}/{name}.db", "METRICS_PORT": "0", "METRICS_HOST": "127.0.0.1",
           "LOG_LEVEL": "INFO"}
    if telemetry and loki_url:
        env["LOKI_URL"] = loki_url
    settings = Settings.from_env(env, dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=3, stepped=True), stepped=True)
    app.connect()
    if telemetry:
        app.start_telemetry(serve=True)
    return app


def _rate(app: BotApp, cycles: int) -> float:
    started = time.perf_counter()
    for _ in range(cycles):
        app.engine.run_cycle()
        app.liveness.beat()
        app.pacer.wait()
    return cycles / (time.perf_counter() - started)


def overhead() -> None:
    setup_logging("INFO", service="bot", stream=_Sink())
    loki = _LokiSink()
    # The stores live in memory-backed files where there are some: the ratio is about telemetry,
    # and fsync times on a shared disk swing far more between rounds than telemetry costs.
    with tempfile.TemporaryDirectory(dir=RAM_DIR if os.path.isdir(RAM_DIR) else None) as tmp:
        on_app = _app(tmp, "on", True, loki.url)
        off_app = _app(tmp, "off", False)
        on_rates, off_rates = [], []
        # Both bots step through the same simulated market, in short alternating rounds (which one
        # goes first alternates too) so that load from elsewhere on the machine hits both alike;
        # the ratio is the median of the rounds' own ratios.
        for round_no in range(ROUNDS):
            if round_no % 2:
                off_rates.append(_rate(off_app, CYCLES_PER_ROUND))
                on_rates.append(_rate(on_app, CYCLES_PER_ROUND))
            else:
                on_rates.append(_rate(on_app, CYCLES_PER_ROUND))
                off_rates.append(_rate(off_app, CYCLES_PER_ROUND))
        on_app.close()
        off_app.close()
    loki.shutdown()
    on, off = statistics.median(on_rates), statistics.median(off_rates)
    ratios = sorted(a / b for a, b in zip(on_rates, off_rates, strict=True))
    sys.stdout.write(f"cycles/s telemetry on : {on:8.1f}  (median of {ROUNDS} rounds of {CYCLES_PER_ROUND})\n")
    sys.stdout.write(f"cycles/s telemetry off: {off:8.1f}\n")
    sys.stdout.write(f"ratio on/off          : {statistics.median(ratios):8.3f}  (target >= 0.98; rounds "
                     f"{ratios[0]:.3f}-{ratios[-1]:.3f})\n")


class _BridgedClock:
    """The stepped clock of a simulated terminal in another process, driven over the bridge."""

    def __init__(self, host: str, port: int, token: str):
        self._client = connect(host, port, token=token, timeout=30, insecure=True)
        self._now = self._epoch(self._client.sim_control("advance", seconds=0))

    @staticmethod
    def _epoch(reply: dict) -> datetime:
        return datetime.fromtimestamp(reply["epoch"], UTC)

    def advance(self, seconds: float) -> datetime:
        self._now = self._epoch(self._client.sim_control("advance", seconds=seconds))
        return self._now

    def now(self) -> datetime:
        return self._now

    def close(self) -> None:
        self._client.close()


def _bridge_server(token: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mt5bridge.server", "--backend", "sim", "--stepped", "--seed", "3",
         "--host", "127.0.0.1", "--port", str(port), "--insecure"],  # loopback benchmark
        cwd=ROOT, env={**os.environ, "MT5_BRIDGE_TOKEN": token, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the bridge server did not start")


def rss_growth() -> None:
    setup_logging("INFO", service="bot", stream=_Sink())
    token = "bench-" + os.urandom(8).hex()
    server, port = _bridge_server(token)
    loki = _LokiSink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"DATABASE_URL": f"sqlite:///{tmp}/long.db", "METRICS_PORT": "0", "METRICS_HOST": "127.0.0.1",
                   "LOG_LEVEL": "INFO", "MT5_MODE": "bridge", "MT5_HOST": "127.0.0.1", "MT5_PORT": str(port),
                   "MT5_BRIDGE_TOKEN": token, "MT5_BRIDGE_INSECURE": "true", "LOKI_URL": loki.url}
            clock = _BridgedClock("127.0.0.1", port, token)
            app = BotApp(Settings.from_env(env, dotenv_path=None), sim=clock, stepped=True)
            app.connect()
            app.start_telemetry(serve=True)
            process = psutil.Process()
            _rate(app, WARM_UP)  # caches, pools, imports, the first trades
            gc.collect()
            start = process.memory_info().rss
            started = time.perf_counter()
            checkpoints = []  # growth along the run: a leak keeps climbing, a filling cache levels off
            for done in range(0, LONG_RUN, LONG_RUN // 5):
                _rate(app, min(LONG_RUN // 5, LONG_RUN - done))
                checkpoints.append((process.memory_info().rss - start) / 2**20)
            gc.collect()
            grown = process.memory_info().rss - start
            elapsed = time.perf_counter() - started
            app.close()
            clock.close()
    finally:
        loki.shutdown()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    sys.stdout.write(f"RSS growth of the bot over {LONG_RUN} cycles after {WARM_UP} warm-up cycles: "
                     f"{grown / 2**20:6.2f} MiB  (target <= 5 MB; telemetry on, terminal over the bridge), "
                     f"{LONG_RUN / elapsed:.0f} cycles/s\n")
    sys.stdout.write("  growth along the run (MiB): " + " ".join(f"{m:.2f}" for m in checkpoints) + "\n")


def main() -> None:
    overhead()
    sys.stdout.flush()
    # In a fresh process: memory the overhead run freed stays mapped in this one and would hide growth.
    subprocess.run([sys.executable, "-m", "bench.telemetry", "rss"], cwd=ROOT, check=True)


if __name__ == "__main__":
    rss_growth() if sys.argv[1:] == ["rss"] else main()
