"""The control token: one random secret in a file only the bot's user can read.

Why a file and not a setting: the ctl client and the bot run as the same user on the same host,
so a 0600 file is the whole key exchange (like a database's .pgpass), it never travels through an
environment dump or a compose file, and the bot makes it at its first start.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

TOKEN_BYTES = 32


class TokenFileError(Exception):
    """The token file is missing, unreadable, empty or readable by others."""


def token_file(configured: str, database_url: object) -> str:
    """CONTROL_TOKEN_FILE, else next to a SQLite store, else data/control_token (as the bot's other files)."""
    if configured:
        return configured
    url = str(database_url or "")
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return f"{url[len('sqlite:///'):]}.control_token"
    return "data/control_token"


def ensure_token(path: str) -> str:
    """The token in `path`, made (0600, never overwritten) if the file does not exist yet."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return read_token(path)  # another process made it first
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
    return read_token(path)


def read_token(path: str) -> str:
    target = Path(path)
    try:
        mode = target.stat().st_mode
        text = target.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"control token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(f"control token file {path} is readable by other users (chmod 600 it)")
    if len(text) < 16:
        raise TokenFileError(f"control token file {path} holds no token")
    return text


def matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison: the answer's timing says nothing about how much of a guess was right."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def endpoint_file(token_path: str) -> str:
    """Where the running bot writes its control URL (CONTROL_PORT=0 picks a free port each start)."""
    return f"{token_path}.endpoint"


def write_endpoint(token_path: str, url: str) -> None:
    path = endpoint_file(token_path)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="ascii") as handle:
        handle.write(url + "\n")
    os.replace(temporary, path)


def read_endpoint(token_path: str) -> str:
    try:
        return Path(endpoint_file(token_path)).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"no control endpoint file {endpoint_file(token_path)}: "
                             f"{getattr(exc, 'strerror', None) or exc}") from None
