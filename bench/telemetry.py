"""Telemetry overhead and memory: cycles/s with telemetry on and off, RSS growth over a long run.

Targets (issue "Bot telemetry"): on/off >= 0.98, RSS growth <= 5 MB over 20 000 cycles.

"Off" is the bot as it always runs: JSON logs on stdout stay on in both (they are never switched
off). "On" adds what telemetry adds: Prometheus metrics on every broker call and cycle, the
health server, the per-cycle history window and the Loki push (to a local endpoint answering 204).
"""

from __future__ import annotations

import gc
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil

from bot.app import BotApp
from bot.config import Settings
from bot.telemetry.logging import setup_logging
from mt5bridge.sim import SimTerminal

ROUNDS = int(os.environ.get("BENCH_TELEMETRY_ROUNDS", "5"))
CYCLES_PER_ROUND = int(os.environ.get("BENCH_TELEMETRY_CYCLES", "300"))
LONG_RUN = int(os.environ.get("BENCH_RSS_CYCLES", "20000"))


class _Sink(io.TextIOBase):
    """Swallows log lines after they were fully formatted (so formatting cost is measured)."""

    def write(self, text: str) -> int:
        return len(text)


class _LokiSink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _loki_sink() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LokiSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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
    loki = _loki_sink()
    with tempfile.TemporaryDirectory() as tmp:
        on_app = _app(tmp, "on", True, f"http://127.0.0.1:{loki.server_address[1]}")
        off_app = _app(tmp, "off", False)
        on_rates, off_rates = [], []
        # Both bots step through the same simulated market; alternate so machine noise hits both.
        for _ in range(ROUNDS):
            on_rates.append(_rate(on_app, CYCLES_PER_ROUND))
            off_rates.append(_rate(off_app, CYCLES_PER_ROUND))
        on_app.close()
        off_app.close()
    loki.shutdown()
    on, off = statistics.median(on_rates), statistics.median(off_rates)
    sys.stdout.write(f"cycles/s telemetry on : {on:8.1f}  (median of {ROUNDS} rounds of {CYCLES_PER_ROUND})\n")
    sys.stdout.write(f"cycles/s telemetry off: {off:8.1f}\n")
    sys.stdout.write(f"ratio on/off          : {on / off:8.3f}  (target >= 0.98)\n")


def rss_growth() -> None:
    setup_logging("INFO", service="bot", stream=_Sink())
    with tempfile.TemporaryDirectory() as tmp:
        app = _app(tmp, "long", True)
        process = psutil.Process()
        _rate(app, 1000)  # warm-up: caches, pools, imports
        gc.collect()
        start = process.memory_info().rss
        started = time.perf_counter()
        _rate(app, LONG_RUN)
        gc.collect()
        grown = process.memory_info().rss - start
        elapsed = time.perf_counter() - started
        app.close()
    sys.stdout.write(f"RSS growth over {LONG_RUN} cycles: {grown / 2**20:6.2f} MiB  (target <= 5 MB), "
                     f"{LONG_RUN / elapsed:.0f} cycles/s\n")


def main() -> None:
    overhead()
    rss_growth()


if __name__ == "__main__":
    main()
