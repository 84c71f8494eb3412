"""Logs lose nothing the bot could keep, checked against a stand-in Loki that can go down and come back.

Start-up lines are held until the account is known, then pushed; a Loki outage is waited out with the
lines queued; what cannot be pushed (Loki down at exit, queue overflow) goes to the bounded backlog
file and is pushed by the next start, once; what is lost all the same is counted and said once.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.app import BotApp
from bot.config import Settings
from bot.telemetry import logging as bot_logging
from bot.telemetry.log_backlog import LogBacklog
from bot.telemetry.logging import TradewatchJsonFormatter, setup_logging
from bot.telemetry.loki import LokiHandler
from bot.telemetry.metrics import BotMetrics
from mt5bridge.sim import SimTerminal

TIMEOUT_S = 20.0


class StandInLoki:
    """A Loki push endpoint that keeps every accepted entry; `down()` closes its port, `up()` reopens it."""

    def __init__(self) -> None:
        self.entries: list[tuple[dict, int, str]] = []  # (stream labels, unix ns, line)
        self.status = 204
        self.requests = 0
        self._lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def up(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status = owner.status
                with owner._lock:
                    owner.requests += 1
                    if status == 204:
                        for stream in json.loads(gzip.decompress(raw))["streams"]:
                            for value in stream["values"]:
                                owner.entries.append((stream["stream"], int(value[0]), value[1]))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def messages(self) -> list[str]:
        with self._lock:
            return [json.loads(line)["message"] for _, _, line in self.entries]

    def keys(self) -> list[tuple[int, str]]:
        with self._lock:
            return [(ts, line) for _, ts, line in self.entries]


@pytest.fixture
def loki():
    server = StandInLoki()
    yield server
    server.down()


def wait_for(condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def make_handler():
    made = []

    def build(url, **kwargs):
        metrics = BotMetrics("90210")
        kwargs.setdefault("on_drop", metrics.count_log_drops)
        kwargs.setdefault("min_backoff", 0.05)
        kwargs.setdefault("max_backoff", 0.2)
        kwargs.setdefault("flush_interval", 0.05)
        labels = {"service": "bot", "env": "test"} if kwargs.get("hold") else {"service": "bot", "account": "90210",
                                                                               "env": "test"}
        handler = LokiHandler(url, labels, **kwargs)
        handler.setFormatter(TradewatchJsonFormatter(service="bot", account="90210", env="test"))
        logger = logging.getLogger(f"durability.{len(made)}.{id(handler)}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger, handler, metrics

    yield build
    for logger, handler in made:
        logger.removeHandler(handler)
        handler.close(timeout=0.5)


def dropped(metrics: BotMetrics) -> float:
    return metrics.registry.get_sample_value("tradewatch_log_records_dropped_total", {"account": "90210"})


def test_held_lines_wait_for_the_account_then_arrive_labelled_with_it(loki, make_handler):
    logger, handler, _ = make_handler(loki.url, hold=True)
    for i in range(5):
        logger.info("before the account %d", i)
    time.sleep(0.3)  # several flush intervals: a held handler sends nothing
    assert loki.requests == 0 and handler.queue_depth == 5
    handler.start_pushing("4242")
    logger.info("after the account")
    wait_for(lambda: len(loki.entries) == 6, "all six lines")
    assert {labels["account"] for labels, _, _ in loki.entries} == {"4242"}
    assert loki.messages() == [f"before the account {i}" for i in range(5)] + ["after the account"]


def test_an_outage_is_waited_out_with_the_lines_queued(loki, make_handler):
    logger, handler, metrics = make_handler(loki.url)
    failures = []
    handler.on_push_failure = lambda: failures.append(1)
    logger.info("before")
    wait_for(lambda: len(loki.entries) == 1, "the first line")
    loki.down()
    for i in range(300):
        logger.info("during %d", i)
    wait_for(lambda: len(failures) >= 3, "three failed pushes")
    loki.status = 503  # back, but not ready yet (what a starting Loki answers)
    loki.up()
    wait_for(lambda: loki.requests >= 2, "pushes answered 503")
    loki.status = 204
    wait_for(lambda: len(loki.entries) == 301, "every line after the outage")
    assert loki.messages() == ["before"] + [f"during {i}" for i in range(300)]
    assert dropped(metrics) == 0 and handler.dropped == 0


def test_overflow_and_loki_down_at_exit_go_to_the_backlog_and_the_next_start_pushes_them_once(
        loki, make_handler, tmp_path, capsys):
    path = tmp_path / "log_backlog.db"
    loki.down()
    logger, handler, metrics = make_handler(loki.url, backlog=LogBacklog(path, 10_000), queue_size=100,
                                            batch_size=20)
    for i in range(1000):
        logger.info("line %d", i)
    assert dropped(metrics) == 0 and len(handler.backlog) >= 800  # the oldest spilled, none lost
    handler.close(timeout=0.3)
    assert dropped(metrics) == 0 and handler.dropped == 0
    kept = LogBacklog(path)
    assert len(kept) == 1000
    kept.close()
    assert "1000 log lines kept in" in capsys.readouterr().err

    loki.up()
    logger2, handler2, metrics2 = make_handler(loki.url, backlog=LogBacklog(path, 10_000))
    logger2.info("next run")
    wait_for(lambda: len(loki.entries) == 1001, "the backlog and the new line")
    assert loki.messages() == [f"line {i}" for i in range(1000)] + ["next run"]  # backlog first
    assert len(handler2.backlog) == 0 and dropped(metrics2) == 0
    keys = loki.keys()
    assert len(set(keys)) == len(keys)


def test_the_same_line_kept_twice_is_one_line(tmp_path):
    backlog = LogBacklog(tmp_path / "b.db", 10)
    entry = (1_700_000_000_000_000_000, "INFO", "1", '{"message": "x"}', {})
    assert backlog.put([entry], "1") == 0
    assert backlog.put([entry], "1") == 0
    assert len(backlog) == 1
    other = (entry[0], "INFO", "1", '{"message": "y"}', {})  # same time, other text: another line
    backlog.put([other], "1")
    assert len(backlog) == 2
    backlog.delete([entry])
    assert [e[3] for e in backlog.head(10)] == ['{"message": "y"}']
    backlog.close()


def test_a_full_backlog_drops_counts_and_says_so_once(loki, make_handler, tmp_path, capsys):
    loki.down()
    logger, handler, metrics = make_handler(loki.url, backlog=LogBacklog(tmp_path / "b.db", 50), queue_size=10,
                                            batch_size=10)
    for i in range(200):
        logger.info("line %d", i)
    handler.close(timeout=0.2)
    assert len(LogBacklog(tmp_path / "b.db")) == 50
    assert handler.dropped == 150 and dropped(metrics) == 150
    err = capsys.readouterr().err
    assert err.count("log backlog full") == 1, err
    assert "150 log lines were lost this run" in err


def test_drops_before_the_counter_is_wired_are_counted_when_it_is(loki, make_handler):
    loki.down()
    logger, handler, _ = make_handler(loki.url, queue_size=5, on_drop=None)
    for i in range(12):
        logger.info("line %d", i)
    metrics = BotMetrics("90210")
    handler.on_drop = metrics.count_log_drops
    logger.info("one more")
    assert dropped(metrics) == 8


# -- the bot ----------------------------------------------------------------------------------------------


def _settings(tmp_path, url: str, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "SYMBOLS": "EURUSD,USDJPY",
        "LOG_LEVEL": "INFO",
        "LOKI_URL": url,
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": "0",
        "SHUTDOWN_FLUSH_SECONDS": "1",
        **extra,
    }
    return Settings.from_env(env, dotenv_path=None)


class Stdout:
    """The bot's stdout, as `python -m bot run` sets it up (setup_logging), to compare with what Loki got."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        setup_logging("INFO", service="bot", env="test", stream=self.stream)

    @property
    def messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def recorder():
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stdout = Stdout()
    yield stdout
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in before:
        root.addHandler(handler)
    root.setLevel(level)
    bot_logging._State.formatter = bot_logging._State.loki = None


def test_the_bot_pushes_its_start_up_and_shutdown_lines(loki, tmp_path, recorder):
    app = BotApp(_settings(tmp_path, loki.url), sim=SimTerminal(seed=3, stepped=True), stepped=True)
    app.run(cycles=5, serve=True)
    logged = list(recorder.messages)
    pushed = loki.messages()
    for needle in ("database ", "bot starting", "terminal connected", "engine started", "bot stopped"):
        assert any(m.startswith(needle) for m in pushed), f"{needle!r} not pushed: {pushed[:8]}"
    assert Counter(pushed) == Counter(logged)  # every line once, nothing more (streams split by level)
    assert {labels["account"] for labels, _, _ in loki.entries} == {app.account}


def test_shutdown_drains_loki_before_the_metrics_server_stops(loki, tmp_path, monkeypatch, recorder):
    app = BotApp(_settings(tmp_path, loki.url), sim=SimTerminal(seed=3, stepped=True), stepped=True)
    steps = []
    real_close, real_start = LokiHandler.close, app.start_telemetry

    def start_telemetry(serve=True):
        real_start(serve)
        real_stop = app.server.stop
        app.server.stop = lambda: (steps.append(("server stopped", app.loki.queue_depth)), real_stop())

    monkeypatch.setattr(app, "start_telemetry", start_telemetry)
    real_resilience = app._close_resilience
    monkeypatch.setattr(app, "_close_resilience",
                        lambda deadline: (real_resilience(deadline), steps.append(("store spool closed", 0))))
    monkeypatch.setattr(LokiHandler, "close", lambda self, timeout=5.0: (steps.append(("loki closed", timeout)),
                                                                          real_close(self, timeout)))
    app.run(cycles=3, serve=True)
    # The spool's shutdown warnings are logged while Loki still takes lines; the server goes last.
    assert [name for name, _ in steps] == ["store spool closed", "loki closed", "server stopped"]
    assert steps[1][1] <= 1.0  # within SHUTDOWN_FLUSH_SECONDS
    assert steps[2][1] == 0  # drained before the server went
    assert "bot stopped" in loki.messages()


def test_lines_of_a_run_that_ends_with_loki_down_arrive_with_the_next_run(loki, tmp_path, recorder):
    settings = _settings(tmp_path, loki.url)
    sim = SimTerminal(seed=3, stepped=True)
    first = BotApp(settings, sim=sim, stepped=True)
    first.connect()
    first.start_telemetry(serve=False)
    wait_for(lambda: len(loki.entries) > 0, "the first push")
    loki.down()
    for _ in range(20):
        first.engine.run_cycle()
        first.pacer.wait()
    first.close()
    assert first.loki.dropped == 0 and first.loki.kept > 0
    assert first.metrics.registry.get_sample_value("tradewatch_log_records_dropped_total",
                                                   {"account": first.metrics.account}) == 0
    first_run = list(recorder.messages)
    loki.up()
    second = BotApp(settings, sim=sim, stepped=True)
    second.run(cycles=2, serve=False)
    pushed = loki.messages()
    # The whole first run (from the backlog) before any line of the second.
    assert Counter(pushed[:len(first_run)]) == Counter(first_run)
    assert Counter(pushed) == Counter(recorder.messages)
    assert len(set(loki.keys())) == len(loki.keys())


def test_a_terminal_unreachable_at_start_is_pushed_too(loki, tmp_path, recorder):
    sim = SimTerminal(seed=3, stepped=True)
    app = BotApp(_settings(tmp_path, loki.url), sim=sim, stepped=True)
    sim.fault_disconnect(120)
    app.run(cycles=3, serve=False)
    pushed = loki.messages()
    assert any(m.startswith("terminal not reachable at start") for m in pushed), pushed[:10]
    assert Counter(pushed) == Counter(recorder.messages)
