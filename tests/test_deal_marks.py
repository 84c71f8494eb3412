"""db/deal_marks.py and every production writer of deals: after any write, each account's mark (deal count,
newest deal's time) is what a fresh count of the deals table says, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text

from db import DealConflict, Repository, deal_marks, init_db
from db.history_store import store_window
from db.models import DealMarkModel, DealModel
from db.report_import import ParsedReport, store_report
from tests.mt5_history import ACCOUNT, deals


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    """One migrated store per backend for the module (a fresh PostgreSQL database costs a second)."""
    if request.param == "sqlite":
        handle = init_db(f"sqlite:///{tmp_path_factory.mktemp('marks')}/store.db")
        yield handle
        handle.dispose()
        return
    cluster, name = request.getfixturevalue("pg_cluster"), f"deal_marks_{uuid.uuid4().hex[:12]}"
    handle = init_db(cluster.create_database(name))
    yield handle
    handle.dispose()
    cluster.drop_database(name)


@pytest.fixture
def database(store):
    """The module's store, without deals or marks."""
    with store.engine.begin() as connection:
        connection.execute(delete(DealModel.__table__))
        connection.execute(delete(DealMarkModel.__table__))
    return store


def counted(database) -> list[tuple]:
    """Every account's (account, deals, newest) counted from the deals table itself."""
    table = DealModel.__table__
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(table.c.account, func.count(), func.max(table.c.time)).group_by(table.c.account)
            .order_by(table.c.account))]


def kept(database) -> list[tuple]:
    with database.engine.connect() as connection:
        return deal_marks.marks(connection)


def test_added_sums_counts_and_keeps_the_later_time(database):
    t0 = datetime(2025, 1, 2, 8, 0, tzinfo=UTC)
    with database.engine.begin() as connection:
        deal_marks.added(connection, "a", 2, t0)
        deal_marks.added(connection, "a", 1, t0 - timedelta(days=1))  # an older deal: newest stays
        deal_marks.added(connection, "b", 1, t0 + timedelta(microseconds=1))
        deal_marks.added(connection, "b", 0, t0 + timedelta(days=9))  # nothing inserted: nothing moves
        deal_marks.added(connection, "b", 3, t0 + timedelta(seconds=1))
    assert kept(database) == [("a", 3, t0), ("b", 4, t0 + timedelta(seconds=1))]


def test_remark_and_recount_are_a_fresh_count(database):
    repo = Repository(database)
    for record in deals() + deals(account="other"):
        repo.record_deal(record)
    with database.engine.begin() as connection:
        deal_marks.added(connection, ACCOUNT, 5, datetime(2030, 1, 1, tzinfo=UTC))  # made wrong on purpose
        deal_marks.added(connection, "ghost", 1, datetime(2030, 1, 1, tzinfo=UTC))  # an account without deals
        deal_marks.remark(connection, ACCOUNT)
        deal_marks.remark(connection, "ghost")
    assert kept(database) == counted(database)
    with database.engine.begin() as connection:
        deal_marks.added(connection, "other", 7, datetime(2030, 1, 1, tzinfo=UTC))
        deal_marks.recount(connection)
    assert kept(database) == counted(database) != []


def test_record_deal_marks_a_new_deal_once(database):
    repo = Repository(database)
    history = deals()
    late = history.pop(3)
    for record in history:
        assert repo.record_deal(record) is True
        assert repo.record_deal(record) is False  # a repeat inserts nothing: the mark stays
    assert repo.record_deal(late) is True  # older than the newest: counted, newest unchanged
    with pytest.raises(DealConflict):
        repo.record_deal(dataclasses.replace(late, price=late.price + 1))
    repo.record_deal(dataclasses.replace(history[0], account="other"))
    assert kept(database) == counted(database)
    assert kept(database)[0] == (ACCOUNT, len(history) + 1, history[-1].time)


def test_a_deal_whose_mark_fails_is_not_left_stored_in_a_unit(database, monkeypatch):
    """In a unit on SQLite record_deal has no SAVEPOINT: a failed mark must take its deal out again."""
    repo = Repository(database)
    first, second = deals()[:2]

    def broken(*_args):
        raise RuntimeError("mark lost")

    with repo.unit():
        repo.record_deal(first)
        monkeypatch.setattr(deal_marks, "added", broken)
        with pytest.raises(RuntimeError, match="mark lost"):
            repo.record_deal(second)
        monkeypatch.undo()
        assert repo.record_deal(dataclasses.replace(second, ticket=99)) is True  # the unit goes on
    assert [d.ticket for d in repo.deals_since(ACCOUNT, first.time)] == [first.ticket, 99]
    assert kept(database) == counted(database)


def test_a_history_window_marks_what_it_inserted(database):
    history = deals()
    Repository(database).record_deal(history[2])  # stored before the import: not counted twice
    conflicting = dataclasses.replace(history[4], price=history[4].price + 1)
    Repository(database).record_deal(conflicting)  # kept as stored, not inserted
    window = history[:10] + [history[7]]  # a ticket twice in one window: inserted once
    stored = store_window(database, ACCOUNT, window, [], [])
    assert stored.conflicts == (history[4].ticket,)
    assert stored.deals == 8  # ten, less the one stored before and the conflict; the repeat went in once
    assert kept(database) == counted(database) == [(ACCOUNT, 10, history[9].time)]
    store_window(database, ACCOUNT, history[5:], [], [])
    assert kept(database) == counted(database) == [(ACCOUNT, len(history), history[-1].time)]


def test_a_report_import_marks_what_it_inserted(database):
    history = deals()
    repo = Repository(database)
    for record in history[10:]:  # recorded by the bot, newer than the report's first part
        repo.record_deal(record)
    result = store_report(database, ParsedReport(login=ACCOUNT, deals=history[:15]))
    assert (result.stored, result.known) == (10, 5)
    assert kept(database) == counted(database) == [(ACCOUNT, len(history), history[-1].time)]
    store_report(database, ParsedReport(login=ACCOUNT, deals=history))  # all known: nothing moves
    assert kept(database) == counted(database)
    twice = dataclasses.replace(history[-1], ticket=1, time=history[-1].time + timedelta(hours=1))
    store_report(database, ParsedReport(login=ACCOUNT, deals=[twice, dataclasses.replace(twice, comment="again")]))
    assert kept(database) == counted(database) == [(ACCOUNT, len(history) + 1, twice.time)]


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)  # SQLite: one writer at a time
def test_remark_counts_a_deal_another_writer_was_adding_meanwhile(database):
    """PostgreSQL, READ COMMITTED: a writer adds an account's first deal and mark (uncommitted) while a
    bulk writer remarks the account; the remark waits for it and counts its deal too."""
    first, second = deals()[:2]
    table = DealModel.__table__
    other = database.engine.connect()
    other.begin()
    other.execute(table.insert().values(**dataclasses.asdict(first)))
    deal_marks.added(other, ACCOUNT, 1, first.time)
    failures: list[BaseException] = []

    def bulk() -> None:
        try:
            with database.engine.begin() as connection:
                connection.execute(table.insert().values(**dataclasses.asdict(second)))
                deal_marks.remark(connection, ACCOUNT)
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=bulk)
    thread.start()
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
    # Autocommit: pg_stat_activity is read once per transaction.
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        deadline = time.monotonic() + 30
        while not watcher.execute(waiting).scalar_one() and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition (the remark blocked on the mark row), not racing it
        assert watcher.execute(waiting).scalar_one() == 1, "the remark did not wait for the other writer"
    other.commit()
    other.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and failures == []
    assert kept(database) == counted(database) == [(ACCOUNT, 2, second.time)]
