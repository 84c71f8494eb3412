"""Scrub secrets from anything about to leave the process as a log line.

Why a separate step on the *serialised* line: a secret can hide anywhere — in the
message, in an ``extra=`` field, in an exception message or a traceback — and
checking each place separately is how leaks happen. The JSON formatter runs
:meth:`Redactor.redact_fields` on the structured record (so sensitive keys become
``"***"`` without breaking JSON) and then :meth:`Redactor.redact_text` on the final
string, which is the last thing before stdout and Loki.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter strings would mask half of every line

# Cheap substring test that every sensitive word below contains: most lines have none,
# and skipping the case-insensitive regexes for them keeps logging fast.
_HINTS = ("pass", "pwd", "secret", "token", "key")
_SENSITIVE_KEY_WORDS = (
    "password|passwd|pwd|passphrase|secret|client_secret|token|access_token|refresh_token|"
    "api_key|apikey|auth_token|bridge_token"
)
# A sensitive word not glued to other letters/digits: matches "db_password", "TOKEN", not "tokens".
_SENSITIVE_KEY = re.compile(rf"(?i)(?<![a-z0-9])(?:{_SENSITIVE_KEY_WORDS})(?![a-z0-9])")

# key=value / key: value inside free text (also the JSON-escaped form "key": "value").
# The value stops at whitespace, quotes, backslashes and separators, so replacing it
# never breaks the surrounding JSON string.
_KEY_VALUE = re.compile(
    rf"(?i)(?P<key>(?<![a-z0-9])(?:{_SENSITIVE_KEY_WORDS})(?![a-z0-9]))"
    r"(?P<sep>(?:\\?[\"'])?\s*[=:]\s*(?:\\?[\"'])?)"
    r"(?P<value>[^\s\"'\\&,;{}\[\]()<>]+)"
)
# scheme://user:password@host — only the password part goes.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@\"'\\]*:)(?P<password>[^\s@/\"'\\]+)(?=@)"
)


_JSON_KEY_SEPARATOR = re.compile(r'"\s*:\s*')


def _mask_value(match: re.Match[str]) -> str:
    # `"password": 123` is JSON structure (an unescaped quote before the colon): the mask
    # must be a JSON string there, or the line stops parsing.
    sep = match["sep"]
    mask = f'"{MASK}"' if _JSON_KEY_SEPARATOR.fullmatch(sep) else MASK
    return f"{match['key']}{sep}{mask}"


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """True when a field name says its value is a credential (``password``, ``api_key`` …)."""
    return bool(_SENSITIVE_KEY.search(key))


class Redactor:
    """Holds the configured secret strings and masks them, and credential patterns, in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in secrets:
            self.add(value)

    def add(self, value: str | None) -> None:
        """Mask ``value`` from now on; ``None``, empty and strings under 4 chars are ignored."""
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        # The serialised line holds the JSON-escaped form of a secret with quotes,
        # backslashes or control characters: mask both spellings.
        forms = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
        with self._lock:
            if forms <= self._secrets:
                return
            self._secrets |= forms
            longest_first = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in longest_first))

    def clear(self) -> None:
        """Forget every configured secret (tests; a process normally only adds)."""
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def redact_text(self, text: str) -> str:
        """Return ``text`` with secrets, ``key=value`` credentials and URL passwords masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\g<prefix>{MASK}", text)
        lowered = text.lower()
        if any(hint in lowered for hint in _HINTS):
            text = _KEY_VALUE.sub(_mask_value, text)
        return text

    def redact_fields(self, data: Any) -> Any:
        """Return a copy of a JSON-able structure whose sensitive-named keys hold ``"***"``.

        Done before serialising so that ``{"token": 123}`` becomes ``{"token": "***"}``
        (still valid JSON) instead of being mangled by the text pass.
        """
        if isinstance(data, dict):
            return {
                key: (MASK if isinstance(key, str) and is_sensitive_key(key) else self.redact_fields(value))
                for key, value in data.items()
            }
        if isinstance(data, list | tuple):
            return [self.redact_fields(item) for item in data]
        return data

    def redact_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """:meth:`redact_fields` for a top-level log record, in place (the hot path)."""
        for key, value in log_data.items():
            if is_sensitive_key(key):
                log_data[key] = MASK
            elif isinstance(value, dict | list | tuple):
                log_data[key] = self.redact_fields(value)
        return log_data


# The process-wide redactor used by the log formatter; add_secret() feeds it.
REDACTOR = Redactor()


def add_secret(value: str | None) -> None:
    """Never log ``value`` again (process-wide)."""
    REDACTOR.add(value)
