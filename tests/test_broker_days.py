"""Broker days (db/brokerday.py): daily figures cut at the trade server's midnight, on SQLite and PostgreSQL.

With the server at GMT+2 a trade closing at 21:30 UTC belongs to that server date and one closing
at 22:30 UTC to the next; the rollups, the daily report, the exporter's daily profit and the risk
guard must all agree on that, and fall back to UTC days (said as such) while no offset is known.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.engine.riskguard import RiskGuard
from bot.gateway import broker_day_of
from bot.gateway.factory import make_gateway
from bot.reports import daily_report, format_daily, last_day_with_data
from db import AccountSnapshot, DealRecord, Repository, TradeClose, TradeOpen, init_db, rollups
from db.brokerday import BrokerDay, OffsetHistory, broker_date, day_start
from db.daily_results import daily_performance, daily_summaries
from db.models import ANY, trade_rollups
from db.mt5report import account_figures
from db.scoreboard import scoreboard
from mt5bridge.sim import SimTerminal
from tests.test_riskguard import MAGIC, account, limits

ACCOUNT = "7001"
GMT2 = 7200
EVENING = datetime(2026, 3, 1, 21, 30, tzinfo=UTC)  # server 23:30 on 2026-03-01
LATE = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)  # server 00:30 on 2026-03-02


@pytest.fixture
def database(url):
    handle = init_db(url)
    yield handle
    handle.dispose()


def trade(repo: Repository, ticket: int, exit_time: datetime, profit: str, reason: str | None = None) -> None:
    repo.open_trade(TradeOpen(account=ACCOUNT, ticket=ticket, symbol="EURUSD", direction="BUY", volume=Decimal("0.10"),
                              entry_price=Decimal("1.10000"), entry_time=exit_time - timedelta(hours=1), stop_loss=None,
                              take_profit=None, strategy_name="s", ml_confidence=None, client_order_id=None, magic=1,
                              correlation_id=None))
    repo.close_trade(TradeClose(account=ACCOUNT, ticket=ticket, exit_price=Decimal("1.10100"), exit_time=exit_time,
                                gross_profit=Decimal(profit), commission=Decimal(0), swap=Decimal(0),
                                profit_pips=Decimal(10), close_reason=reason))


def snapshot(repo: Repository, moment: datetime, balance: str) -> None:
    repo.record_account_snapshot(AccountSnapshot(account=ACCOUNT, time=moment, balance=Decimal(balance),
                                                 equity=Decimal(balance), profit=Decimal(0), margin=Decimal(0),
                                                 free_margin=Decimal(balance), margin_level=None, open_positions=0))


def day_profits(database) -> dict[date, int]:
    with database.engine.connect() as connection:
        rows = connection.execute(select(trade_rollups.c.period_start, trade_rollups.c.profit_cents).where(
            trade_rollups.c.account == ACCOUNT, trade_rollups.c.span == "day", trade_rollups.c.strategy == ANY,
            trade_rollups.c.symbol == ANY))
        return dict(rows.all())


def verified(database) -> list[str]:
    with database.engine.connect() as connection:
        return rollups.verify(connection, ACCOUNT)


def test_the_definition():
    assert broker_date(EVENING, GMT2) == date(2026, 3, 1) and broker_date(LATE, GMT2) == date(2026, 3, 2)
    assert broker_date(LATE, None) == date(2026, 3, 1)  # unknown: the UTC date
    assert day_start(date(2026, 3, 2), GMT2) == datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    assert BrokerDay(date(2026, 3, 2), GMT2).label() == "broker day 2026-03-02 (server GMT+2, starts 2026-03-01 22:00 UTC)"
    assert BrokerDay(date(2026, 3, 2), -16200).label().startswith("broker day 2026-03-02 (server GMT-4:30, starts 2026-03-02 04:30")
    assert "broker clock unknown" in BrokerDay(date(2026, 3, 2), None).label()
    history = OffsetHistory([(datetime(2026, 3, 29, 1, tzinfo=UTC), 10800), (datetime(2026, 1, 1, tzinfo=UTC), GMT2)])
    assert history.at(datetime(2025, 6, 1, tzinfo=UTC)) == GMT2  # the first offset holds for older history
    assert history.at(datetime(2026, 4, 1, tzinfo=UTC)) == 10800  # after the daylight-saving change
    assert history.day(date(2026, 4, 1)).start == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)


def test_rollups_daily_report_and_scoreboard_cut_days_at_the_servers_midnight(database):
    repo = Repository(database)
    snapshot(repo, EVENING - timedelta(hours=3), "10000.00")
    trade(repo, 1, EVENING, "12.00")
    trade(repo, 2, LATE, "-5.00", reason="stop_out")
    assert day_profits(database) == {date(2026, 3, 1): 700}  # no offset known yet: one UTC day
    first = daily_performance(database, ACCOUNT, date(2026, 3, 1))
    assert (first.trades, first.day_start, first.server_offset_seconds) == (2, None, None)
    assert "UTC day 2026-03-01 (broker clock unknown" in format_daily(first)

    assert repo.record_broker_offset(ACCOUNT, LATE + timedelta(days=1), GMT2) is True  # rebuilds on broker days
    assert repo.record_broker_offset(ACCOUNT, LATE + timedelta(days=2), GMT2) is False  # unchanged: nothing written
    assert day_profits(database) == {date(2026, 3, 1): 1200, date(2026, 3, 2): -500}
    assert verified(database) == []
    snapshot(repo, LATE + timedelta(minutes=5), "10007.00")  # in broker day 2026-03-02, still 2026-03-01 in UTC

    late_day = daily_report(database, repo, ACCOUNT, date(2026, 3, 2))
    assert (late_day.trades, late_day.profit, late_day.end_balance) == (1, Decimal("-5.00"), Decimal("10007.00"))
    assert late_day.day_start == datetime(2026, 3, 1, 22, 0, tzinfo=UTC) and late_day.server_offset_seconds == GMT2
    assert "day           broker day 2026-03-02 (server GMT+2, starts 2026-03-01 22:00 UTC)" in format_daily(late_day)
    (stored,) = daily_summaries(database, ACCOUNT)
    assert stored.day_start == late_day.day_start and stored.server_offset_seconds == GMT2
    assert last_day_with_data(database, repo, ACCOUNT) == date(2026, 3, 2)

    for ticket, moment, profit in ((11, EVENING, "12.00"), (12, LATE, "-5.00")):  # the deals behind the trades
        repo.record_deal(DealRecord(account=ACCOUNT, ticket=ticket, order_ticket=ticket, position_id=ticket - 10,
                                    symbol="EURUSD", type=1, entry=1, volume=Decimal("0.10"), price=Decimal("1.101"),
                                    profit=Decimal(profit), commission=Decimal(0), swap=Decimal(0), magic=1,
                                    comment="", reason=0, time=moment))
    mt5_day = account_figures(database, ACCOUNT, date(2026, 3, 2), date(2026, 3, 2))  # the MT5 convention too
    assert (mt5_day.deals, mt5_day.total_net_profit) == (1, Decimal("-5.00"))
    (board,) = scoreboard(database, LATE + timedelta(hours=1))
    assert board.broker_day.date == date(2026, 3, 2) and board.daily_profit == Decimal("-5.00")
    assert board.stop_outs == 1
    (board,) = scoreboard(database, EVENING)
    assert board.daily_profit == Decimal("12.00")


def test_a_daylight_saving_change_holds_from_when_it_was_measured(database):
    repo = Repository(database)
    repo.record_broker_offset(ACCOUNT, EVENING - timedelta(days=30), GMT2)
    trade(repo, 1, LATE, "3.00")  # GMT+2: broker day 2026-03-02
    change = LATE + timedelta(days=7)
    assert repo.record_broker_offset(ACCOUNT, change, 10800) is True
    assert day_profits(database) == {date(2026, 3, 2): 300}  # earlier trades keep their day
    trade(repo, 2, change + timedelta(days=1, hours=-1, minutes=50), "4.00")  # 2026-03-09 21:20 UTC = server 00:20
    assert day_profits(database)[date(2026, 3, 10)] == 400
    assert verified(database) == []


class ServerAtGmt2:
    """The simulator's gateway with its server clock at GMT+2."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def server_offset_seconds(self) -> int:
        return GMT2


def test_the_risk_guards_day_starts_at_the_servers_midnight(gateway):
    server = ServerAtGmt2(gateway)
    guard = RiskGuard(limits(), server, {"EURUSD": gateway.symbol("EURUSD")}, MAGIC)
    guard.observe(EVENING, account("10000"))
    guard.observe(EVENING + timedelta(minutes=20), account("9690"))  # -3.1 % before the server's midnight
    assert guard.halted_reason == "daily_loss" and guard.day == date(2026, 3, 1)
    guard.observe(LATE, account("9690"))  # 22:30 UTC: a new broker day, though still 2026-03-01 in UTC
    assert guard.halted_reason is None and guard.day == date(2026, 3, 2)
    assert guard.status()["broker_day_starts"] == "2026-03-01T22:00:00+00:00"
    assert broker_day_of(server, LATE) == BrokerDay(date(2026, 3, 2), GMT2)
    assert broker_day_of(object(), LATE) == BrokerDay(date(2026, 3, 1), None)  # no clock: a UTC day


@pytest.fixture
def gateway():
    gw = make_gateway(Settings.from_env({"DATABASE_URL": "sqlite://"}, dotenv_path=None),
                      sim=SimTerminal(seed=3, stepped=True))
    gw.connect()
    yield gw
    gw.close()


def test_the_prop_rules_day_and_the_daily_rollover_follow_the_server(tmp_path):
    """A loss closed at 21:30 UTC is the day before's at GMT+2: at 22:30 UTC a new broker day has
    started at the balance as it is; the finished day's report is written when the server's midnight passes."""
    from types import SimpleNamespace

    from bot.engine.proprules import PropRules, parse_rules
    from bot.history import MinuteRollup
    from mt5bridge import constants as mt5
    from tests.test_proprules import Observer, Repo, _deal

    deals = [_deal(1, datetime(2026, 2, 1, tzinfo=UTC), mt5.DEAL_TYPE_BALANCE, mt5.DEAL_ENTRY_IN, "100000.00"),
             _deal(2, EVENING - timedelta(hours=1), mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, "0.00"),
             _deal(3, EVENING, mt5.DEAL_TYPE_SELL, mt5.DEAL_ENTRY_OUT, "-1000.00")]
    rules = parse_rules({"max_daily_loss": "5%", "max_loss": "10%"})
    state = SimpleNamespace(balance=Decimal("99000.00"), equity=Decimal("99000.00"))
    live = PropRules(rules, Repo(deals), "1", Observer(), day_of=lambda moment: BrokerDay.of(moment, GMT2))
    # Broker day 2026-03-02: started at 99 000, limit 4 950, floor 94 050.
    assert {s.rule: s for s in live.evaluate(state, LATE)}["max_daily_loss"].headroom == Decimal("4950.00")
    utc_days = PropRules(rules, Repo(deals), "1", Observer())  # no clock: still UTC 2026-03-01, loss included
    assert {s.rule: s for s in utc_days.evaluate(state, LATE)}["max_daily_loss"].headroom == Decimal("4000.00")

    closed: list[date] = []
    recorded: list[tuple[datetime, int]] = []
    repo = SimpleNamespace(record_metrics_minute=lambda minute: None, prune_metrics_history=lambda *a: None,
                           record_broker_offset=lambda account, since, offset: recorded.append((since, offset)))
    rollup = MinuteRollup(repo, "1", on_day_closed=closed.append, day_of=lambda moment: BrokerDay.of(moment, GMT2))
    for moment in (EVENING, EVENING + timedelta(minutes=20), LATE):
        rollup.add(SimpleNamespace(finished_at=moment.timestamp(), duration_seconds=0.1, signals=0, orders=0,
                                   trades_executed=0, broker_latency_seconds=0.0, broker_calls=0,
                                   memory_rss_bytes=0, cpu_percent=0.0, broker_time=moment))
    assert closed == [date(2026, 3, 1)]  # at 22:30 UTC, not at UTC midnight
    assert recorded == [(EVENING, GMT2)]  # the offset is stored once, before any report reads it
