"""A deal is stored, then the cycle fails before the trade it makes is written: the trade is not lost.

The chaos suite found it (a lost trade row on the demo profile): a position closed at its stop
while the bot replayed queued orders during a Postgres restart; the deal sync stored (spooled) the
deals, then `get_trade` could not be answered and the cycle failed. The next cycle fetched those
deals as already recorded, so their position was never settled again and its trade never stored.
Now the position stays unsettled until it is, within the run (a failed cycle) and across runs
(a bot killed between the two writes: the next run finds the deal without its trade)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.engine.books import Books
from bot.gateway import Deal
from bot.store.errors import StoreUnavailable
from db import Repository, init_db
from mt5bridge import constants as mt5

ACCOUNT, MAGIC = "5001", 7
NOW = datetime(2026, 1, 20, 12, tzinfo=UTC)


def _deal(ticket, position, entry, minutes_ago, profit="0.00", order=None, type_=mt5.DEAL_TYPE_BUY):
    return Deal(ticket=ticket, order=order or ticket, position_id=position, symbol="EURUSD", type=type_,
                entry=entry, volume=Decimal("0.10"), price=Decimal("1.10000"), profit=Decimal(profit),
                commission=Decimal("0.00"), swap=Decimal("0.00"), magic=MAGIC, comment="tw-x", reason=0,
                time=NOW - timedelta(minutes=minutes_ago))


class History:
    """The broker's deal history (a closed position 50, then position 60 opened and closed)."""

    def __init__(self, deals):
        self.all = deals

    def deals(self, since, until):
        return [d for d in self.all if since <= d.time <= until]

    def deals_for_position(self, position_id):
        return [d for d in self.all if d.position_id == position_id]


class Unanswerable:
    """The repository, with the method `name` unanswerable its first `failures` calls (the store away)."""

    def __init__(self, repo, failures, name="get_trade"):
        self._repo, self.failures, self._name = repo, failures, name

    def __getattr__(self, name):
        method = getattr(self._repo, name)
        if name != self._name:
            return method

        def away(*args, **kwargs):
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable(f"store unavailable and {name} is not known locally")
            return method(*args, **kwargs)

        return away


def FailingTradeReads(repo, failures):  # noqa: N802 - reads as the store it stands for
    """`get_trade` unanswerable `failures` times: the store gone mid-cycle."""
    return Unanswerable(repo, failures, "get_trade")


def StoreAwayAtStart(repo, failures):  # noqa: N802
    """`positions_without_trade` unanswerable `failures` times: the database down at start."""
    return Unanswerable(repo, failures, "positions_without_trade")


@pytest.fixture()
def repo(tmp_path):
    return Repository(init_db(f"sqlite:///{tmp_path}/books.db"))


CLOSED_50 = [_deal(1, 50, mt5.DEAL_ENTRY_IN, 30), _deal(2, 50, mt5.DEAL_ENTRY_OUT, 10, profit="12.00",
                                                          type_=mt5.DEAL_TYPE_SELL)]


def test_a_cycle_failing_after_the_deals_were_stored_settles_their_position_next_cycle(repo):
    store = FailingTradeReads(repo, failures=2)
    books = Books(History(CLOSED_50), store, ACCOUNT, MAGIC, {"EURUSD": 5})
    with pytest.raises(StoreUnavailable):
        books.sync(NOW, 7, set())
    assert repo.known_deal_tickets(ACCOUNT) == {1, 2}  # the deals are stored ...
    assert repo.get_trade(ACCOUNT, 50) is None  # ... their trade is not
    with pytest.raises(StoreUnavailable):
        books.sync(NOW + timedelta(seconds=10), 7, set())  # still down: still unsettled
    assert books.sync(NOW + timedelta(seconds=20), 7, set()) == (1, 1)
    trade = repo.get_trade(ACCOUNT, 50)
    assert trade is not None and trade.is_closed and trade.profit == Decimal("12.00")
    assert books.sync(NOW + timedelta(seconds=30), 7, set()) == (0, 0)  # settled once, not again


def test_a_run_killed_between_the_deal_and_its_trade_leaves_the_next_run_to_book_it(repo):
    open_60 = _deal(3, 60, mt5.DEAL_ENTRY_IN, 5)
    books = Books(History([*CLOSED_50, open_60]), FailingTradeReads(repo, failures=1), ACCOUNT, MAGIC,
                  {"EURUSD": 5})
    with pytest.raises(StoreUnavailable):
        books.sync(NOW, 7, {60})
    assert repo.get_trade(ACCOUNT, 50) is None  # the run dies here: only the deals are stored
    assert repo.positions_without_trade(ACCOUNT, NOW - timedelta(days=7)) == [50, 60]

    fresh = Books(History([*CLOSED_50, open_60]), repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    assert fresh.sync(NOW + timedelta(minutes=1), 7, {60}) == (2, 1)
    assert repo.get_trade(ACCOUNT, 50).is_closed and not repo.get_trade(ACCOUNT, 60).is_closed
    assert repo.positions_without_trade(ACCOUNT, NOW - timedelta(days=7)) == []


def test_positions_without_trade_knows_a_netting_reversal_by_its_order_ticket(repo):
    # A reversal (INOUT) opens its trade under the reversing order's ticket, not the position id.
    deals = [_deal(1, 70, mt5.DEAL_ENTRY_IN, 30),
             _deal(2, 70, mt5.DEAL_ENTRY_INOUT, 20, order=900, type_=mt5.DEAL_TYPE_SELL)]
    deals[1] = Deal(**{**deals[1].__dict__, "volume": Decimal("0.30")})
    books = Books(History(deals), repo, ACCOUNT, MAGIC, {"EURUSD": 5})
    books.sync(NOW, 7, {70})
    assert {t for t in (50, 70, 900) if repo.get_trade(ACCOUNT, t)} == {70, 900}
    assert repo.positions_without_trade(ACCOUNT, NOW - timedelta(days=7)) == []
    with repo._db.session() as session:  # the reversal's trade lost (a run killed in between)
        from db.models import TradeModel
        session.query(TradeModel).filter(TradeModel.ticket == 900).delete()
    assert repo.positions_without_trade(ACCOUNT, NOW - timedelta(days=7)) == [70]


def test_a_database_away_at_start_defers_the_look_for_unbooked_deals_without_failing_the_sync(repo):
    open_60 = _deal(3, 60, mt5.DEAL_ENTRY_IN, 5)
    books = Books(History([*CLOSED_50, open_60]), FailingTradeReads(repo, failures=1), ACCOUNT, MAGIC,
                  {"EURUSD": 5})
    with pytest.raises(StoreUnavailable):
        books.sync(NOW, 7, {60})  # a run killed after storing the deals, before their trades
    fresh = Books(History([*CLOSED_50, open_60]), StoreAwayAtStart(repo, failures=2), ACCOUNT, MAGIC, {"EURUSD": 5})
    assert fresh.sync(NOW + timedelta(minutes=1), 7, {60}) == (0, 0)  # the store cannot say yet: trading goes on
    assert fresh.sync(NOW + timedelta(minutes=2), 7, {60}) == (0, 0)
    assert fresh.sync(NOW + timedelta(minutes=3), 7, {60}) == (2, 1)  # it answers: both positions booked
    assert repo.positions_without_trade(ACCOUNT, NOW - timedelta(days=7)) == []
