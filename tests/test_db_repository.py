"""The repository on SQLite and on a real PostgreSQL: idempotent writes, conflicts, exact money, UTC times."""

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import text

from db import (
    AccountSnapshot,
    DailyPerformance,
    DealConflict,
    DealRecord,
    DuplicateClientOrderId,
    DuplicateSignal,
    OrderIntent,
    OrderOutcome,
    OutcomeConflict,
    PositionSnapshot,
    QuarantineRecord,
    Repository,
    SignalRecord,
    TradeClose,
    TradeConflict,
    TradeOpen,
    UnknownOrder,
    UnknownSignal,
    UnknownTrade,
    init_db,
)

ACCOUNT = "5012345"
T0 = datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path}/store.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    handle = init_db(url)
    yield handle
    handle.dispose()


@pytest.fixture
def repo(database):
    return Repository(database)


def count(database, table: str) -> int:
    with database.engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def a_signal(**changes) -> SignalRecord:
    base = SignalRecord(
        account=ACCOUNT,
        time=T0,
        cycle_id="cyc-1",
        correlation_id="corr-1",
        symbol="EURUSD",
        strategy="ma_cross",
        signal="BUY",
        confidence=0.731,
        reason="fast MA crossed above slow MA",
        price=Decimal("1.084530"),
    )
    return replace(base, **changes)


def an_intent(**changes) -> OrderIntent:
    base = OrderIntent(
        client_order_id="tw-0001",
        account=ACCOUNT,
        correlation_id="corr-1",
        signal_id=None,
        symbol="EURUSD",
        strategy="ma_cross",
        side="BUY",
        purpose="open",
        position_ticket=None,
        volume=Decimal("0.10"),
        requested_price=Decimal("1.08453"),
        sl=Decimal("1.08000"),
        tp=Decimal("1.09500"),
        deviation=20,
        magic=240001,
        comment="tw-0001",
        created_at=T0,
    )
    return replace(base, **changes)


def an_outcome(**changes) -> OrderOutcome:
    base = OrderOutcome(
        client_order_id="tw-0001",
        status="filled",
        retcode=10009,
        broker_order=7001,
        broker_deal=8001,
        fill_price=Decimal("1.08455"),
        fill_volume=Decimal("0.10"),
        message="done",
        resolved_at=T0 + timedelta(seconds=1),
    )
    return replace(base, **changes)


def a_deal(**changes) -> DealRecord:
    base = DealRecord(
        account=ACCOUNT,
        ticket=8001,
        order_ticket=7001,
        position_id=9001,
        symbol="EURUSD",
        type=0,
        entry=0,
        volume=Decimal("0.10"),
        price=Decimal("1.08455"),
        profit=Decimal("0.00"),
        commission=Decimal("-0.35"),
        swap=Decimal("0.00"),
        magic=240001,
        comment="tw-0001",
        reason=3,
        time=T0,
    )
    return replace(base, **changes)


def a_trade(**changes) -> TradeOpen:
    base = TradeOpen(
        account=ACCOUNT,
        ticket=9001,
        symbol="EURUSD",
        direction="BUY",
        volume=Decimal("0.10"),
        entry_price=Decimal("1.08455"),
        entry_time=T0,
        stop_loss=Decimal("1.08000"),
        take_profit=Decimal("1.09500"),
        strategy_name="ma_cross",
        ml_confidence=0.731,
        client_order_id="tw-0001",
        magic=240001,
        correlation_id="corr-1",
    )
    return replace(base, **changes)


def a_close(**changes) -> TradeClose:
    base = TradeClose(
        account=ACCOUNT,
        ticket=9001,
        exit_price=Decimal("1.09500"),
        exit_time=T0 + timedelta(hours=3),
        gross_profit=Decimal("104.50"),
        commission=Decimal("-0.70"),
        swap=Decimal("-1.23"),
        profit_pips=Decimal("104.5"),
    )
    return replace(base, **changes)


# -- signals ---------------------------------------------------------------------------------


def test_record_signal_is_idempotent_and_returns_the_same_id(repo, database):
    first = repo.record_signal(a_signal())
    assert repo.record_signal(a_signal()) == first
    assert count(database, "signals") == 1
    other = repo.record_signal(a_signal(strategy="rsi"))
    assert other != first
    assert count(database, "signals") == 2


def test_same_signal_key_with_different_content_is_refused(repo):
    repo.record_signal(a_signal())
    with pytest.raises(DuplicateSignal, match="confidence"):
        repo.record_signal(a_signal(confidence=0.2))


def test_mark_signal_executed_survives_a_repeated_record(repo, database):
    signal_id = repo.record_signal(a_signal())
    repo.mark_signal_executed(signal_id)
    repo.mark_signal_executed(signal_id)
    assert repo.record_signal(a_signal()) == signal_id
    with database.engine.connect() as connection:
        executed = connection.execute(
            text("SELECT executed FROM signals WHERE id = :i"), {"i": signal_id}
        ).scalar_one()
    assert bool(executed) is True
    with pytest.raises(UnknownSignal):
        repo.mark_signal_executed(signal_id + 1000)


# -- orders ----------------------------------------------------------------------------------


def test_order_intent_round_trips_and_repeats_are_no_ops(repo, database):
    signal_id = repo.record_signal(a_signal())
    intent = an_intent(signal_id=signal_id, created_at=T0.astimezone(PLUS_TWO))
    repo.record_order_intent(intent)
    repo.record_order_intent(intent)
    assert count(database, "orders") == 1
    row = repo.get_order("tw-0001")
    assert row.status == "pending" and row.signal_id == signal_id
    assert row.volume == Decimal("0.10") and row.requested_price == Decimal("1.084530")
    assert row.sl == Decimal("1.08") and row.tp == Decimal("1.095")
    assert row.created_at == T0 and row.created_at.tzinfo is UTC
    assert row.resolved_at is None and row.retcode is None and row.message == ""
    assert repo.get_order("nope") is None


def test_reused_client_order_id_with_other_content_is_refused(repo, database):
    repo.record_order_intent(an_intent())
    with pytest.raises(DuplicateClientOrderId, match="volume"):
        repo.record_order_intent(an_intent(volume=Decimal("0.20")))
    with pytest.raises(DuplicateClientOrderId, match="side"):
        repo.record_order_intent(an_intent(side="SELL"))
    assert count(database, "orders") == 1
    assert repo.get_order("tw-0001").volume == Decimal("0.10")


def test_unknown_outcome_can_become_final_then_never_changes(repo):
    repo.record_order_intent(an_intent())
    unknown = an_outcome(
        status="unknown",
        retcode=10012,
        broker_order=None,
        broker_deal=None,
        fill_price=None,
        fill_volume=None,
        message="timeout",
    )
    repo.record_order_outcome(unknown)
    repo.record_order_outcome(unknown)
    assert repo.get_order("tw-0001").status == "unknown"
    assert [o.client_order_id for o in repo.orders_by_status(ACCOUNT, "unknown")] == ["tw-0001"]

    repo.record_order_outcome(an_outcome())
    row = repo.get_order("tw-0001")
    assert (row.status, row.retcode, row.broker_deal, row.fill_price) == (
        "filled",
        10009,
        8001,
        Decimal("1.08455"),
    )
    assert row.resolved_at == T0 + timedelta(seconds=1)

    # The same outcome learned again (later, worded differently) changes nothing.
    repo.record_order_outcome(an_outcome(message="found in history", resolved_at=T0 + timedelta(minutes=5)))
    assert repo.get_order("tw-0001").message == "done"

    for contradiction in (
        an_outcome(
            status="rejected",
            retcode=10019,
            broker_order=None,
            broker_deal=None,
            fill_price=None,
            fill_volume=None,
        ),
        an_outcome(fill_price=Decimal("1.08460")),
        an_outcome(status="unknown"),
    ):
        with pytest.raises(OutcomeConflict, match="already filled"):
            repo.record_order_outcome(contradiction)
    assert repo.get_order("tw-0001").status == "filled"
    assert repo.orders_by_status(ACCOUNT, "unknown") == []
    assert len(repo.orders_by_status(ACCOUNT, "filled")) == 1


def test_outcome_for_an_unrecorded_order_is_refused(repo):
    with pytest.raises(UnknownOrder):
        repo.record_order_outcome(an_outcome(client_order_id="never-sent"))
    with pytest.raises(ValueError, match="status"):
        repo.orders_by_status(ACCOUNT, "lost")


def test_racing_final_outcomes_have_exactly_one_winner(repo):
    repo.record_order_intent(an_intent())
    outcomes = [an_outcome(broker_deal=8000 + i) for i in range(6)]
    barrier = threading.Barrier(len(outcomes))
    results: list[str] = []

    def settle(outcome):
        barrier.wait()
        try:
            repo.record_order_outcome(outcome)
            results.append("won")
        except OutcomeConflict:
            results.append("conflict")

    threads = [threading.Thread(target=settle, args=(o,)) for o in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == ["conflict"] * 5 + ["won"]
    assert repo.get_order("tw-0001").broker_deal in {o.broker_deal for o in outcomes}


# -- deals -----------------------------------------------------------------------------------


def test_record_deal_inserts_once_and_never_overwrites(repo, database):
    assert repo.record_deal(a_deal()) is True
    assert repo.record_deal(a_deal()) is False
    assert count(database, "deals") == 1
    # MT5 deals never change: the same ticket with other content is refused, the stored one kept.
    with pytest.raises(DealConflict, match="comment"):
        repo.record_deal(a_deal(comment="tw-0001 [sl]"))
    assert count(database, "deals") == 1
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT comment FROM deals")).scalar_one() == a_deal().comment
    # The same ticket on another account is another deal.
    assert repo.record_deal(a_deal(account="5099999")) is True


def a_quarantined(**changes) -> QuarantineRecord:
    values = dict(account=ACCOUNT, record_kind="deal", record_key="ticket 9001", reject_reason="not_finite",
                  reject_field="profit", detail="profit is nan", raw='{"profit": "nan", "ticket": 9001}',
                  fingerprint="ab" * 16, broker_time=T0, received_at=T0 + timedelta(seconds=1))
    values.update(changes)
    return QuarantineRecord(**values)


def test_quarantine_keeps_each_refused_record_once(repo):
    assert repo.record_quarantine(a_quarantined()) is True
    # The same record met again (next cycle, replayed from the spool, after a restart): one row.
    assert repo.record_quarantine(a_quarantined(received_at=T0 + timedelta(hours=1))) is False
    assert repo.record_quarantine(a_quarantined(fingerprint="cd" * 16, reject_reason="time_window")) is True
    assert repo.record_quarantine(a_quarantined(account="5099999")) is True
    stored = repo.quarantined(ACCOUNT)
    assert [(q.reject_reason, q.raw) for q in stored] == [("not_finite", '{"profit": "nan", "ticket": 9001}'),
                                                           ("time_window", '{"profit": "nan", "ticket": 9001}')]
    assert stored[0].broker_time == T0 and stored[0].received_at == T0 + timedelta(seconds=1)
    with pytest.raises(ValueError, match="reject_reason"):
        a_quarantined(reject_reason="x" * 33)


def test_known_deal_tickets_and_last_deal_time(repo):
    assert repo.last_deal_time(ACCOUNT) is None
    assert repo.known_deal_tickets(ACCOUNT) == set()
    for i in range(4):
        repo.record_deal(a_deal(ticket=8001 + i, time=(T0 + timedelta(hours=i)).astimezone(PLUS_TWO)))
    repo.record_deal(a_deal(account="other", ticket=1, time=T0 + timedelta(days=3)))
    assert repo.known_deal_tickets(ACCOUNT) == {8001, 8002, 8003, 8004}
    assert repo.known_deal_tickets(ACCOUNT, since=T0 + timedelta(hours=2)) == {8003, 8004}
    last = repo.last_deal_time(ACCOUNT)
    assert last == T0 + timedelta(hours=3) and last.tzinfo is UTC


# -- trades ----------------------------------------------------------------------------------


def test_open_and_close_trade_with_net_profit(repo, database):
    assert repo.open_trade(a_trade()) is True
    assert repo.open_trade(a_trade()) is False
    assert count(database, "trades") == 1
    assert [t.ticket for t in repo.open_trades(ACCOUNT)] == [9001]

    assert repo.close_trade(a_close()) is True
    trade = repo.get_trade(ACCOUNT, 9001)
    assert trade.is_closed
    assert trade.gross_profit == Decimal("104.50")
    assert trade.profit == Decimal("102.57")  # 104.50 - 0.70 - 1.23
    assert (trade.commission, trade.swap, trade.profit_pips) == (
        Decimal("-0.70"),
        Decimal("-1.23"),
        Decimal("104.50"),
    )
    assert trade.exit_price == Decimal("1.095") and trade.exit_time == T0 + timedelta(hours=3)
    assert repo.open_trades(ACCOUNT) == []

    assert repo.close_trade(a_close()) is False  # repeat: no-op
    assert repo.get_trade(ACCOUNT, 9001) == trade
    with pytest.raises(TradeConflict, match="gross_profit"):
        repo.close_trade(a_close(gross_profit=Decimal("99.00")))
    assert count(database, "trades") == 1


def test_closing_a_trade_the_store_never_saw_is_refused(repo):
    with pytest.raises(UnknownTrade, match="9001"):
        repo.close_trade(a_close())
    assert repo.get_trade(ACCOUNT, 9001) is None


def test_trades_by_correlation_and_closed_between(repo):
    repo.open_trade(a_trade(ticket=1, correlation_id="corr-a"))
    repo.open_trade(a_trade(ticket=2, correlation_id="corr-a", entry_time=T0 + timedelta(minutes=1)))
    repo.open_trade(a_trade(ticket=3, correlation_id="corr-b"))
    assert [t.ticket for t in repo.trades_by_correlation("corr-a")] == [1, 2]

    day = datetime(2025, 3, 14, tzinfo=UTC)
    repo.close_trade(a_close(ticket=1, exit_time=day + timedelta(hours=23, minutes=59)))
    repo.close_trade(a_close(ticket=2, exit_time=day + timedelta(days=1)))  # exactly at the end: next day
    closed = repo.closed_trades_between(ACCOUNT, day, day + timedelta(days=1))
    assert [t.ticket for t in closed] == [1]
    assert [
        t.ticket
        for t in repo.closed_trades_between(ACCOUNT, day + timedelta(days=1), day + timedelta(days=2))
    ] == [2]
    assert [t.ticket for t in repo.open_trades(ACCOUNT)] == [3]
    with pytest.raises(ValueError, match="timezone-aware"):
        repo.closed_trades_between(ACCOUNT, day.replace(tzinfo=None), day + timedelta(days=1))


# -- money and time --------------------------------------------------------------------------


def test_decimals_round_trip_to_the_cent(repo):
    amounts = [
        Decimal("0.01"),
        Decimal("-0.01"),
        Decimal("0.10"),
        Decimal("1234567890123.45"),
        Decimal("-987654.32"),
    ]
    for i, amount in enumerate(amounts):
        moment = T0 + timedelta(minutes=i)
        repo.record_account_snapshot(
            AccountSnapshot(ACCOUNT, moment, amount, amount, amount, Decimal("0"), amount, None, i)
        )
        stored = repo.last_account_snapshot(ACCOUNT)
        assert (stored.balance, stored.equity, stored.free_margin) == (amount, amount, amount)
        assert str(stored.balance) == str(amount)
    # Sums of cents stay exact (0.1 + 0.2 is 0.3, not 0.30000000000000004).
    repo.open_trade(a_trade())
    repo.close_trade(a_close(gross_profit=Decimal("0.10"), commission=Decimal("0.20"), swap=Decimal("0.00")))
    assert repo.get_trade(ACCOUNT, 9001).profit == Decimal("0.30")


def test_values_beyond_the_scale_round_half_up_on_both_backends(repo, database):
    repo.record_deal(
        a_deal(price=Decimal("1.0845555"), profit=Decimal("2.005"), commission=Decimal("-2.005"))
    )
    repo.record_deal(a_deal(ticket=2, price=Decimal("1.0845554")))
    with database.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT ticket, price, profit, commission FROM deals ORDER BY ticket")
        ).all()
    assert rows[0][0] == 2 and Decimal(str(rows[0][1])) == Decimal("1.084555")
    first = [d for d in rows if d[0] == 8001][0]
    assert Decimal(str(first[1])) == Decimal("1.084556")
    assert Decimal(str(first[2])) == Decimal("2.01") and Decimal(str(first[3])) == Decimal("-2.01")


def test_aware_datetimes_round_trip_as_utc(repo):
    moment = datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=PLUS_TWO)
    repo.record_account_snapshot(
        AccountSnapshot(
            ACCOUNT,
            moment,
            Decimal("100"),
            Decimal("100"),
            Decimal("0"),
            Decimal("0"),
            Decimal("100"),
            Decimal("0"),
            0,
        )
    )
    stored = repo.last_account_snapshot(ACCOUNT)
    assert stored.time == moment
    assert stored.time.tzinfo is UTC and stored.time.hour == 21
    # Ordering is by instant, not by the wall-clock text.
    repo.record_account_snapshot(
        replace(stored, time=datetime(2025, 6, 30, 22, 0, tzinfo=UTC), balance=Decimal("7"))
    )
    assert repo.last_account_snapshot(ACCOUNT).balance == Decimal("7")


# -- snapshots and daily results -------------------------------------------------------------


def test_snapshots_are_idempotent(repo, database):
    positions = [
        PositionSnapshot(
            9001,
            "EURUSD",
            "BUY",
            Decimal("0.10"),
            Decimal("1.08455"),
            Decimal("1.08600"),
            Decimal("1.08"),
            None,
            Decimal("14.50"),
            Decimal("-0.12"),
        ),
        PositionSnapshot(
            9002,
            "GBPUSD",
            "SELL",
            Decimal("0.20"),
            Decimal("1.26000"),
            Decimal("1.25900"),
            None,
            None,
            Decimal("20.00"),
            Decimal("0.00"),
        ),
    ]
    repo.record_position_snapshots(ACCOUNT, T0, positions)
    repo.record_position_snapshots(ACCOUNT, T0, positions)
    repo.record_position_snapshots(ACCOUNT, T0, [])
    assert count(database, "position_snapshots") == 2
    repo.record_position_snapshots(ACCOUNT, T0 + timedelta(seconds=10), positions[:1])
    assert count(database, "position_snapshots") == 3

    snapshot = AccountSnapshot(
        ACCOUNT,
        T0,
        Decimal("10000.00"),
        Decimal("10034.50"),
        Decimal("34.50"),
        Decimal("43.38"),
        Decimal("9991.12"),
        Decimal("23131.81"),
        2,
    )
    repo.record_account_snapshot(snapshot)
    repo.record_account_snapshot(snapshot)
    assert count(database, "account_snapshots") == 1
    assert repo.last_account_snapshot(ACCOUNT) == snapshot
    assert repo.last_account_snapshot("nobody") is None


def test_daily_performance_upsert_replaces_the_day(repo, database):
    day = DailyPerformance(
        ACCOUNT,
        date(2025, 3, 14),
        3,
        2,
        1,
        Decimal("55.20"),
        Decimal("61.5"),
        2 / 3,
        Decimal("40.00"),
        Decimal("-12.30"),
        Decimal("12.30"),
        Decimal("10055.20"),
        None,
    )
    repo.upsert_daily_performance(day)
    repo.upsert_daily_performance(day)
    assert count(database, "daily_performance") == 1
    repo.upsert_daily_performance(replace(day, trades=4, losers=2, profit=Decimal("45.20"), win_rate=0.5))
    assert count(database, "daily_performance") == 1
    with database.engine.connect() as connection:
        trades, profit, win_rate = connection.execute(
            text("SELECT trades, profit, win_rate FROM daily_performance")
        ).one()
    assert (trades, Decimal(str(profit)), win_rate) == (4, Decimal("45.20"), 0.5)
    repo.upsert_daily_performance(replace(day, date=date(2025, 3, 15)))
    assert count(database, "daily_performance") == 2


def test_ping(repo):
    assert repo.ping() is True
