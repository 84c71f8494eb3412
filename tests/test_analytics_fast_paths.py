"""The analytics' fast paths give what the straightforward computation gives, on SQLite and PostgreSQL.

- db.correlation: series packed by the server (binary integers on PostgreSQL), a statement built once, and
  on PostgreSQL an answer kept while the account's rollup marker stays: every answer equals the plain
  recomputation from the raw trades (tests/test_analytics_reference.py) before and after closes in order
  and out of order, and a kept answer is reused only while nothing of that account changed.
- db.daily_results.daily_summaries_plain and /api/v1/daily-summaries: exactly the records rendered.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event
from test_analytics_reference import closed_rows, expected_correlation, in_selection, load, random_book, same

import db.correlation
from db import Repository, TradeClose, TradeOpen, init_db
from db.analytics import Selection, correlation
from db.daily_results import daily_summaries, daily_summaries_plain
from db.records import DailyPerformance
from exporter.app import create_app
from exporter.render import json_response, plain

ACCOUNTS = {"2001": "5000.00", "2002": None}
SELECTIONS = [{}, {"start": date(2025, 1, 27), "end": date(2025, 2, 14)}, {"symbol": "EURUSD"},
              {"strategy": "breakout", "end": date(2025, 2, 20)}]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    name = f"fast_paths_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fast_paths')}/store.db"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(name)
    database = init_db(url)
    repo = Repository(database)
    load(repo, random_book(seed=16, accounts=ACCOUNTS, trades=30, days=30))
    yield database, repo
    database.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(name)


def assert_reference(database, repo, account: str) -> None:
    rows = closed_rows(repo, account)
    for selection in SELECTIONS:
        for by in ("symbol", "strategy"):
            names, days, matrix = expected_correlation([r for r in rows if in_selection(r, **selection)], by)
            got = correlation(database, Selection(account, **selection), by)
            assert (got.names, got.days) == (names, days), (selection, by)
            for got_line, line in zip(got.matrix, matrix, strict=True):
                for g, e in zip(got_line, line, strict=True):
                    assert (g is None) == (e is None), (selection, by)
                    if e is not None:
                        same(g, e, f"correlation {by} {selection}")


def close(repo: Repository, account: str, ticket: int, exit_time: datetime, symbol: str, profit: str) -> None:
    repo.open_trade(TradeOpen(account=account, ticket=ticket, symbol=symbol, direction="BUY", volume=Decimal("0.10"),
                              entry_price=Decimal("1.1"), entry_time=exit_time - timedelta(minutes=5),
                              stop_loss=None, take_profit=None, strategy_name="breakout", ml_confidence=None,
                              client_order_id=None, magic=1, correlation_id=None))
    assert repo.close_trade(TradeClose(account=account, ticket=ticket, exit_price=Decimal("1.1010"),
                                       exit_time=exit_time, gross_profit=Decimal(profit), commission=Decimal("-0.70"),
                                       swap=Decimal(0), profit_pips=Decimal("10.0")))


class Statements:
    """Counts the statements a database runs (a kept answer costs one: the marker)."""

    def __init__(self, database) -> None:
        self.count = 0
        self._engine = database.engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_correlation_equals_the_reference_through_closes_in_and_out_of_order(store):
    database, repo = store
    for account in ACCOUNTS:
        assert_reference(database, repo, account)
    assert_reference(database, repo, "2001")  # again: kept answers on PostgreSQL, the same figures
    newest = max(r.exit_time for r in closed_rows(repo, "2001"))
    close(repo, "2001", 7_000_001, newest + timedelta(days=1), "AUDUSD", "55.00")  # in order, a new symbol
    assert "AUDUSD" in correlation(database, Selection("2001"), "symbol").names
    assert_reference(database, repo, "2001")
    close(repo, "2001", 7_000_002, datetime(2025, 2, 3, 12, 0, tzinfo=UTC), "EURUSD", "-80.00")  # out of order
    assert_reference(database, repo, "2001")
    assert_reference(database, repo, "2002")


def test_a_kept_answer_is_reused_only_while_its_account_is_unchanged(store):
    database, repo = store
    if database.backend != "postgresql":  # no rollup marker: computed every time (the test above)
        assert db.correlation._answers_of(database) is None
        return
    everything = Selection("2002")
    first = correlation(database, everything, "symbol")
    counter = Statements(database)
    try:
        assert correlation(database, everything, "symbol") == first
        assert counter.count == 1  # the marker only
        newest = max(r.exit_time for r in closed_rows(repo, "2001"))
        close(repo, "2001", 7_000_101, newest + timedelta(days=2), "EURUSD", "12.00")  # another account
        counter.count = 0
        assert correlation(database, everything, "symbol") == first
        assert counter.count == 1
        newest = max(r.exit_time for r in closed_rows(repo, "2002"))
        close(repo, "2002", 7_000_102, newest + timedelta(days=1), "EURUSD", "-31.00")  # this account
        counter.count = 0
        again = correlation(database, everything, "symbol")
        assert counter.count == 2  # the marker, then the series
    finally:
        counter.close()
    assert again.days == first.days + 1
    assert_reference(database, repo, "2002")


def test_what_a_caller_does_with_an_answer_does_not_change_the_next(store):
    database, _ = store
    answer = correlation(database, Selection("2001"), "strategy")
    expected = [list(line) for line in answer.matrix]
    answer.matrix[0][0] = 42.0
    answer.names.append("nobody")
    again = correlation(database, Selection("2001"), "strategy")
    assert again.matrix == expected and "nobody" not in again.names


def test_daily_summaries_plain_and_the_api_are_the_records_rendered(store):
    database, repo = store
    cut = datetime(2025, 2, 9, 22, 0, tzinfo=UTC)
    for k in range(6):
        day = date(2025, 2, 10) + timedelta(days=k)
        repo.upsert_daily_performance(DailyPerformance(
            account="2001", date=day, trades=k, winners=k // 2, losers=k - k // 2,
            profit=Decimal("-1234.50") + k, pips=Decimal("-0.10") * k, win_rate=(k // 2) / k if k else 0.0,
            largest_win=Decimal("0.00") if k == 0 else Decimal("999999.99"), largest_loss=Decimal("-0.01"),
            max_drawdown=Decimal("12.30"), end_balance=None if k == 1 else Decimal("5000.07"),
            end_equity=None if k == 1 else Decimal("4999.93"),
            day_start=None if k < 2 else cut + timedelta(days=k), server_offset_seconds=None if k < 2 else 7200,
        ))
    client = create_app(database, clock=lambda: datetime(2025, 3, 1, tzinfo=UTC)).test_client()
    for start, end in ((None, None), (date(2025, 2, 11), date(2025, 2, 14)), (date(2025, 2, 13), None)):
        records = daily_summaries(database, "2001", start, end)
        assert records, (start, end)
        assert daily_summaries_plain(database, "2001", start, end) == [plain(r) for r in records]
        query = {"account": "2001", **({"from": start.isoformat()} if start else {}),
                 **({"to": end.isoformat()} if end else {})}
        response = client.get("/api/v1/daily-summaries", query_string=query)
        assert response.status_code == 200
        assert response.get_data() == json_response({"items": records}).get_data()
