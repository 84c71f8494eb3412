"""A thread's units of work on SQLite keep one connection between them (db.database._unit_session).

Issue 16: a connection from the pool for every cycle's unit (checkout, reset-on-return rollback,
a new Connection) cost ~100 us a cycle. What must hold: each unit is still its own transaction and
commit, a connection that failed is never used again, and no connection is left checked out
once its thread is gone (at the latest when another one is kept) or the database is disposed.
"""

import threading

import pytest
from sqlalchemy import event, text

from db.database import Database


@pytest.fixture
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'kept.db'}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (a INTEGER)"))
    yield db
    db.dispose()


def _unit_insert(db, value):
    with db.unit():
        with db.session(savepoint=False) as session:
            session.execute(text("INSERT INTO t VALUES (:a)"), {"a": value})
            return session.connection()


def _stored(db):
    with db.engine.connect() as other:  # a connection of its own: sees only what was committed
        return [row[0] for row in other.execute(text("SELECT a FROM t ORDER BY a"))]


def test_units_of_one_thread_share_a_connection_and_each_still_commits(database):
    before = database.commits
    first = _unit_insert(database, 1)
    assert _stored(database) == [1]
    second = _unit_insert(database, 2)
    assert second is first and not first.closed
    assert _stored(database) == [1, 2]
    assert database.commits - before == 2
    assert not first.in_transaction()  # nothing held open between units: other writers are not blocked


def test_a_connection_whose_commit_failed_is_closed_and_never_reused(database):
    kept = _unit_insert(database, 1)

    def refuse(_connection):
        raise RuntimeError("disk full")

    event.listen(database.engine, "commit", refuse)
    with pytest.raises(RuntimeError, match="disk full"), database.unit():
        with database.session(savepoint=False) as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
    event.remove(database.engine, "commit", refuse)
    assert kept.closed
    assert _stored(database) == [1]  # the failed unit left nothing
    fresh = _unit_insert(database, 3)
    assert fresh is not kept and _stored(database) == [1, 3]


def test_rollback_drops_the_connection(database):
    kept = _unit_insert(database, 1)
    with database.unit():
        with database.session(savepoint=False) as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
        database.rollback()
    assert kept.closed and _stored(database) == [1]


def test_connections_of_ended_threads_and_all_at_dispose_go_back(database):
    pool = database.engine.pool
    kept = []
    for value in (1, 2, 3):
        worker = threading.Thread(target=lambda v=value: kept.append(_unit_insert(database, v)))
        worker.start()
        worker.join(30)
    assert len(kept) == 3
    # each ended thread's connection was closed when the next thread kept one: one left out
    assert [c.closed for c in kept] == [True, True, False]
    assert pool.checkedout() == 1
    mine = _unit_insert(database, 4)
    assert kept[2].closed and not mine.closed and pool.checkedout() == 1
    database.dispose()
    assert mine.closed and pool.checkedout() == 0
    assert _stored(database) == [1, 2, 3, 4]


def test_memory_units_do_not_keep_a_connection():
    memory = Database("sqlite://")
    try:
        with memory.session() as session:
            session.execute(text("CREATE TABLE t (a INTEGER)"))
        _unit_insert(memory, 1)
        assert memory._kept == {}
    finally:
        memory.dispose()
