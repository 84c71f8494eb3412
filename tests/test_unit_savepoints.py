"""Inside a unit (group commit) a refused call leaves nothing behind and the unit goes on, on both
backends: with its SAVEPOINT on PostgreSQL, without one on SQLite for the calls that write with one
statement or only read (a failed SQLite statement undoes itself), which is what makes them cheap."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event
from test_db_repository import ACCOUNT, T0, a_deal, an_intent, an_outcome, count

from db import (
    AccountSnapshot,
    DealConflict,
    DuplicateClientOrderId,
    PositionSnapshot,
    Repository,
    UnknownOrder,
    init_db,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    handle = init_db(url)
    yield handle
    handle.dispose()


def position(ticket: int, direction: str = "BUY") -> PositionSnapshot:
    return PositionSnapshot(ticket, "EURUSD", direction, Decimal("0.10"), Decimal("1.08455"), Decimal("1.08600"),
                            None, None, Decimal("14.50"), Decimal("0.00"))


def test_refused_calls_in_a_unit_leave_nothing_and_the_unit_goes_on(database):
    repo = Repository(database)
    savepoints: list[str] = []
    event.listen(database.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: savepoints.append(statement) if "SAVEPOINT" in statement else None)
    commits = database.commits
    with repo.unit():
        repo.record_order_intent(an_intent())
        with pytest.raises(DuplicateClientOrderId):
            repo.record_order_intent(an_intent(volume=Decimal("0.20")))
        with pytest.raises(UnknownOrder):
            repo.record_order_outcome(an_outcome(client_order_id="tw-none"))
        repo.record_order_outcome(an_outcome())
        assert repo.record_deal(a_deal())
        with pytest.raises(DealConflict):
            repo.record_deal(a_deal(price=Decimal("1.09000")))
        repo.record_position_snapshots(ACCOUNT, T0, [position(9001), position(9002)])
        with pytest.raises(Exception):  # noqa: B017 - the CHECK on direction refuses the second row
            repo.record_position_snapshots(ACCOUNT, T0 + timedelta(seconds=5), [position(9001), position(9002, "UP")])
        repo.record_account_snapshot(AccountSnapshot(ACCOUNT, T0, *[Decimal("100")] * 3, Decimal("0"),
                                                     Decimal("100"), None, 0))
        assert repo.get_order("tw-0001").status == "filled"
    assert database.commits == commits + 1  # the unit's one commit: nothing was rolled back
    assert repo.get_order("tw-0001").volume == Decimal("0.10") and repo.get_order("tw-none") is None
    assert repo.deals_since(ACCOUNT, T0)[0].price == a_deal().price
    assert count(database, "position_snapshots") == 2  # the refused snapshot's good row undone with it
    assert count(database, "account_snapshots") == 1
    if database.backend == "sqlite":
        assert savepoints == []  # every call above writes with one statement, only reads, or undoes its own writes
    else:
        assert savepoints  # a failed statement aborts a PostgreSQL transaction: each call in its own


def test_many_position_snapshots_keep_their_savepoint_on_sqlite(database):
    repo = Repository(database)
    many = [position(ticket) for ticket in range(1, 602)]  # over one multi-row INSERT's bound
    with repo.unit():
        with pytest.raises(Exception):  # noqa: B017 - the CHECK on direction refuses the last row
            repo.record_position_snapshots(ACCOUNT, T0, [*many, replace(position(9999), direction="UP")])
        repo.record_position_snapshots(ACCOUNT, T0, many[:3])
    assert count(database, "position_snapshots") == 3
