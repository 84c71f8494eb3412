"""Structured JSON logs: one JSON object per line, on stdout and (optionally) Loki.

Why JSON with fixed fields: Loki, Grafana and whoever reads a log at 3 a.m. can
filter on ``account``, ``cycle_id`` or ``correlation_id`` without regex. The ids come
from :mod:`bot.telemetry.context`, so call sites only pass event fields via
``extra=`` (symbol, strategy, ticket, retcode, latency_ms …). Every line passes
through the :mod:`bot.telemetry.redaction` step last, so secrets never leave.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

from bot.telemetry.context import current_ids
from bot.telemetry.redaction import REDACTOR, Redactor, add_secret

if TYPE_CHECKING:
    from bot.telemetry.loki import LokiHandler

__all__ = ["LEVELS", "TradewatchJsonFormatter", "add_secret", "attach_loki", "detach_loki", "parse_level",
           "set_account", "setup_logging"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Record attributes the JSON formatter leaves for the Loki handler (bot.telemetry.loki): (formatter,
#: line) as it formatted the record, and (correlation_id, cycle_id) as it wrote them in that line.
#: Underscore names: python-json-logger leaves them out of a line's extra fields.
LINE_CACHE = "_tradewatch_line"
IDS_CACHE = "_tradewatch_ids"


def parse_level(level: str) -> int:
    """Map a LOG_LEVEL string (any case) to a logging level, or raise a one-line ValueError."""
    name = str(level).strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in LEVELS:
        raise ValueError(f"invalid LOG_LEVEL {level!r}: expected one of {', '.join(LEVELS)}")
    return logging.getLevelName(name)


def rfc3339_utc(created: float) -> str:
    """``2026-01-05T10:00:00.123Z`` for a ``time.time()`` value (what Loki and Grafana parse)."""
    whole = int(created)
    millis = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


class TradewatchJsonFormatter(JsonFormatter):
    """python-json-logger formatter producing the tradewatch line layout, redacted.

    Field order: timestamp, level, logger, message, service, account, correlation_id,
    cycle_id (plus ``env``), then ``exc_info``/``stack_info`` and the record's ``extra=``
    fields. The fixed fields win over an ``extra=`` field of the same name.
    """

    def __init__(self, service: str, account: str | None, env: str, redactor: Redactor = REDACTOR) -> None:
        super().__init__(json_ensure_ascii=False)
        self.service = service
        self.account = account
        self.env = env
        self.redactor = redactor

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        ids = current_ids()
        log_data["timestamp"] = rfc3339_utc(record.created)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        log_data["service"] = self.service
        log_data["account"] = self.account
        log_data["env"] = self.env
        # The contextvars win; an explicit extra= id fills in outside a context (e.g. a replay).
        fields = record.__dict__
        log_data["correlation_id"] = correlation = ids["correlation_id"] or fields.get("correlation_id")
        log_data["cycle_id"] = cycle = ids["cycle_id"] or fields.get("cycle_id")
        # Kept for the Loki handler, which sends the same two ids as metadata: read here once, not
        # looked up again in the context for every line on the trading thread (bot.telemetry.loki).
        fields[IDS_CACHE] = (correlation, cycle)
        extras: dict[str, Any] = {}
        super().add_fields(extras, record, message_dict)
        for key, value in extras.items():
            log_data.setdefault(key, value)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return self.redactor.redact_record(log_data)

    def format(self, record: logging.LogRecord) -> str:
        # Several handlers (stdout, Loki) share this formatter: serialise once per record (the Loki
        # handler reads this attribute itself: LINE_CACHE).
        cached = record.__dict__.get(LINE_CACHE)
        if cached is not None and cached[0] is self:
            return cached[1]
        line = self.redactor.redact_text(super().format(record))
        record.__dict__[LINE_CACHE] = (self, line)
        return line


# Fields of a LogRecord that are not an event's own `extra=` (the console shows only the latter).
_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", LINE_CACHE, IDS_CACHE}
_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[32m", "WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[1;31m"}


def _blank(value: object) -> bool:
    """None or an empty str/dict/list/tuple/set: left out of a console line.

    By type, never by `value in (None, "", {}, [])`: that compares with ==, and a numpy scalar
    or array (a strategy's confidence) compared with [] is an array whose truth value raises.
    """
    return value is None or (isinstance(value, (str, dict, list, tuple, set, frozenset)) and not value)


class ConsoleFormatter(logging.Formatter):
    """One readable line per event for a person at a terminal: time (UTC), level, logger, message,
    then the event's extra fields as key=value; coloured levels when `colour`. Redacted like JSON.
    Loki and non-terminals keep the JSON lines (LOG_FORMAT=auto)."""

    def __init__(self, colour: bool = True, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.colour = colour
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        extras = " ".join(f"{key}={value}" for key, value in record.__dict__.items()
                          if key not in _RECORD_FIELDS and not _blank(value))
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"{_COLOURS.get(record.levelname, '')}{level}\033[0m"
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.created))
        line = f"{stamp} {level} {record.name:<22} {message}" + (f"  \033[2m{extras}\033[0m" if extras and self.colour
                                                                 else f"  {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redactor.redact_text(line)


def stream_formatter(log_format: str, stream: IO[str], json_formatter: logging.Formatter) -> logging.Formatter:
    """LOG_FORMAT: json, console, or auto (console when the stream is a terminal, else JSON)."""
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    if log_format == "console" or (log_format == "auto" and is_tty):
        return ConsoleFormatter(colour=is_tty)
    return json_formatter


class _State:
    """What setup_logging installed, so set_account() can update it later."""

    formatter: TradewatchJsonFormatter | None = None
    loki: LokiHandler | None = None


def setup_logging(
    level: str = "INFO",
    service: str = "bot",
    account: str | None = None,
    env: str = "dev",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
    loki: LokiHandler | None = None,
    log_format: str = "json",
) -> None:
    """Send every log record as one redacted JSON line to ``stream`` (default stdout) and Loki.

    Idempotent: replaces the root logger's handlers each time. ``secrets`` are added to
    the process-wide redactor (never removed: forgetting a secret is the unsafe direction).
    Raises ValueError on an invalid ``level``.
    """
    numeric_level = parse_level(level)
    for value in secrets:
        add_secret(value)
    formatter = TradewatchJsonFormatter(service=service, account=account, env=env)
    out = stream if stream is not None else sys.stdout
    console = logging.StreamHandler(out)
    console.setFormatter(stream_formatter(log_format, out, formatter))
    handlers: list[logging.Handler] = [console]
    if loki is not None:
        if account is not None:
            loki.set_account(account)
        handlers.append(loki)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if old is not loki:
            old.close()
    for handler in handlers:
        if handler.formatter is None:
            handler.setFormatter(formatter)  # Loki always gets the JSON lines
        root.addHandler(handler)
    root.setLevel(numeric_level)
    logging.captureWarnings(True)
    _State.formatter = formatter
    _State.loki = loki


def set_account(account: str) -> None:
    """Fill in the ``account`` field (and the Loki label) once the broker login is known."""
    if _State.formatter is not None:
        _State.formatter.account = account
    if _State.loki is not None:
        _State.loki.set_account(account)


def attach_loki(loki: LokiHandler) -> None:
    """Add a Loki handler to the logging already set up, keeping its stream and level.

    The bot sets up stdout logging before it knows its account; Loki joins once it does.
    """
    root = logging.getLogger()
    if _State.loki is not None and _State.loki is not loki:
        root.removeHandler(_State.loki)
    if _State.formatter is None:
        setup_logging(loki=loki)
        return
    loki.setFormatter(_State.formatter)
    if loki not in root.handlers:
        root.addHandler(loki)
    _State.loki = loki


def detach_loki(loki: LokiHandler) -> None:
    """Take a (closed) Loki handler off the root logger; later lines go to the stream only."""
    logging.getLogger().removeHandler(loki)
    if _State.loki is loki:
        _State.loki = None
