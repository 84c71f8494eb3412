"""The bot's logs against a real Grafana Loki 3.7.4: a Loki restart while the bot runs loses no line.

The Loki binary is found through LOKI_BIN, else `loki` on PATH (CI sets LOKI_BIN, so there this test
fails rather than skips when none is found).  One Loki per module (it needs ~17 s to become ready),
loopback only, free ports, data in a temporary directory, started with the repository's loki/loki.yml.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bot.app import BotApp
from bot.config import Settings
from bot.telemetry import logging as bot_logging
from bot.telemetry.log_backlog import LogBacklog
from bot.telemetry.logging import setup_logging
from bot.telemetry.loki import LokiHandler
from db.pgcluster import free_port
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 120.0


def loki_binary() -> str | None:
    configured = os.environ.get("LOKI_BIN", "").strip()
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("loki")



class RealLoki:
    """One Loki process on loopback; `restart()` stops it and starts it again on the same ports and data."""

    def __init__(self, binary: str, base: Path) -> None:
        self.binary = binary
        self.base = base
        self.http_port, self.grpc_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen | None = None
        (base / "rules").mkdir()
        self.log = open(base / "loki.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        env = {**os.environ, "LOKI_HTTP_PORT": str(self.http_port), "LOKI_GRPC_PORT": str(self.grpc_port),
               "LOKI_DATA_DIR": str(self.base / "data"), "LOKI_RULES_DIR": str(self.base / "rules"),
               "ALERTMANAGER_URL": "http://127.0.0.1:9"}
        self.proc = subprocess.Popen(
            [self.binary, f"-config.file={ROOT / 'loki' / 'loki.yml'}", "-config.expand-env=true",
             "-server.http-listen-address=127.0.0.1", "-server.grpc-listen-address=127.0.0.1"],
            cwd=self.base, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"Loki exited with {self.proc.returncode}: {self.tail()}"
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"Loki not ready after {READY_TIMEOUT_S:.0f} s: {self.tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def tail(self) -> str:
        self.log.flush()
        return (self.base / "loki.log").read_text(errors="replace")[-2000:]

    def count(self, selector: str) -> int:
        """Lines Loki holds for a stream selector (over the last hour)."""
        query = urllib.parse.urlencode({"query": f"sum(count_over_time({selector}[1h]))"})
        with urllib.request.urlopen(f"{self.url}/loki/api/v1/query?{query}", timeout=10) as reply:
            result = json.loads(reply.read())["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0


@pytest.fixture(scope="module")
def real_loki():
    binary = loki_binary()
    if binary is None:
        message = ("no Loki binary: set LOKI_BIN to a Loki 3.7.4 binary or put `loki` on PATH "
                   "(in this workspace: LOKI_BIN=$(../shared/bin/unpack-loki))")
        pytest.fail(message, pytrace=False)  # a dependency of make test (scripts/find-loki.sh), never a skip
    base = Path(tempfile.mkdtemp(prefix="tradewatch-loki-"))
    loki = RealLoki(binary, base)
    loki.start()
    try:
        loki.wait_ready()
        yield loki
    finally:
        loki.stop()
        loki.log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stdout():
    """The bot's stdout as `python -m bot run` sets it up; restored afterwards."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    setup_logging("INFO", service="bot", env="loki-test", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in before:
        root.addHandler(handler)
    root.setLevel(level)
    bot_logging._State.formatter = bot_logging._State.loki = None


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_loki_restart_while_the_bot_runs_loses_no_line(real_loki, stdout, tmp_path, capsys):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SYMBOLS": "EURUSD,USDJPY", "LOG_LEVEL": "INFO",
           "LOKI_URL": real_loki.url, "ENV": "loki-restart", "SHUTDOWN_FLUSH_SECONDS": "10"}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=9, stepped=True), stepped=True)
    step = app.pacer.wait
    app.pacer.wait = lambda: (step(), time.sleep(0.02))  # a steady stream of lines, not a burst
    runner = threading.Thread(target=app.run, kwargs={"serve": False}, name="bot-under-test", daemon=True)
    runner.start()
    wait_for(lambda: app.loki is not None and app.loki.sent > 0, "the first lines in Loki")

    down_at = time.monotonic()
    real_loki.stop()
    time.sleep(4)  # keep the port closed a while: the pushes meet "connection refused", not a slow start
    real_loki.start()
    real_loki.wait_ready()
    outage = time.monotonic() - down_at
    cycles_during_outage = app.engine.cycles
    wait_for(lambda: app.engine.cycles >= cycles_during_outage + 20, "cycles after Loki came back")
    app.request_stop()
    runner.join(60)
    assert not runner.is_alive()

    logged = stdout.getvalue().splitlines()
    selector = f'{{service="bot", env="loki-restart", account="{app.account}"}}'
    wait_for(lambda: real_loki.count(selector) >= len(logged), "every line in Loki", timeout=30)
    in_loki = real_loki.count(selector)
    sample = app.metrics.registry.get_sample_value
    dropped = sample("tradewatch_log_records_dropped_total", {"account": app.metrics.account})
    failures = sample("tradewatch_log_push_failures_total", {"account": app.metrics.account})
    figures = (f"Loki restart: outage {outage:.1f} s, failed pushes {failures:.0f}, lines logged {len(logged)}, "
               f"lines in Loki {in_loki}, dropped {dropped:.0f}")
    with capsys.disabled():
        sys.stdout.write(f"\n{figures}\n")
    assert outage >= 20, f"Loki came back too fast for this to be the 20 s outage: {figures}"
    assert in_loki == len(logged) and dropped == 0 and app.loki.dropped == 0, figures


def test_lines_pushed_again_from_the_backlog_are_not_duplicated(real_loki, tmp_path):
    labels = {"service": "bot", "account": "777", "env": "loki-dedup"}
    first = LokiHandler(real_loki.url, labels, flush_interval=0.05)
    records = [logging.LogRecord("dedup", logging.INFO, __file__, 1, f"line {i}", None, None) for i in range(200)]
    for record in records:
        first.handle(record)
    first.close(10)
    assert first.sent == 200
    selector = '{service="bot", env="loki-dedup"}'
    wait_for(lambda: real_loki.count(selector) == 200, "the first 200 lines")

    # A crash between a push and its backlog delete: the next start pushes the same lines again.
    backlog = LogBacklog(tmp_path / "log_backlog.db")
    backlog.put([(int(r.created * 1e9), "INFO", "777", r.getMessage(), {}) for r in records[:100]], "777")
    backlog.close()
    again = LokiHandler(real_loki.url, labels, flush_interval=0.05,
                        backlog=LogBacklog(tmp_path / "log_backlog.db"))
    wait_for(lambda: again.backlog_depth == 0, "the backlog pushed")
    again.close(10)
    assert again.sent == 100 and again.dropped == 0
    # Loki answered every push before `sent` counted it, so a stored duplicate would be counted now.
    assert real_loki.count(selector) == 200
