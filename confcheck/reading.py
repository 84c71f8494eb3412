"""Naming the setting and showing its value: how a parser's reason becomes the one error line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
SHOWN_CHARS = 40
_USERINFO = re.compile(r"(//)[^/@\s]*@")


class SettingError(ValueError):
    """A setting is missing or invalid. The message is one line: ``NAME: reason[, got 'value']``.

    `setting` is the variable or option name (e.g. ``METRICS_PORT``, ``--port``), for callers and
    tests that need it without parsing the message.
    """

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting if setting is not None else message.split(":", 1)[0]


def shown(raw: str) -> str:
    """The value as it goes into an error line: quoted and escaped (one line), shortened, no URL credentials."""
    value = _USERINFO.sub(r"\1***@", raw.strip())
    if len(value) > SHOWN_CHARS:
        value = f"{value[:SHOWN_CHARS]}... ({len(raw.strip())} characters)"
    return repr(value)


def read(setting: str, raw: str, parse: Callable[[str], T], *, secret: bool = False) -> T:
    """`parse(raw)`, or a SettingError naming `setting`; a secret's value is never shown."""
    try:
        return parse(raw)
    except ValueError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "is not valid"
        detail = "" if secret or not raw.strip() else f", got {shown(raw)}"
        raise SettingError(f"{setting}: {reason}{detail}", setting) from None
