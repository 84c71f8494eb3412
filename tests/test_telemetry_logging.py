"""JSON log lines, correlation contextvars, LOG_LEVEL handling and secret redaction."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.telemetry import context
from bot.telemetry.logging import (
    TradewatchJsonFormatter,
    parse_level,
    rfc3339_utc,
    set_account,
    setup_logging,
)
from bot.telemetry.redaction import Redactor, add_secret

REQUIRED = ("timestamp", "level", "logger", "message", "service", "account", "correlation_id", "cycle_id")
RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def root_logging():
    """Restore the root logger after a test that calls setup_logging()."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    logging.captureWarnings(False)


@pytest.fixture
def capture(root_logging):
    """setup_logging() into a StringIO; returns a function giving the parsed lines so far."""
    stream = io.StringIO()

    def configure(**kwargs):
        setup_logging(stream=stream, **kwargs)

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    configure.lines = lines
    configure.raw = stream.getvalue
    return configure


def test_every_line_is_json_with_the_required_fields(capture):
    capture(level="INFO", service="bot", account="5550123", env="test")
    log = logging.getLogger("bot.engine")
    before = time.time()
    log.info("order sent", extra={"symbol": "EURUSD", "strategy": "ma_crossover", "ticket": 42, "retcode": 10009,
                                  "latency_ms": 12.5, "price": Decimal("1.10250")})
    line = capture.lines()[-1]
    for field in REQUIRED:
        assert field in line, field
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["level"] == "INFO" and line["logger"] == "bot.engine" and line["message"] == "order sent"
    assert line["service"] == "bot" and line["account"] == "5550123" and line["env"] == "test"
    assert line["correlation_id"] is None and line["cycle_id"] is None
    assert (line["symbol"], line["strategy"], line["ticket"], line["retcode"], line["latency_ms"]) == (
        "EURUSD", "ma_crossover", 42, 10009, 12.5)
    assert line["price"] == "1.10250"  # Decimal stays exact
    assert RFC3339_MS_UTC.match(line["timestamp"]), line["timestamp"]
    stamped = datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    assert before - 0.002 <= stamped <= time.time() + 0.002


def test_timestamp_format_is_rfc3339_utc_with_milliseconds():
    assert rfc3339_utc(1767607200.123456) == "2026-01-05T10:00:00.123Z"
    assert rfc3339_utc(1767607200.0) == "2026-01-05T10:00:00.000Z"


def test_exceptions_are_a_text_field(capture):
    capture()
    try:
        raise KeyError("missing tick")
    except KeyError:
        logging.getLogger("bot").exception("cycle failed")
    line = capture.lines()[-1]
    assert line["level"] == "ERROR"
    assert isinstance(line["exc_info"], str)
    assert "Traceback" in line["exc_info"] and "KeyError: 'missing tick'" in line["exc_info"]


def test_ids_come_from_contextvars_and_reset(capture):
    capture()
    log = logging.getLogger("bot")
    with context.cycle_context() as cycle, context.correlation_context() as corr:
        assert re.fullmatch(r"[0-9a-f]{12}", cycle) and re.fullmatch(r"[0-9a-f]{16}", corr)
        assert context.current_ids() == {"correlation_id": corr, "cycle_id": cycle}
        log.info("inside")
        with context.correlation_context("feedfacecafe"):
            log.info("nested")
        log.info("back")
    log.info("outside")
    inside, nested, back, outside = capture.lines()
    assert (inside["cycle_id"], inside["correlation_id"]) == (cycle, corr)
    assert (nested["cycle_id"], nested["correlation_id"]) == (cycle, "feedfacecafe")
    assert back["correlation_id"] == corr
    assert outside["cycle_id"] is None and outside["correlation_id"] is None
    assert context.current_ids() == {"correlation_id": None, "cycle_id": None}


def test_new_ids_are_unique():
    ids = {context.new_correlation_id() for _ in range(2000)} | {context.new_cycle_id() for _ in range(2000)}
    assert len(ids) == 4000


def test_ids_do_not_repeat_when_a_strategy_seeds_random_or_the_process_forks():
    """The ids come from a generator of their own: random.seed (a strategy's reproducible backtest)
    does not make two runs' ids the same, and a forked child does not repeat its parent's."""
    import os
    import random

    random.seed(42)
    first = [context.new_cycle_id(), context.new_correlation_id()[8:]]
    random.seed(42)
    assert [context.new_cycle_id(), context.new_correlation_id()[8:]] != first
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only writes its next id
        os.write(write, context.new_cycle_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    assert os.read(read, 64).decode() != context.new_cycle_id()
    os.close(read)


def test_ids_follow_threads_started_with_copy_context(capture):
    capture()
    log = logging.getLogger("bot.worker")
    with context.cycle_context("c0ffee000001"), context.correlation_context("0rder0000001"):
        copied = contextvars.copy_context()
        with_context = threading.Thread(target=copied.run, args=(log.info, "in copied context"))
        without_context = threading.Thread(target=log.info, args=("in bare thread",))
    with_context.start(), with_context.join()
    without_context.start(), without_context.join()
    by_message = {line["message"]: line for line in capture.lines()}
    assert by_message["in copied context"]["cycle_id"] == "c0ffee000001"
    assert by_message["in copied context"]["correlation_id"] == "0rder0000001"
    assert by_message["in bare thread"]["cycle_id"] is None


def test_log_level_filters(capture):
    capture(level="warning")
    log = logging.getLogger("bot.filter")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["message"] for line in capture.lines()] == ["w", "e"]


@pytest.mark.parametrize("bad", ["verbose", "", "10", "INFOO"])
def test_invalid_log_level_is_a_clear_error(root_logging, bad):
    with pytest.raises(ValueError, match=r"invalid LOG_LEVEL .*expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        setup_logging(level=bad, stream=io.StringIO())


def test_parse_level_accepts_any_case():
    assert parse_level("debug") == logging.DEBUG
    assert parse_level(" Error ") == logging.ERROR
    assert parse_level("WARN") == logging.WARNING


def test_setup_is_idempotent_and_set_account_fills_the_field(capture):
    capture(level="INFO")
    capture(level="INFO")
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("bot").info("before login")
    set_account("777001")
    logging.getLogger("bot").info("after login")
    before, after = capture.lines()
    assert before["account"] is None and after["account"] == "777001"


def test_warnings_are_logged_as_json(capture):
    import warnings

    capture()
    warnings.warn("old api", DeprecationWarning, stacklevel=1)
    line = capture.lines()[-1]
    assert line["logger"] == "py.warnings" and "old api" in line["message"]


# -- redaction -------------------------------------------------------------------------------

SECRET = "S3cr3t-Broker-Pa55"
TOKEN = "tok_9f8e7d6c5b4a"


def _raise_with(secret):
    raise ConnectionError(f"login refused for password {secret}")


def test_configured_secrets_never_appear(capture):
    capture(secrets=[SECRET, TOKEN])
    log = logging.getLogger("bot.gateway")
    log.info("connecting with %s and " + TOKEN, SECRET)
    log.info("extras", extra={"request": {"login": 5, "note": f"pw {SECRET}"}, "items": [TOKEN, 1]})
    try:
        try:
            _raise_with(SECRET)
        except ConnectionError as exc:
            raise RuntimeError(f"wrapped: {exc} / {TOKEN}") from exc
    except RuntimeError:
        log.exception("initialize failed: %s", SECRET, stack_info=True)
    raw = capture.raw()
    assert SECRET not in raw and TOKEN not in raw
    assert "S3cr3t" not in raw
    lines = capture.lines()
    assert len(lines) == 3
    assert lines[0]["message"] == "connecting with *** and ***"
    assert lines[1]["request"]["note"] == "pw ***" and lines[1]["items"] == ["***", 1]
    assert "ConnectionError: login refused for password ***" in lines[2]["exc_info"]
    assert "RuntimeError: wrapped" in lines[2]["exc_info"] and "stack_info" in lines[2]


def test_credential_patterns_and_url_passwords_are_masked(capture):
    capture()
    log = logging.getLogger("bot.config")
    log.info("dsn postgresql://trader:Xk82-pw@db.internal:5432/tradewatch password=hunter2 token=abc123")
    log.info("settings", extra={"database_url": "postgresql+psycopg2://u:urlpass99@h/db",
                                "mt5_password": "notInList1", "token": 123456, "api_key": None,
                                "nested": {"client_secret": ["x1y2z3w4"]}, "tokens": 3})
    raw = capture.raw()
    for leaked in ("Xk82-pw", "hunter2", "abc123", "urlpass99", "notInList1", "123456", "x1y2z3w4"):
        assert leaked not in raw, leaked
    first, second = capture.lines()
    assert first["message"] == ("dsn postgresql://trader:***@db.internal:5432/tradewatch password=*** token=***")
    assert second["database_url"] == "postgresql+psycopg2://u:***@h/db"
    assert second["mt5_password"] == second["token"] == second["api_key"] == "***"
    assert second["nested"] == {"client_secret": "***"}
    assert second["tokens"] == 3  # only whole words are sensitive


def test_add_secret_at_runtime_and_short_secrets_ignored(capture):
    capture(secrets=["abc"])  # too short: would mask half of every line
    log = logging.getLogger("bot")
    late = "late-added-secret-77"
    log.info("abc before %s", late)
    add_secret(late)
    log.info("abc after %s", late)
    before, after = capture.lines()
    assert before["message"] == f"abc before {late}"
    assert after["message"] == "abc after ***"


def test_secrets_with_json_special_characters():
    redactor = Redactor(['quo"te\\slash', "naïve-pässword"])
    formatter = TradewatchJsonFormatter(service="bot", account=None, env="dev", redactor=redactor)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, 'a quo"te\\slash and naïve-pässword', None, None)
    line = formatter.format(record)
    assert json.loads(line)["message"] == "a *** and ***"
    assert "slash" not in line and "pässword" not in line


def test_redactor_keeps_ordinary_text():
    redactor = Redactor(["hunter22"])
    text = "EURUSD buy 0.10 lots at 1.10250, retcode 10009, http://loki:3100/loki/api/v1/push"
    assert redactor.redact_text(text) == text


def test_explicit_ids_fill_in_outside_a_context(capture):
    capture()
    log = logging.getLogger("bot.replay")
    log.info("replayed", extra={"correlation_id": "0ld0rder0001"})
    with context.correlation_context("current00001"):
        log.info("inside", extra={"correlation_id": "ignored00001"})
    replayed, inside = capture.lines()
    assert replayed["correlation_id"] == "0ld0rder0001" and replayed["cycle_id"] is None
    assert inside["correlation_id"] == "current00001"
