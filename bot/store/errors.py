"""What the spooled store refuses, and which database failures mean "unreachable" rather than "refused"."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from db.errors import StoreError


class StoreUnavailable(StoreError):
    """The database is unreachable (or the spool is not drained) and the local mirror cannot answer this read."""


# Failures of the connection, not of the statement: worth retrying later, so the write is spooled.
_CONNECTIVITY = (
    sa_exc.OperationalError,  # server down, connection refused/reset, SQLite "database is locked"
    sa_exc.InterfaceError,  # connection already closed
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # pool checkout timed out
    ConnectionError,
    TimeoutError,
)


def is_connectivity_error(exc: BaseException) -> bool:
    """True for "the database could not be reached"; False for refusals (integrity, validation, conflicts)."""
    if isinstance(exc, _CONNECTIVITY):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)
