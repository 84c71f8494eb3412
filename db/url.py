"""Which database to use, and how to name it in logs without its password.

SQLite at `data/tradewatch.db` (relative to the working directory) unless
`DATABASE_URL` says otherwise; `postgresql://` and `postgres://` URLs are
pinned to psycopg2, the driver we ship (SQLAlchemy 2.1 would pick psycopg 3).

A PostgreSQL URL without a password takes it from the file named by
$DATABASE_PASSWORD_FILE (a compose secret): the password then lives in a file readable by
the service, not in an environment variable for the container's whole life.
"""

import os
from collections.abc import Mapping

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_URL = "sqlite:///data/tradewatch.db"
PASSWORD_FILE_VARIABLE = "DATABASE_PASSWORD_FILE"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
_SECRET_QUERY_KEYS = {"password", "sslpassword"}


def redact_url(url: str | URL) -> str:
    """The URL as text with its password (also one given as a query parameter) replaced by ***."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return "<unparseable database URL>"
    secrets = {key: "***" for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS}
    if secrets:
        parsed = parsed.update_query_dict(secrets)
    return parsed.render_as_string(hide_password=True)


def resolve_url(url: str | URL | None = None) -> URL:
    """The URL to connect to: `url`, else $DATABASE_URL (if non-empty), else the default SQLite file."""
    raw = url if url is not None else (os.environ.get("DATABASE_URL") or DEFAULT_URL)
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(f"not a valid database URL: {redact_url(raw)}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"unsupported database backend {backend!r} in {redact_url(parsed)}: use sqlite or postgresql"
        )
    if backend == "postgresql" and parsed.password is None:
        password = file_password()
        if password is not None:
            parsed = parsed.set(password=password)
    return parsed


def file_password(environ: Mapping[str, str] | None = None) -> str | None:
    """The password in $DATABASE_PASSWORD_FILE (trailing newline stripped), None when it is not set."""
    path = (os.environ if environ is None else environ).get(PASSWORD_FILE_VARIABLE, "").strip()
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            password = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{PASSWORD_FILE_VARIABLE}: cannot read {path!r} ({exc.__class__.__name__})") from None
    if not password:
        raise ValueError(f"{PASSWORD_FILE_VARIABLE}: {path!r} is empty")
    return password


def checked_url(raw: str | URL) -> URL:
    """`resolve_url(raw)` plus what start-up needs to know before connecting (one-line ValueErrors).

    A server URL's host must be a host name or address and its port ASCII digits 1-65535 (SQLAlchemy
    takes "١٢" as 12 and 99999 as is); a SQLite file's folder must exist and be writable. The
    password is never part of a message.
    """
    from urllib.parse import urlsplit

    import confcheck

    confcheck.text(4096)(str(raw))  # no control characters, bounded
    parsed = resolve_url(raw)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:") and not parsed.query.get("uri"):
            try:
                confcheck.writable_file(parsed.database)
            except ValueError as exc:
                raise ValueError(f"SQLite file {parsed.database!r}: {exc}") from None
        return parsed
    hostport = urlsplit(str(raw).strip()).netloc.rpartition("@")[2]
    port_text = hostport.rpartition("]")[2] if "]" in hostport else hostport
    if ":" in port_text:
        try:
            confcheck.port()(port_text.rpartition(":")[2])
        except ValueError:
            raise ValueError("the database port must be a number from 1 to 65535 in ASCII digits") from None
    if parsed.host:
        for name in parsed.host.split(","):  # libpq accepts a comma-separated host list
            try:
                confcheck.host(name)
            except ValueError:
                raise ValueError("the database host must be a host name or an IP address") from None
    return parsed
