"""LokiHandler against a real local HTTP server: push format, retries, overload, shutdown."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.telemetry.context import correlation_context, cycle_context
from bot.telemetry.http_push import backoff_delay, retry_after_seconds
from bot.telemetry.logging import TradewatchJsonFormatter
from bot.telemetry.loki import LokiHandler
from bot.telemetry.metrics import BotMetrics

FAST = 1.0  # 10 000 log calls must take well under this many seconds


class FakeLoki:
    """A Loki push endpoint whose answer the test chooses: ``status`` for every request, or
    the next entries of ``script`` first; ``delay`` seconds before answering."""

    def __init__(self, status=204, script=(), delay=0.0, retry_after=None):
        self.status = status
        self.script = list(script)
        self.delay = delay
        self.retry_after = retry_after
        self.requests = []  # (headers, decoded payload, monotonic time)
        self.release = threading.Event()  # ends a delay early at teardown
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                owner.requests.append((dict(self.headers), self.path, raw, time.monotonic()))
                if owner.delay:
                    owner.release.wait(owner.delay)
                status = owner.script.pop(0) if owner.script else owner.status
                self.send_response(status)
                if owner.retry_after is not None and status == 429:
                    self.send_header("Retry-After", owner.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted_payloads(self):
        """Decoded bodies of the requests (all, including those answered with an error)."""
        return [json.loads(gzip.decompress(raw)) for _, _, raw, _ in self.requests]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loki_server():
    servers = []

    def start(**kwargs):
        server = FakeLoki(**kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


@pytest.fixture
def make_handler():
    """Build LokiHandlers wired to a private logger and a BotMetrics drop counter; closes them."""
    made = []

    def build(url, **kwargs):
        metrics = BotMetrics("90210")
        kwargs.setdefault("on_drop", metrics.count_log_drops)
        kwargs.setdefault("min_backoff", 0.05)
        handler = LokiHandler(url, {"service": "bot", "account": "90210", "env": "test"}, **kwargs)
        handler.setFormatter(TradewatchJsonFormatter(service="bot", account="90210", env="test"))
        logger = logging.getLogger(f"trading.{len(made)}.{id(handler)}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger, handler, metrics

    yield build
    for logger, handler in made:
        logger.removeHandler(handler)
        handler.close(timeout=1.0)


def dropped(metrics):
    return metrics.registry.get_sample_value("tradewatch_log_records_dropped_total", {"account": "90210"})


def log_many(logger, count=10_000):
    started = time.perf_counter()
    for i in range(count):
        logger.info("tick %d", i, extra={"symbol": "EURUSD"})
    return time.perf_counter() - started


@pytest.fixture
def fast_enough():
    """Time budget for 10 000 log calls: under 1 s, or 3x the cost of formatting the same lines
    into memory when the machine is too loaded for that (a handler that waited on the network
    would take many seconds either way)."""
    class FormatOnly(logging.Handler):
        def emit(self, record):
            self.format(record)  # what LokiHandler.emit costs before its queue append

    logger = logging.getLogger("trading.baseline")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = FormatOnly()
    handler.setFormatter(TradewatchJsonFormatter(service="bot", account="90210", env="test"))
    logger.addHandler(handler)
    try:
        baseline = log_many(logger)
    finally:
        logger.removeHandler(handler)
    return max(FAST, 3 * baseline)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_push_body_matches_the_loki_format(loki_server, make_handler):
    server = loki_server(status=204)
    logger, handler, metrics = make_handler(server.url, flush_interval=0.05)
    with cycle_context("cccccccccccc"):
        logger.info("first")
        with correlation_context("aaaaaaaaaaaa"):
            logger.warning("second", extra={"ticket": 7})
        logger.info("third")
    logger.error("fourth, no ids")
    handler.close(timeout=2.0)

    assert server.requests, "nothing was pushed"
    headers, path, _, _ = server.requests[0]
    assert path == "/loki/api/v1/push"
    assert headers["Content-Encoding"] == "gzip" and headers["Content-Type"] == "application/json"
    values_by_level = {}
    for payload in server.accepted_payloads():
        assert set(payload) == {"streams"}
        for stream in payload["streams"]:
            assert set(stream) == {"stream", "values"}
            labels = stream["stream"]
            assert set(labels) == {"service", "account", "level", "env"}
            assert (labels["service"], labels["account"], labels["env"]) == ("bot", "90210", "test")
            timestamps = [int(value[0]) for value in stream["values"]]
            assert timestamps == sorted(timestamps)
            for value in stream["values"]:
                assert isinstance(value[0], str) and value[0].isdigit() and len(value[0]) >= 19  # ns
                assert abs(int(value[0]) / 1e9 - time.time()) < 60
                assert isinstance(value[1], str)
                if len(value) == 3:
                    assert value[2] and all(isinstance(v, str) and v for v in value[2].values())
                values_by_level.setdefault(labels["level"], []).extend(stream["values"])
    by_message = {json.loads(v[1])["message"]: v for vs in values_by_level.values() for v in vs}
    assert set(by_message) == {"first", "second", "third", "fourth, no ids"}
    assert by_message["first"][2] == {"cycle_id": "cccccccccccc"}
    assert by_message["second"][2] == {"correlation_id": "aaaaaaaaaaaa", "cycle_id": "cccccccccccc"}
    assert len(by_message["fourth, no ids"]) == 2  # no metadata element when there is none
    assert json.loads(by_message["second"][1])["ticket"] == 7
    assert {level for level in values_by_level} == {"INFO", "WARNING", "ERROR"}
    assert handler.sent == 4 and dropped(metrics) == 0


def test_values_are_sorted_and_account_label_follows_set_account(loki_server, make_handler):
    server = loki_server(status=204)
    logger, handler, _ = make_handler(server.url, flush_interval=5.0)
    # Records created out of order (another thread may stamp earlier than it emits).
    for created in (3.0, 1.0, 2.0):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, f"at {created}", None, None)
        record.created = 1_767_607_200 + created
        handler.handle(record)
    handler.set_account("31337")
    logger.info("after login")
    handler.close(timeout=2.0)
    streams = [s for p in server.accepted_payloads() for s in p["streams"]]
    accounts = {s["stream"]["account"]: s for s in streams}
    assert set(accounts) == {"90210", "31337"}
    old = [json.loads(v[1])["message"] for v in accounts["90210"]["values"]]
    assert old == ["at 1.0", "at 2.0", "at 3.0"]
    assert accounts["90210"]["values"][0][0] == "1767607201000000000"


def test_healthy_loki_no_drops_and_logging_stays_fast(loki_server, make_handler, fast_enough):
    server = loki_server(status=204)
    logger, handler, metrics = make_handler(server.url, flush_interval=0.1, queue_size=20_000)
    elapsed = log_many(logger)
    assert elapsed < fast_enough, f"10 000 log calls took {elapsed:.2f}s"
    handler.close(timeout=5.0)
    assert handler.sent == 10_000
    assert sum(len(s["values"]) for p in server.accepted_payloads() for s in p["streams"]) == 10_000
    assert all(len(s["values"]) <= 500 for p in server.accepted_payloads() for s in p["streams"])
    assert dropped(metrics) == 0


def test_429_is_retried_and_records_arrive(loki_server, make_handler):
    server = loki_server(status=204, script=[429, 429], retry_after="0")
    logger, handler, metrics = make_handler(server.url, flush_interval=0.05)
    logger.info("must survive rate limiting")
    assert wait_for(lambda: handler.sent == 1)
    assert len(server.requests) == 3
    bodies = [r[2] for r in server.requests]
    assert bodies[0] == bodies[1] == bodies[2]  # the same batch, re-sent
    assert dropped(metrics) == 0


def test_retry_after_is_honoured(loki_server, make_handler):
    server = loki_server(status=204, script=[429], retry_after="1")
    logger, handler, _ = make_handler(server.url, flush_interval=0.05)
    logger.info("slow down")
    assert wait_for(lambda: handler.sent == 1, timeout=5)
    first, second = server.requests[0][3], server.requests[1][3]
    assert second - first >= 0.9


def test_backoff_helpers():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert 0 <= retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # in the past: no wait
    assert backoff_delay(0, 0.5, 30, retry_after=120) == 30  # Retry-After capped
    assert backoff_delay(3, 0.5, 30, retry_after=2) == 2
    for attempt, ceiling in ((0, 0.5), (2, 2.0), (10, 30.0)):
        assert ceiling / 2 <= backoff_delay(attempt, 0.5, 30) <= ceiling


def test_server_errors_overflow_the_queue_without_blocking(loki_server, make_handler, fast_enough):
    server = loki_server(status=500)
    logger, handler, metrics = make_handler(server.url, flush_interval=0.05, queue_size=1000, batch_size=100)
    elapsed = log_many(logger)
    assert elapsed < fast_enough, f"10 000 log calls took {elapsed:.2f}s"
    assert 10_000 - 1000 - 100 <= dropped(metrics) <= 10_000 - 1000
    assert len(server.requests) >= 1 and handler.sent == 0
    started = time.monotonic()
    handler.close(timeout=0.5)
    assert time.monotonic() - started < 1.0
    # Never delivered, so every record is accounted for as dropped, and only once.
    assert wait_for(lambda: dropped(metrics) == 10_000, timeout=1.0), dropped(metrics)
    assert handler.dropped == 10_000


def test_oldest_records_are_the_ones_dropped(loki_server, make_handler):
    server = loki_server(status=500)
    logger, handler, metrics = make_handler(server.url, flush_interval=30, queue_size=50, batch_size=500)
    for i in range(200):
        logger.info("n=%d", i)
    assert dropped(metrics) == 150  # the sender sleeps (flush_interval) so nothing left the queue
    server.status = 204
    handler.close(timeout=2.0)
    delivered = [json.loads(v[1])["message"] for p in server.accepted_payloads() for s in p["streams"]
                 for v in s["values"]]
    assert delivered == [f"n={i}" for i in range(150, 200)]


def test_slow_loki_never_blocks_and_close_keeps_its_deadline(loki_server, make_handler, fast_enough):
    server = loki_server(status=204, delay=10.0)
    logger, handler, metrics = make_handler(server.url, flush_interval=0.05, timeout=0.2, queue_size=2000)
    elapsed = log_many(logger)
    assert elapsed < fast_enough, f"10 000 log calls took {elapsed:.2f}s"
    assert dropped(metrics) > 0  # overflow happened
    started = time.monotonic()
    handler.close(timeout=0.5)
    assert time.monotonic() - started < 0.9
    assert handler.sent == 0
    assert wait_for(lambda: dropped(metrics) == 10_000, timeout=1.0)


def test_close_interrupts_a_request_loki_never_answers(loki_server, make_handler):
    server = loki_server(status=204, delay=10.0)
    logger, handler, _ = make_handler(server.url, flush_interval=0.05, timeout=30.0)
    logger.info("stuck")
    assert wait_for(lambda: len(server.requests) == 1)
    started = time.monotonic()
    handler.close(timeout=0.3)
    assert time.monotonic() - started < 0.7
    assert wait_for(lambda: not handler._thread.is_alive(), timeout=1.0)


def test_loki_not_listening(closed_port, make_handler, fast_enough):
    logger, handler, metrics = make_handler(f"http://127.0.0.1:{closed_port}", flush_interval=0.05,
                                            queue_size=500, timeout=0.5)
    elapsed = log_many(logger)
    assert elapsed < fast_enough, f"10 000 log calls took {elapsed:.2f}s"
    assert dropped(metrics) >= 10_000 - 500 - 500
    started = time.monotonic()
    handler.close(timeout=0.5)
    assert time.monotonic() - started < 0.9
    assert wait_for(lambda: dropped(metrics) == 10_000, timeout=1.0)


def test_client_errors_drop_the_batch_and_say_so_once(loki_server, make_handler, capsys):
    server = loki_server(status=400)
    logger, handler, metrics = make_handler(server.url, flush_interval=0.05, batch_size=3)
    for i in range(3):
        logger.info("rejected %d", i)
    assert wait_for(lambda: dropped(metrics) == 3)
    for i in range(3):
        logger.info("rejected again %d", i)
    assert wait_for(lambda: dropped(metrics) == 6)
    assert len(server.requests) == 2  # no retry of a 400
    err = capsys.readouterr().err
    assert err.count("HTTP 400") == 1, err


def test_no_drops_without_overflow_even_when_loki_is_down(closed_port, make_handler):
    logger, handler, metrics = make_handler(f"http://127.0.0.1:{closed_port}", flush_interval=0.05,
                                            queue_size=10_000)
    for i in range(100):
        logger.info("kept %d", i)
    time.sleep(0.3)
    assert dropped(metrics) == 0 and handler.dropped == 0 and handler.sent == 0


@pytest.mark.parametrize("labels", [{"service": "bot", "symbol": "EURUSD"}, {"correlation_id": "x"}])
def test_only_low_cardinality_labels_are_allowed(labels):
    with pytest.raises(ValueError, match="Loki labels may only be"):
        LokiHandler("http://127.0.0.1:3100", labels)


def test_bad_url_is_a_clear_error():
    with pytest.raises(ValueError, match="invalid Loki URL"):
        LokiHandler("loki:3100", {"service": "bot"})


def test_basic_auth_from_url_and_full_endpoint_url(loki_server, make_handler):
    server = loki_server(status=204)
    base = server.url.replace("http://", "http://tenant1:s%40fe-pass@")
    logger, handler, _ = make_handler(base + "/loki/api/v1/push", flush_interval=0.05)
    logger.info("authenticated")
    handler.close(timeout=2.0)
    headers, path, _, _ = server.requests[0]
    assert path == "/loki/api/v1/push"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"tenant1:s@fe-pass").decode()
    assert "s@fe-pass" not in handler._pusher.target and "tenant1" not in handler._pusher.target


def test_metadata_is_the_ids_the_json_line_carries_read_once(closed_port, make_handler, monkeypatch):
    """Beside the stdout handler (the same JSON formatter), the Loki handler sends as metadata the ids
    the formatter wrote into the line, without looking them up in the context again: inside a context,
    outside one with explicit extra= ids, and with none."""
    import io

    import bot.telemetry.loki as loki_module

    logger, handler, _ = make_handler(f"http://127.0.0.1:{closed_port}", hold=True)
    console = logging.StreamHandler(io.StringIO())
    console.setFormatter(handler.formatter)
    logger.handlers.insert(0, console)  # first, as on the root logger

    class Unread:
        def get(self):
            raise AssertionError("the Loki handler looked the id up again")

    monkeypatch.setattr(loki_module, "correlation_id", Unread())
    monkeypatch.setattr(loki_module, "cycle_id", Unread())
    try:
        with cycle_context("cccccccccccc"), correlation_context("aaaaaaaaaaaa"):
            logger.info("inside", extra={"cycle_id": "ignored-in-a-context"})
        logger.info("outside", extra={"correlation_id": "bbbbbbbbbbbb"})
        logger.info("none")
    finally:
        logger.removeHandler(console)
    queued = list(handler._queue)
    assert [json.loads(line)["message"] for *_, line, _ in queued] == ["inside", "outside", "none"]
    for *_, line, metadata in queued:
        written = json.loads(line)
        assert metadata == (written["correlation_id"], written["cycle_id"])
    assert [metadata for *_, metadata in queued] == [
        ("aaaaaaaaaaaa", "cccccccccccc"), ("bbbbbbbbbbbb", None), (None, None)]
    assert "_tradewatch_ids" not in json.loads(queued[0][3])  # not an extra field of the line
