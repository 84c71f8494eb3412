"""db/mt5board.py: a changed account's new deals are added to its kept walk, and the figures are always
those of its whole history walked afresh (db.mt5report.mt5_figures), whatever order the deals arrive in."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

import db.mt5board
from db import Repository, init_db
from db.mt5report import Mt5Fold, account_deals, mt5_figures
from db.reading import reading
from tests.mt5_history import ACCOUNT, EXPECTED_MT5, deals


def test_a_walk_asked_for_its_figures_midway_goes_on_as_if_it_had_not_been():
    history = deals()
    fold = Mt5Fold()
    for k, deal in enumerate(history):
        fold.add(deal)
        assert fold.figures() == mt5_figures(history[:k + 1]), k  # every prefix, the walk asked each time
    assert fold.figures().as_dict() == EXPECTED_MT5


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store, and the `since` of every account_deals the board makes (None: a whole history)."""
    database = init_db(f"sqlite:///{tmp_path}/store.db")
    reads: list[tuple[str, object]] = []

    def recorded(connection, account, since=None, until=None):
        reads.append((account, since))
        return account_deals(connection, account, since, until)

    monkeypatch.setattr(db.mt5board, "account_deals", recorded)
    yield database, Repository(database), reads
    database.dispose()


def whole(database, account: str):
    with reading(database) as connection:
        return mt5_figures(account_deals(connection, account))


def test_deals_in_order_are_added_to_the_kept_walk(store):
    database, repo, reads = store
    history, other = deals(), deals(account="other")
    board = db.mt5board.Mt5Board(database)
    for record in history[:5] + other:
        repo.record_deal(record)
    assert board.figures() == {ACCOUNT: whole(database, ACCOUNT), "other": whole(database, "other")}
    assert sorted(reads) == [(ACCOUNT, None), ("other", None)]
    for record in history[5:]:  # one new deal of one account between scrapes
        reads.clear()
        repo.record_deal(record)
        figures = board.figures()
        assert figures[ACCOUNT] == whole(database, ACCOUNT)
        assert figures["other"] == whole(database, "other")
        assert reads == [(ACCOUNT, history[history.index(record) - 1].time)]  # its newest deals only
    assert board.figures()[ACCOUNT].as_dict() == EXPECTED_MT5
    reads.clear()
    board.figures()
    assert reads == []  # nothing changed: nothing read


def test_an_older_deal_arriving_later_walks_the_whole_history_again(store):
    database, repo, reads = store
    history = deals()
    board = db.mt5board.Mt5Board(database)
    late = history[3]
    for record in history:
        if record is not late:
            repo.record_deal(record)
    assert board.figures()[ACCOUNT] == whole(database, ACCOUNT)
    reads.clear()
    repo.record_deal(late)
    assert board.figures()[ACCOUNT].as_dict() == EXPECTED_MT5
    assert reads[-1] == (ACCOUNT, None)
    # one more at the newest deal's very time, with a smaller ticket: older in the terminal's order
    newest = history[-1]
    repo.record_deal(dataclasses.replace(newest, ticket=newest.ticket - 10_000, comment="same second"))
    reads.clear()
    assert board.figures()[ACCOUNT] == whole(database, ACCOUNT)
    assert reads[-1] == (ACCOUNT, None)
    repo.record_deal(dataclasses.replace(newest, ticket=newest.ticket + 1, time=newest.time + timedelta(seconds=1)))
    reads.clear()
    assert board.figures()[ACCOUNT] == whole(database, ACCOUNT)
    assert reads == [(ACCOUNT, newest.time)]
