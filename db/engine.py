"""Engines tuned for an unattended process: durable SQLite, self-healing PostgreSQL pools.

SQLite: WAL (readers never block the writer), every commit that wrote fsynced
(a committed trade survives power loss; db.walsync: the end of a cycle's unit
is fsynced right after, off the loop thread), foreign keys on, a busy timeout, and every
transaction opened with BEGIN IMMEDIATE so two writers queue on the lock
instead of failing with "database is locked" half-way through.
PostgreSQL: a small pool that tests connections before use (the server may
have restarted), recycles them, and detects dead peers with TCP keepalives.
"""

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from db.walsync import SyncingConnection, WalSync

SQLITE_BUSY_TIMEOUT_MS = 15_000

POSTGRES_POOL = {
    "pool_size": 5,
    "max_overflow": 5,
    "pool_timeout": 30,
    "pool_recycle": 1800,
    "pool_pre_ping": True,
}
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 10,
    "application_name": "tradewatch",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def create_store_engine(url: URL) -> Engine:
    """An engine for a URL from `db.url.resolve_url`."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, connect_args=dict(POSTGRES_CONNECT_ARGS), **POSTGRES_POOL)


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _sqlite_engine(url: URL) -> Engine:
    if _is_memory(url):
        # One shared connection, or every checkout would see a different empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"factory": SyncingConnection})
        if not url.query.get("uri"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            # Known before any connection, so its owner can watch it (bot.app); the path SQLite reports
            # at the first connection is the one used (a symlinked directory may resolve differently).
            engine.wal_sync = WalSync(os.path.abspath(url.database))

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Take transaction control away from the sqlite3 module: we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            wal = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
            path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
            if wal and path and isinstance(dbapi_connection, SyncingConnection):
                # db.walsync fsyncs the WAL after each commit that wrote: FULL's guarantee, its timing ours
                sync = getattr(engine, "wal_sync", None)  # one per engine: its one database file
                if sync is None:
                    sync = engine.wal_sync = WalSync(path)  # Database.dispose flushes it
                sync.wal_path = path + "-wal"
                dbapi_connection.wal_sync = sync
                cursor.execute("PRAGMA synchronous=NORMAL")
            else:
                cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    # Every transaction opens with BEGIN IMMEDIATE, as the dialect's own begin on the DBAPI connection
    # (where pysqlite's does nothing). Why not the "begin" event's exec_driver_sql: a whole statement
    # execution (context, result) for it cost ~600 bytecodes a transaction, one per cycle (issue 16).
    # A failed BEGIN is handled as SQLAlchemy handles a failed begin: wrapped (OperationalError for a
    # busy database), a disconnect invalidated. Cursor listeners no longer see the BEGIN.
    engine.dialect.do_begin = _begin_immediate  # type: ignore[method-assign]
    return engine


def _begin_immediate(dbapi_connection) -> None:
    dbapi_connection.execute("BEGIN IMMEDIATE")
