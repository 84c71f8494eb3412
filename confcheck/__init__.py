"""One small vocabulary for checking settings, shared by every entry point (bot, exporter, bridge, db, stack).

Why a package of its own: the bot, the exporter and the bridge server all read settings, and the
bridge also runs alone on a Windows Python next to the terminal, with only this package and
`mt5bridge/` copied. So it imports nothing but the standard library.

Every parser takes the raw text and returns the value or raises `ValueError` with a reason that
does not repeat the value; `read()` names the setting and shows the value (never for a secret),
so every bad setting becomes one line: ``NAME: reason, got 'value'``.
"""

from confcheck.cli import OneLineParser, arg, fail
from confcheck.reading import SettingError, read, shown
from confcheck.system import bind_address, free_to_listen, native_terminal, writable_file
from confcheck.values import (
    boolean,
    choice,
    decimal,
    host,
    integer,
    label,
    names,
    number,
    optional,
    port,
    text,
    url,
)

__all__ = [
    "OneLineParser",
    "SettingError",
    "arg",
    "fail",
    "bind_address",
    "boolean",
    "choice",
    "decimal",
    "free_to_listen",
    "host",
    "integer",
    "label",
    "names",
    "native_terminal",
    "number",
    "optional",
    "port",
    "read",
    "shown",
    "text",
    "url",
    "writable_file",
]
