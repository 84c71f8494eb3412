"""Query parameters of the REST API, parsed into typed values or refused with a 400 naming them.

Why strict: a typo such as `?form=2024-01-01` silently ignored would return all-time
figures that look plausible.  Every endpoint lists the parameters it accepts; anything
else, a repeated parameter or a malformed value is a BadParameter.  Values only ever
become bound parameters of SQLAlchemy expressions, never SQL text.

Why ASCII patterns instead of str.isdigit(): "²" is a digit to Python but not to int();
and every number is range-checked here, before it can overflow a date (to=9999-12-31 + 1
day), a 64-bit SQLite integer or a PostgreSQL bigint.  Text never holds NUL or other
control characters (PostgreSQL refuses NUL; str.isprintable() refuses all of them).
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from werkzeug.datastructures import MultiDict

from db.browse import MAX_PAGE, Cursor
from db.vocabulary import ACCOUNT_LEN, NAME_LEN, SIGNALS, SYMBOL_LEN

FORMATS = ("json", "csv")
CONVENTIONS = ("position", "mt5")  # db.conventions: ours (the default) or MT5's Trade History Report
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INT = re.compile(r"[0-9]{1,18}")  # ASCII digits, below 2**63 (SQLite's and PostgreSQL's bigint)
_CURSOR = re.compile(r"-?[0-9]{1,18}\.[0-9]{1,18}")
# Days the API accepts: wide enough for any trading history, narrow enough that a day +/- 1
# (the analytics' half-open ranges) stays a valid date and timestamp on every backend.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
# Cursor times (microseconds since the epoch) inside the same range.
_CURSOR_MICROS = ((FIRST_DAY - date(1970, 1, 1)) // timedelta(microseconds=1),
                  (LAST_DAY - date(1970, 1, 1) + timedelta(days=1)) // timedelta(microseconds=1))


class BadParameter(ValueError):
    """A query parameter the API refuses: answered with 400 and {"error": ..., "parameter": name}."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class Params:
    """The query string of one request, read only through the typed getters below."""

    def __init__(self, args: MultiDict, allowed: set[str]) -> None:
        allowed = allowed | {"format"}
        for name in args:
            if name not in allowed:
                raise BadParameter(name, f"unknown parameter {name[:40]!r}; accepted: {', '.join(sorted(allowed))}")
            if len(args.getlist(name)) > 1:
                raise BadParameter(name, f"parameter {name!r} is given more than once")
        self._args = args

    def text(self, name: str, limit: int, required: bool = False) -> str | None:
        value = self._args.get(name)
        if value is None or value == "":
            if required:
                raise BadParameter(name, f"parameter {name!r} is required")
            return None
        if len(value) > limit or not value.isprintable() or value == "*":
            raise BadParameter(name, f"parameter {name!r} must be a name of at most {limit} characters")
        return value

    def account(self) -> str:
        return self.text("account", ACCOUNT_LEN, required=True)  # type: ignore[return-value]

    def symbol(self) -> str | None:
        return self.text("symbol", SYMBOL_LEN)

    def strategy(self) -> str | None:
        return self.text("strategy", NAME_LEN)

    def day(self, name: str) -> date | None:
        value = self._args.get(name)
        if value is None or value == "":
            return None
        try:
            if not _DAY.fullmatch(value):
                raise ValueError
            day = date.fromisoformat(value)
        except ValueError:
            raise BadParameter(name, f"parameter {name!r} must be a date as YYYY-MM-DD, got {value[:40]!r}") from None
        if not FIRST_DAY <= day <= LAST_DAY:
            raise BadParameter(name, f"parameter {name!r} must be a day from {FIRST_DAY} to {LAST_DAY}, got {value}")
        return day

    def days(self) -> tuple[date | None, date | None]:
        start, end = self.day("from"), self.day("to")
        if start is not None and end is not None and start > end:
            raise BadParameter("from", f"parameter 'from' ({start}) is after 'to' ({end})")
        return start, end

    def choice(self, name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
        value = self._args.get(name)
        if value is None or value == "":
            return default
        if value not in choices:
            raise BadParameter(name, f"parameter {name!r} must be one of {', '.join(choices)}, got {value[:40]!r}")
        return value

    def flag(self, name: str) -> bool | None:
        value = self.choice(name, ("true", "false"))
        return None if value is None else value == "true"

    def limit(self, default: int = 100) -> int:
        value = self._args.get("limit")
        if value is None or value == "":
            return default
        if not _INT.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE:
            raise BadParameter("limit", f"parameter 'limit' must be an integer from 1 to {MAX_PAGE}, got {value[:40]!r}")
        return int(value)

    def cursor(self) -> Cursor | None:
        value = self._args.get("cursor")
        if value is None or value == "":
            return None
        match = _CURSOR.fullmatch(value)
        if match is None or not _CURSOR_MICROS[0] <= int(value.partition(".")[0]) <= _CURSOR_MICROS[1]:
            raise BadParameter("cursor", "parameter 'cursor' must be a next_cursor returned by this API")
        try:
            return Cursor.decode(value)
        except (ValueError, OverflowError):
            raise BadParameter("cursor", "parameter 'cursor' must be a next_cursor returned by this API") from None

    def before_id(self) -> int | None:
        value = self._args.get("cursor")
        if value is None or value == "":
            return None
        if not _INT.fullmatch(value):
            raise BadParameter("cursor", "parameter 'cursor' must be a next_cursor returned by this API")
        return int(value)

    def signal(self) -> str | None:
        return self.choice("signal", SIGNALS)

    def convention(self) -> str:
        """position (the default) or mt5; MT5's figures are the whole account's, so they take no
        symbol or strategy (refused, naming the parameter, rather than silently ignored)."""
        value = self.choice("convention", CONVENTIONS, default="position")
        if value == "mt5":
            for name in ("symbol", "strategy"):
                if self._args.get(name):
                    raise BadParameter(name, f"parameter {name!r} does not apply to convention=mt5: "
                                             "MT5-report figures cover the whole account")
        return value  # type: ignore[return-value]

    def format(self) -> str:
        return self.choice("format", FORMATS, default="json")  # type: ignore[return-value]

