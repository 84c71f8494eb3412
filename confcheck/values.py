"""Parsers for settings' text: numbers, ports, choices, names, host names, URLs.

Each factory returns ``parse(raw) -> value`` that raises ValueError with a reason (the value itself
is shown, or hidden, by `confcheck.reading`). Every parser first refuses control characters (a
newline in ENV would split a log line or a label) and text longer than its bound (a 2 000-byte
token would never be accepted by the peer), so no setting can smuggle either in.

Numbers are ASCII only: Python's int()/float()/Decimal() also accept "1_000", Arabic-Indic digits
such as "١٢" or full-width ones, which no operator means as a port or a count ("²" even passes
str.isdigit() and then fails int()).
"""

from __future__ import annotations

import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
Parser = Callable[[str], T]

DEFAULT_MAX_CHARS = 256
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_NAME = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def clean(raw: str, max_chars: int = DEFAULT_MAX_CHARS, max_bytes: int | None = None) -> str:
    """The text stripped of surrounding blanks; refuses control characters and over-long text."""
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in raw.strip()):
        raise ValueError("contains a control character (e.g. a newline); settings are one line of text")
    value = raw.strip()
    if len(value) > max_chars:
        raise ValueError(f"is {len(value)} characters long, at most {max_chars} allowed")
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise ValueError(f"is {len(value.encode('utf-8'))} bytes long (UTF-8), at most {max_bytes} allowed")
    return value


def text(max_chars: int = DEFAULT_MAX_CHARS, *, required: bool = False, max_bytes: int | None = None) -> Parser[str]:
    """Free text of bounded length; `required`: not empty."""

    def parse(raw: str) -> str:
        value = clean(raw, max_chars, max_bytes)
        if required and not value:
            raise ValueError("must not be empty")
        return value

    return parse


def optional(parse: Parser[T]) -> Parser[T | None]:
    """Empty text means "not set" (None); anything else goes through `parse`."""

    def parse_optional(raw: str) -> T | None:
        return parse(raw) if clean(raw, max(len(raw), 1)) else None

    return parse_optional


def integer(low: int, high: int) -> Parser[int]:
    def parse(raw: str) -> int:
        value = clean(raw, 40)
        if not _INTEGER.fullmatch(value):
            raise ValueError("expected a whole number in ASCII digits")
        number = int(value)
        if number < low:
            raise ValueError(f"must be at least {low}")
        if number > high:
            raise ValueError(f"must be at most {high}")
        return number

    return parse


def port(allow_zero: bool = False) -> Parser[int]:
    """A TCP port, 1-65535 in ASCII digits; `allow_zero` where 0 documentedly means "any free port"."""
    low = 0 if allow_zero else 1
    check = integer(low, 65535)

    def parse(raw: str) -> int:
        try:
            return check(raw)
        except ValueError as exc:
            if "control character" in str(exc):
                raise
            raise ValueError(f"must be a port number from {low} to 65535 in ASCII digits") from None

    return parse


def number(low: float, high: float, *, above: bool = False) -> Parser[float]:
    """A finite decimal number in [low, high] (`above`: strictly greater than low)."""

    def parse(raw: str) -> float:
        value = clean(raw, 40)
        if not _NUMBER.fullmatch(value):
            raise ValueError("expected a number in ASCII digits (e.g. 2.5)")
        result = float(value)
        if not math.isfinite(result):
            raise ValueError("must be a finite number")
        if result < low or (above and result == low):
            raise ValueError(f"must be above {low:g}" if above else f"must be at least {low:g}")
        if result > high:
            raise ValueError(f"must be at most {high:g}")
        return result

    return parse


def decimal(low: str, high: str) -> Parser[Decimal]:
    """An exact decimal in [low, high] (money and ratios stay Decimal)."""

    def parse(raw: str) -> Decimal:
        value = clean(raw, 40)
        if not _NUMBER.fullmatch(value):
            raise ValueError("expected a decimal number in ASCII digits (e.g. 0.5)")
        try:
            result = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise ValueError("expected a decimal number") from None
        if not result.is_finite():
            raise ValueError("must be a finite number")
        if result < Decimal(low):
            raise ValueError(f"must be at least {low}")
        if result > Decimal(high):
            raise ValueError(f"must be at most {high}")
        return result

    return parse


def boolean(raw: str) -> bool:
    value = clean(raw, 10).lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(TRUE + FALSE)}")


def choice(options: tuple[str, ...], *, upper: bool = False) -> Parser[str]:
    """One of `options`, compared case-insensitively and returned in the options' case."""

    def parse(raw: str) -> str:
        value = clean(raw, 40)
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def label(max_chars: int = 64) -> Parser[str]:
    """A label value (ENV, service names): letters, digits and ``_.-``, starting with a letter or digit."""

    def parse(raw: str) -> str:
        value = clean(raw, max_chars)
        if not _LABEL.fullmatch(value):
            raise ValueError("must be letters, digits, '_', '.' or '-' (starting with a letter or digit)")
        return value

    return parse


def names(max_items: int = 100) -> Parser[tuple[str, ...]]:
    """A comma-separated list of names (symbols, strategies): letters, digits, '_' and '.'."""

    def parse(raw: str) -> tuple[str, ...]:
        value = clean(raw, 4096)
        items = tuple(part.strip() for part in value.split(",") if part.strip())
        if not items:
            raise ValueError("must list at least one name")
        if len(items) > max_items:
            raise ValueError(f"lists {len(items)} names, at most {max_items} allowed")
        for item in items:
            if len(item) > 64 or not _NAME.fullmatch(item):
                raise ValueError(f"invalid name {item[:64]!r} (letters, digits, '_' and '.' only)")
        return items

    return parse


def host(raw: str) -> str:
    """An IP address or an RFC 1123 host name (syntax only: resolving is `system.bind_address`'s job)."""
    value = clean(raw, 253)
    if not value:
        raise ValueError("must not be empty")
    if _is_ip(value):
        return value
    labels = value.rstrip(".").split(".")
    if all(_HOST_LABEL.fullmatch(part) for part in labels) and not labels[-1].isdigit():
        return value
    raise ValueError("must be an IP address or a host name")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def url(schemes: tuple[str, ...] = ("http", "https")) -> Parser[str]:
    """A base URL: scheme from `schemes`, a valid host, an optional port 1-65535, no query or fragment.

    Returned without the trailing slash (callers append their API paths).
    """

    def parse(raw: str) -> str:
        value = clean(raw, 2048)
        if any(ch.isspace() for ch in value):
            raise ValueError("must not contain spaces")
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("is not a valid URL (bad IPv6 brackets?)") from None
        scheme = parts.scheme.lower()
        if scheme not in schemes or not value.lower().startswith(scheme + "://"):
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname:
            raise ValueError("has no host (expected e.g. http://host:port)")
        try:
            host(parts.hostname)
        except ValueError as exc:
            raise ValueError(f"has an invalid host: {exc}") from None
        try:
            given_port = parts.port
        except ValueError:
            given_port = 0
        if given_port == 0 or parts.netloc.endswith(":"):
            raise ValueError("has a port that is not a number from 1 to 65535")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("must not have a query or fragment (a base URL only)")
        return value.rstrip("/")

    return parse
