"""The chaos run's processes: a restartable Postgres, the bridge server and the bot, each killable.

Apart from bench/chaos.py (the run and its comparison) so that each module holds one concept:
these wrap a real process each, start it, kill it (SIGKILL) and read what it left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from db.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parents[1]

SEED = 4242
SPEED = 600.0  # simulated seconds per wall second


class Postgres(PgCluster):
    """The throwaway cluster, stoppable and restartable on the same port (clients see it go away).

    Commits are durable here (synchronous_commit on), as on any real server: the test clusters turn
    that off for speed, and an immediate stop would then lose commits the bot was told succeeded.
    """

    def _server_options(self) -> str:
        return super()._server_options().replace("-c synchronous_commit='off'", "-c synchronous_commit='on'")

    def stop_server(self) -> None:
        self._pg_ctl("stop", "-w", "-t", "60", "-m", "immediate")

    def start_server(self) -> None:
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self._server_options())


class Bridge:
    """`python -m mt5bridge.server --backend sim --state FILE` on a fixed port, killable and restartable."""

    def __init__(self, workdir: Path, token: str, port: int, broker: str = "demo"):
        from mt5bridge.tls import generate_self_signed

        self.workdir, self.token, self.port, self.broker = workdir, token, port, broker
        self.cert, self.key = workdir / "bridge.crt", workdir / "bridge.key"
        self.fingerprint = generate_self_signed(self.cert, self.key)  # the bot pins it: TLS across every restart
        self.state = workdir / "sim-state.json"
        self.log_path = workdir / "bridge.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, frozen: bool = False) -> None:
        """`frozen`: a stepped clock nobody advances, so the broker's books stay exactly as saved."""
        self.starts += 1
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mt5bridge.server", "--backend", "sim", "--seed", str(SEED), "--speed",
                 str(SPEED), "--state", str(self.state), "--host", "127.0.0.1", "--port", str(self.port),
                 "--cert", str(self.cert), "--key", str(self.key), "--broker", self.broker,
                 *(["--stepped"] if frozen else [])],
                cwd=ROOT, env={**base_env(), "MT5_BRIDGE_TOKEN": self.token}, stdout=out, stderr=out,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("bridge did not start: " + self.log_path.read_text()[-2000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def control(self, command: str, **params) -> None:
        from mt5bridge.client import connect

        with connect("127.0.0.1", self.port, token=self.token, timeout=5, fingerprint=self.fingerprint) as client:
            client.sim_control(command, **params)

    def filled_count(self) -> int:
        return self.log_path.read_text(errors="replace").count("order_send filled")


class Bot:
    """`python -m bot run` in bridge mode; SIGKILLable; its JSON log lines go to one file."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir, self.env = workdir, env
        self.log_path = workdir / "bot.log"
        self.proc: subprocess.Popen | None = None
        self.exited_by_itself: list[int] = []
        self._counted_to, self._cycles = 0, 0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run"], cwd=self.workdir, env=self.env,
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.exited_by_itself.append(self.proc.returncode)

    def kill(self) -> None:
        self.check_alive()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        self.check_alive()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def records(self, since: int = 0) -> list[dict]:
        """The JSON log lines, all of them or those written after byte offset `since`."""
        out = []
        with self.log_path.open("rb") as log_file:
            log_file.seek(since)
            text_read = log_file.read().decode(errors="replace")
        for line in text_read.splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def cycles(self) -> int:
        """Cycles logged so far, over every run of the bot (reads only what was appended since last time)."""
        if not self.log_path.exists():
            return 0
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._counted_to)
            chunk = log_file.read()
        complete = chunk.rfind(b"\n") + 1
        self._cycles += chunk[:complete].count(b'"message": "cycle ')
        self._counted_to += complete
        return self._cycles


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MT5_", "DATABASE_", "LOKI_", "ORDER_"))}
