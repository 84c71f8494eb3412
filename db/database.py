"""The store handle: one engine, one place where sessions begin and end, and `init_db`.

`init_db()` is what a process calls at start-up: it resolves the URL
(argument, $DATABASE_URL, or the SQLite default), brings the schema to the
newest revision, and returns the handle the `Repository` is built on.

Group commit (`unit()`): a trading cycle makes a dozen small writes, and one
transaction (one fsync on SQLite) for each of them was most of a cycle's cost.
Inside `with database.unit():` every `session()` of the same thread shares one
transaction, each call in its own SAVEPOINT (a refused statement undoes only
that call, also on PostgreSQL where an error would otherwise abort the whole
transaction; on SQLite the repository leaves it out for calls that write with
one statement or only read, since a failed SQLite statement undoes itself); `commit()` makes it durable at the points that need it (before
an order leaves the process, at the end of the cycle).  `commits` counts real
commits (a SQLAlchemy "commit" event listener), which is how the benches and
tests see "one commit per cycle".
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import migrate, walsync
from db.engine import create_store_engine
from db.url import redact_url, resolve_url

log = logging.getLogger(__name__)


class Database:
    """An engine plus the session factory; safe to share between threads."""

    def __init__(self, url: str | URL | None = None) -> None:
        self.url = resolve_url(url)
        self.engine: Engine = create_store_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._local = threading.local()  # this thread's unit of work (group commit), if one is open
        # SQLite on disk: a thread's units keep one connection between them (see _unit_session).
        self._keep = self.backend == "sqlite" and self.url.database not in (None, "", ":memory:")
        self._kept: dict[int, Connection] = {}  # thread ident -> its kept connection
        self._kept_lock = threading.Lock()
        self._commits = 0
        self._commits_lock = threading.Lock()
        event.listen(self.engine, "commit", self._count_commit)

    @property
    def commits(self) -> int:
        """Transactions committed through this handle so far, by any thread (reads' included)."""
        return self._commits

    def _count_commit(self, _connection: object) -> None:
        with self._commits_lock:
            self._commits += 1

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.url.get_backend_name()

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)})"

    @contextmanager
    def session(self, savepoint: bool = True) -> Iterator[Session]:
        """A session in a transaction: committed if the block succeeds, rolled back if it raises.

        Inside this thread's `unit()` it is the unit's transaction instead, the block in a SAVEPOINT
        (released if it succeeds, rolled back if it raises) and nothing committed until `commit()`.
        `savepoint=False` leaves the SAVEPOINT out (two statements less) for a caller that undoes its
        own writes if it raises, on a backend where a failed statement undoes itself (SQLite).
        """
        if not getattr(self._local, "active", False):
            with self._sessions.begin() as session:
                yield session
            return
        session = self._local.session
        if session is None:
            session = self._local.session = self._unit_session()
        if not savepoint:
            try:
                yield session
            finally:
                session.expunge_all()
            return
        savepoint = session.begin_nested()
        try:
            yield session
        except BaseException:
            with suppress(Exception):  # a dead connection: the caller rolls the unit back
                savepoint.rollback()
            raise
        else:
            savepoint.commit()
        finally:
            # Core writes bypass the identity map: a later read in the same transaction must not
            # be answered from objects loaded before them.
            session.expunge_all()

    def connection(self, savepoint: bool = True) -> AbstractContextManager[Connection]:
        """`with database.connection(savepoint):` `session(savepoint)`'s connection, for a call that
        only runs Core statements on it.

        In this thread's unit without a SAVEPOINT it is the unit's connection, asked of the session
        once per unit transaction: `Session.connection()` (its transaction state checks) cost ~500
        bytecodes a call, and a cycle's signals, snapshots and counters asked for it four times
        (issue 16); its context is the one object kept with it, not a generator per call. Nothing is
        expunged after the block: a Core statement loads no objects, and every session block leaves
        the identity map empty.
        """
        local = self._local
        if savepoint or not getattr(local, "active", False):
            return self._session_connection(savepoint)
        session = local.session
        if session is None:
            session = local.session = self._unit_session()
        kept = local.unit_connection  # set by unit(), dropped with its session
        if kept is not None and kept.session is session and not session.in_nested_transaction():
            return kept
        # begins the unit's transaction if none is open yet
        kept = local.unit_connection = _UnitConnection(session, session.connection())
        return kept

    @contextmanager
    def _session_connection(self, savepoint: bool) -> Iterator[Connection]:
        with self.session(savepoint) as session:
            yield session.connection()

    @contextmanager
    def unit(self) -> Iterator[None]:
        """Group commit: this thread's sessions share one transaction until `commit()` (and at the end).

        Re-entrant (an inner unit joins the outer one). A block that raises still commits what
        its calls stored, as separate transactions would have; if that commit fails too the
        unit is rolled back and the block's own error is the one raised.
        """
        if getattr(self._local, "active", False):
            yield
            return
        self._local.active, self._local.session, self._local.unit_connection = True, None, None
        try:
            yield
        except BaseException:
            try:
                self.commit()
            except Exception as exc:  # noqa: BLE001 - the block's error is the one to report
                log.warning("unit of work not committed after an error: %s", type(exc).__name__)
            raise
        else:
            self.commit()
        finally:
            self._local.active = False

    def _unit_session(self) -> Session:
        """The session of a unit's transaction: on SQLite on disk, on this thread's kept connection.

        Why: taking a connection from the pool for every cycle and giving it back (the pool's
        checkout, its reset-on-return rollback, a new Connection) cost ~100 us of a ~3 ms cycle
        (issue 16). SQLite connections are cheap to keep and the database is local, so a thread
        that opens units keeps one; its transactions still begin (BEGIN IMMEDIATE) and commit
        as before. A connection whose commit or rollback failed is closed, never reused; those of
        threads that ended are closed when the next one is made, and every one at `dispose`.
        PostgreSQL always goes through the pool (pre-ping: the server may have restarted).
        """
        if not self._keep:
            return self._sessions()
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self._local.connection = self._keep_connection()
        return Session(bind=connection, expire_on_commit=False)

    def _keep_connection(self) -> Connection:
        alive = {thread.ident for thread in threading.enumerate()}
        with self._kept_lock:
            ident = threading.get_ident()
            stale = [self._kept.pop(i) for i in list(self._kept) if i not in alive or i == ident]
        for connection in stale:
            with suppress(Exception):
                connection.close()
        connection = self.engine.connect()
        with self._kept_lock:
            self._kept[ident] = connection
        return connection

    def _drop_kept(self) -> None:
        """This thread's kept connection failed a commit or rollback: closed, the next unit takes a new one."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            return
        self._local.connection = None
        with self._kept_lock:
            if self._kept.get(threading.get_ident()) is connection:
                del self._kept[threading.get_ident()]
        with suppress(Exception):
            connection.close()

    @property
    def in_unit(self) -> bool:
        """True while this thread is inside `unit()`."""
        return bool(getattr(self._local, "active", False))

    def commit(self, durable: bool = True) -> None:
        """Commit this thread's unit now (a no-op outside a unit or when nothing ran in it).

        The unit goes on: the next session starts a new transaction. A failed commit is rolled
        back and raised; the caller decides what happens to the writes it held (bot.store.spool).
        `durable=False` (the end of a cycle, nothing about to leave the process): on SQLite the
        fsync runs right after, off this thread (db.walsync); PostgreSQL commits as always.
        """
        session = getattr(self._local, "session", None)
        if session is None:
            return
        self._local.session = self._local.unit_connection = None
        try:
            with nullcontext() if durable else walsync.deferred():
                session.commit()
        except BaseException:
            with suppress(Exception):
                session.rollback()
            self._drop_kept()
            raise
        finally:
            session.close()

    def rollback(self) -> None:
        """Drop this thread's open unit transaction (after its connection failed)."""
        session = getattr(self._local, "session", None)
        if session is None:
            return
        self._local.session = self._local.unit_connection = None
        with suppress(Exception):
            session.rollback()
        with suppress(Exception):
            session.close()
        self._drop_kept()

    def ping(self) -> bool:
        """True if the database answers and accepts a write: a no-op update of alembic_version, rolled back.

        Needs the migrated schema (init_db); the reason for a False is logged, never the password.
        """
        try:
            with self.engine.connect() as connection, connection.begin() as transaction:
                connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
                transaction.rollback()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            log.warning("database %s is not usable: %s", redact_url(self.url), reason)
            return False
        return True

    def dispose(self) -> None:
        """Close pooled connections (at shutdown, or in tests before dropping a database), every commit on disk."""
        sync = getattr(self.engine, "wal_sync", None)
        if sync is not None:
            sync.close()  # flushed, its thread stopped
        with self._kept_lock:
            kept, self._kept = list(self._kept.values()), {}
        for connection in kept:
            with suppress(Exception):
                connection.close()
        self.engine.dispose()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()


class _UnitConnection:
    """A unit session's connection as the context of `Database.connection` (entering it does nothing)."""

    __slots__ = ("session", "connection")

    def __init__(self, session: Session, connection: Connection) -> None:
        self.session, self.connection = session, connection

    def __enter__(self) -> Connection:
        return self.connection

    def __exit__(self, *_exc: object) -> None:
        return None


def init_db(url: str | URL | None = None) -> Database:
    """Open the store and migrate it to the newest schema revision."""
    database = Database(url)
    try:
        migrate.upgrade(database.engine, "head")
    except BaseException:
        database.dispose()
        raise
    log.info("database %s at schema revision %s", redact_url(database.url), migrate.head_revision())
    return database
