"""Checks that ask the machine: can we bind this address, listen on this port, write this file, run native MT5.

They run at start-up, before anything is built, so an impossible setting stops the process with
one line instead of a traceback half-way through (a busy port after the migrations, an unwritable
spool at the first outage).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import socket
import sys
import tempfile
from pathlib import Path

from confcheck.values import clean, host

WILDCARDS = ("0.0.0.0", "::")


def bind_address(raw: str) -> str:
    """A listening address: not empty (write 0.0.0.0 to listen everywhere), resolvable, of this machine."""
    value = clean(raw, 253)
    if not value:
        raise ValueError("is empty, which would listen on every interface; write 0.0.0.0 to mean that")
    host(value)
    try:
        infos = socket.getaddrinfo(value.strip("[]"), None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise ValueError("cannot be resolved to an address") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address[0], 0, *address[2:]))
        except OSError as exc:
            where = "is" if address[0] == value.strip("[]") else f"resolves to {address[0]}, which is"
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"{where} not an address of this machine (cannot bind it)") from None
            raise ValueError(f"cannot be bound ({exc.strerror or exc})") from None
    return value


def free_to_listen(bind_host: str, port: int) -> None:
    """Raise ValueError if `port` on `bind_host` is taken (0 means any free port: always fine).

    The probe binds the way the servers do (SO_REUSEADDR on POSIX), so a port in TIME_WAIT after
    a restart counts as free while one with a live listener does not.
    """
    if port == 0:
        return
    infos = socket.getaddrinfo(bind_host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
                raise ValueError(f"port {port} on {bind_host} is already in use") from None
            raise ValueError(f"cannot listen on {bind_host}:{port}: {exc.strerror or exc}") from None


def writable_file(raw: str) -> Path:
    """A file we will create or rewrite: its folder exists and takes a new file; it is not a folder.

    The folder must already exist: a configured path in a missing folder is far more often a typo
    or an unmounted volume than a wish to create folders.
    """
    value = clean(raw, 1024)
    if not value:
        raise ValueError("must not be empty")
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError("is a folder; expected a file path")
    folder = path.parent
    if not folder.exists():
        raise ValueError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tradewatch-probe-"):
            pass
    except OSError as exc:
        raise ValueError(f"folder {str(folder)!r} is not writable ({exc.strerror or exc})") from None
    if path.exists():
        try:
            with open(path, "r+b"):
                pass
        except OSError as exc:
            raise ValueError(f"is not writable ({exc.strerror or exc})") from None
    return path


def native_terminal(platform: str | None = None) -> None:
    """Raise ValueError unless the MetaTrader5 package can run here (Windows, package importable)."""
    platform = sys.platform if platform is None else platform
    if platform != "win32":
        raise ValueError(
            f"native needs Windows with the MetaTrader5 package (this is {platform}); "
            "use MT5_MODE=bridge with `python -m mt5bridge.server` next to the terminal"
        )
    try:
        found = importlib.util.find_spec("MetaTrader5") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ValueError("native needs the MetaTrader5 package, which is not importable: pip install MetaTrader5")
