"""Bearer tokens of the exporter: the alert sink's (required to write) and the API's (optional, to read).

Why two tokens: the sink token lets a holder write alert rows (only Alertmanager has it,
through `http_config.authorization.credentials_file`); the API token only lets a holder read
analytics, so a dashboard or a script never needs the power to forge or resolve alerts.
Tokens come from a file (`*_FILE`, e.g. a compose secret) or the environment, are compared
in constant time (hmac.compare_digest), and never appear in a log line or an answer.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from pathlib import Path

MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 512
# What may follow "Bearer " in an HTTP header (RFC 6750 b64token), so a token always fits one.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class TokenError(ValueError):
    """A token setting is unusable; the message names the variable, never the value."""


def load_token(env: Mapping[str, str], name: str) -> str | None:
    """The token named `name`, from the file `$name_FILE` or the variable `$name`; None when neither is set."""
    file_name, raw = (env.get(f"{name}_FILE") or "").strip(), env.get(name) or ""
    if file_name and raw:
        raise TokenError(f"set {name} or {name}_FILE, not both")
    source = f"{name}_FILE" if file_name else name
    if file_name:
        try:
            raw = Path(file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"{name}_FILE: cannot read {file_name!r} ({exc.__class__.__name__})") from None
    token = raw.strip()
    if not token:
        if file_name:
            raise TokenError(f"{name}_FILE: {file_name!r} is empty")
        return None
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        raise TokenError(f"{source} must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} characters of "
                         "A-Z a-z 0-9 - . _ ~ + / = (e.g. `openssl rand -hex 32`)")
    return token


def bearer(header: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header, None for anything else."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison (the time taken does not depend on where the strings differ)."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))
