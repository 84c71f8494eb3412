"""Building whole bots for the cycle benches, in-process or with the terminal behind the bridge.

Only public entry points are used (Settings, BotApp, the bridge server's command line, the bridge
client), so the benches measure whatever engine, store and bridge the code has today.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.app import BotApp
from bot.config import Settings
from db.pgcluster import free_port
from mt5bridge.client import BridgeClient, connect
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parents[1]
SEED = 3


class Sink(io.TextIOBase):
    """Swallows log lines after they were fully formatted (so formatting cost is measured)."""

    def write(self, text: str) -> int:
        return len(text)


class LokiSink:
    """`bench._loki_sink` in a child process (a real Loki is not in the bot's process either)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._loki_sink"], cwd=ROOT, stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def shutdown(self) -> None:
        self.proc.kill()
        self.proc.wait(10)



def wait_listening(port: int, proc: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start listening on port {port}")


class BridgeServer:
    """The simulated terminal behind the bridge, in a process of its own (as a real terminal always is).

    Plain TCP on loopback (--insecure): the bench compares the bridge with a bare TCP round trip.
    """

    def __init__(self, seed: int = SEED) -> None:
        self.token = "bench-" + os.urandom(8).hex()
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mt5bridge.server", "--backend", "sim", "--stepped", "--seed", str(seed),
             "--host", "127.0.0.1", "--port", str(self.port), "--insecure"],  # loopback benchmark
            cwd=ROOT, env={**os.environ, "MT5_BRIDGE_TOKEN": self.token, "LOG_LEVEL": "WARNING"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        wait_listening(self.port, self.proc, "the bridge server")

    def client(self) -> BridgeClient:
        return connect("127.0.0.1", self.port, token=self.token, timeout=30, insecure=True)

    def env(self) -> dict[str, str]:
        """The bot settings that reach this server."""
        return {"MT5_MODE": "bridge", "MT5_HOST": "127.0.0.1", "MT5_PORT": str(self.port),
                "MT5_BRIDGE_TOKEN": self.token, "MT5_BRIDGE_INSECURE": "true"}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class BridgedClock:
    """The stepped clock of a simulated terminal in another process, driven over the bridge."""

    def __init__(self, server: BridgeServer):
        self._client = server.client()
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


def bot(db_path: str, *, symbols: tuple[str, ...] | None = None, strategies: tuple[str, ...] | None = None,
        cycle_seconds: float | None = None, bridge: BridgeServer | None = None, **extra: str) -> BotApp:
    """A stepped bot on a SQLite store at `db_path`, its terminal in-process or behind `bridge`, connected.

    Unset arguments keep the bot's defaults. Telemetry is not started here: callers decide.
    """
    env = {"DATABASE_URL": f"sqlite:///{db_path}", "METRICS_PORT": "0", "METRICS_HOST": "127.0.0.1",
           "LOG_LEVEL": "INFO", "TIMEFRAME": "M1", **extra}
    if symbols is not None:
        env["SYMBOLS"] = ",".join(symbols)
    if strategies is not None:
        env["STRATEGIES"] = ",".join(strategies)
    if cycle_seconds is not None:
        env["CYCLE_SECONDS"] = f"{cycle_seconds:g}"
    if bridge is not None:
        env.update(bridge.env())
        sim = BridgedClock(bridge)
    else:
        sim = SimTerminal(seed=SEED, stepped=True)
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=sim, stepped=True)
    app.connect()
    return app


def close_bot(app: BotApp) -> None:
    app.close()
    if isinstance(app.sim, BridgedClock):
        app.sim.close()
