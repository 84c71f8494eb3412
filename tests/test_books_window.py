"""The deal sync's steady state: the broker's count of the window's deals, not the deals themselves.

Each cycle used to fetch (and the gateway judge and convert) the whole hour of overlap to find no
new deal.  Now the window is fetched only when history_deals_total differs from what the last
fetch returned within it, and in full at least every FULL_FETCH; these tests hold the books to
"never miss a deal" on each path, with a broker history that counts its calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.engine.books import FULL_FETCH, Books
from bot.gateway import Deal
from db import Repository, init_db
from mt5bridge import constants as mt5

ACCOUNT, MAGIC = "5002", 7
NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)


def _deal(ticket, position, entry, at, type_=mt5.DEAL_TYPE_BUY):
    return Deal(ticket=ticket, order=ticket, position_id=position, symbol="EURUSD", type=type_, entry=entry,
                volume=Decimal("0.10"), price=Decimal("1.10000"), profit=Decimal("0.00"),
                commission=Decimal("0.00"), swap=Decimal("0.00"), magic=MAGIC, comment="tw-x", reason=0, time=at)


class CountingHistory:
    """A broker history that can count a window (`counts`: False for a gateway that cannot)."""

    def __init__(self, deals, counts=True):
        self.all = list(deals)
        self.fetches = self.probes = 0
        if not counts:
            self.deals_total = lambda since, until: None

    def deals(self, since, until):
        self.fetches += 1
        return [d for d in self.all if since <= d.time <= until]

    def deals_total(self, since, until):
        self.probes += 1
        return sum(since <= d.time <= until for d in self.all)

    def deals_for_position(self, position_id):
        return [d for d in self.all if d.position_id == position_id]


@pytest.fixture()
def repo(tmp_path):
    return Repository(init_db(f"sqlite:///{tmp_path}/books.db"))


def _stored(repo) -> set[int]:
    return repo.known_deal_tickets(ACCOUNT)


def test_nothing_new_is_not_fetched_and_a_new_deal_is_at_the_next_cycle(repo):
    history = CountingHistory([_deal(1, 50, mt5.DEAL_ENTRY_IN, NOW - timedelta(minutes=10))])
    books = Books(history, repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    assert books.sync(NOW, 7, {50}) == (1, 0)
    for seconds in (5, 10, 15):  # the steady state: the count matches, the window is not fetched
        assert books.sync(NOW + timedelta(seconds=seconds), 7, {50}) == (0, 0)
    assert (history.fetches, history.probes) == (1, 3)

    history.all.append(_deal(2, 50, mt5.DEAL_ENTRY_OUT, NOW + timedelta(seconds=18), type_=mt5.DEAL_TYPE_SELL))
    assert books.sync(NOW + timedelta(seconds=20), 7, set()) == (0, 1)  # the count differs: fetched
    assert history.fetches == 2 and _stored(repo) == {1, 2}
    assert repo.get_trade(ACCOUNT, 50).is_closed


def test_a_known_deal_leaving_the_window_while_a_new_one_arrives_is_still_fetched(repo):
    # Deal 1 falls out of the window (older than its start) just as deal 3 comes in: the broker
    # counts 1 deal as the last fetch did, but that fetch saw none within the new window.
    first, second, third = NOW - timedelta(seconds=30), NOW, NOW + timedelta(seconds=10)
    history = CountingHistory([_deal(1, 50, mt5.DEAL_ENTRY_IN, NOW - timedelta(hours=1, seconds=10))])
    books = Books(history, repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    books.sync(first, 7, {50})
    books.sync(second, 7, {50})  # its window starts an hour before `first`: deal 1 is in it
    assert history.fetches == 1
    history.all.append(_deal(3, 60, mt5.DEAL_ENTRY_IN, third - timedelta(seconds=1)))
    books.sync(third, 7, {50, 60})  # its window starts an hour before `second`: deal 1 is not
    assert third - first < FULL_FETCH and history.fetches == 2 and 3 in _stored(repo)


def test_a_new_deal_hidden_by_a_vanished_one_is_fetched_within_full_fetch(repo):
    # The count cannot tell one deal gone from the broker's history and another come: the window
    # is fetched in full at least every FULL_FETCH (well inside the hour of overlap) anyway.
    history = CountingHistory([_deal(1, 50, mt5.DEAL_ENTRY_IN, NOW - timedelta(minutes=10))])
    books = Books(history, repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    books.sync(NOW, 7, {50})
    history.all = [_deal(4, 70, mt5.DEAL_ENTRY_IN, NOW + timedelta(seconds=4))]  # as many deals as before
    books.sync(NOW + timedelta(seconds=5), 7, {50, 70})
    assert 4 not in _stored(repo) and history.fetches == 1  # not seen yet ...
    books.sync(NOW + FULL_FETCH, 7, {50, 70})
    assert 4 in _stored(repo) and history.fetches == 2  # ... but by the full fetch
    assert not repo.get_trade(ACCOUNT, 70).is_closed


def test_without_a_count_or_after_the_clock_went_back_the_window_is_fetched(repo):
    history = CountingHistory([_deal(1, 50, mt5.DEAL_ENTRY_IN, NOW - timedelta(minutes=10))], counts=False)
    books = Books(history, repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    for seconds in (0, 5, 10):
        books.sync(NOW + timedelta(seconds=seconds), 7, {50})
    assert history.fetches == 3

    counted = CountingHistory(history.all)
    books = Books(counted, repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    books.sync(NOW, 7, {50})
    books.sync(NOW - timedelta(seconds=30), 7, {50})  # broker time went back: no count is trusted
    assert counted.fetches == 2 and counted.probes == 0
