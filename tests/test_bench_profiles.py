"""The checks of bench/profiles.py, proven on a short real run (100 cycles on retail-hedging: ".m"
names, FOK-only forex, a GMT+2 server clock) and on a store doctored the ways a real bug would
leave it: a profit a cent off, a deal stored in server time, a trade row lost, a 10030 refusal."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import profiles as bench  # noqa: E402
from mt5bridge import constants as mt5  # noqa: E402

CYCLES = 100


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    profile_run = bench.ProfileRun("retail-hedging", tmp_path_factory.mktemp("bench-profiles"))
    profile_run.run(CYCLES)
    yield profile_run
    profile_run.close()


def sql(run, statement: str, **params):
    with run.app.database.engine.begin() as conn:
        return conn.execute(text(statement), params)


def closed_trade(run):
    return sql(run, "select ticket, profit from trades where is_closed order by ticket limit 1").one()


def test_the_profiles_are_the_shipped_ones_and_symbols_are_written_as_a_trader_would():
    from mt5bridge.sim.profiles import names

    assert bench.profile_names() == names() and "retail-hedging" in names()
    assert bench.configured_symbols("retail-hedging")[:2] == ["EURUSD", "GBPUSD"]  # the bot finds ".m"
    assert "US500" in bench.configured_symbols("request-exotic")  # "#US500": a prefix
    assert "GOLD.f" in bench.configured_symbols("request-exotic")  # not a decoration of XAUUSD


def test_a_clean_run_passes_every_check(run):
    figures = bench.check(run.record())
    assert figures.cycles == CYCLES and sum(figures.sent.values()) > 5, figures.lines()
    assert figures.positions_compared > 5 and figures.mismatches == [], figures.lines()
    assert {"deals.time", "trades.entry_time", "trades.exit_time", "orders.created_at", "orders.sent_at",
            "signals.time", "account_snapshots.time"} <= set(figures.offsets), figures.offsets
    assert figures.failures() == [], figures.lines()
    assert run.app.gateway.clock.offset == 7200  # the broker really reported GMT+2 times


def test_a_trade_a_cent_off_is_reported(run):
    ticket, profit = closed_trade(run)
    sql(run, "update trades set profit = :p where ticket = :t", p=str(Decimal(str(profit)) + Decimal("0.01")), t=ticket)
    try:
        figures = bench.check(run.record())
        assert len(figures.mismatches) == 1, figures.mismatches
        assert figures.mismatches[0].startswith(f"position {ticket}: store 1 trades"), figures.mismatches
        assert figures.mismatches[0].endswith("[net differs]"), figures.mismatches
        assert any("positions differ" in f for f in figures.failures())
    finally:
        sql(run, "update trades set profit = :p where ticket = :t", p=str(profit), t=ticket)


def test_a_lost_trade_row_is_reported(run):
    ticket, _ = closed_trade(run)
    row = sql(run, "select * from trades where ticket = :t", t=ticket).mappings().one()
    sql(run, "delete from trades where ticket = :t", t=ticket)
    try:
        _, problems = bench.trade_mismatches(run.record())
        assert len(problems) == 1 and problems[0].startswith(f"position {ticket}: closed at the broker (1 trades, ")
        assert problems[0].endswith("but no trade in the store"), problems
    finally:
        columns = ", ".join(row)
        sql(run, f"insert into trades ({columns}) values ({', '.join(':' + c for c in row)})", **dict(row))


def test_a_deal_stored_in_server_time_is_reported(run):
    """The bug the issue names: broker times (GMT+2) stored labelled as UTC."""
    record = run.record()
    key, when = record.stored_times[("deals", "time")][0]
    record.stored_times[("deals", "time")][0] = (key, when + timedelta(hours=2))
    figures = bench.check(record)
    assert figures.offsets["deals.time"] == (7200.0, key)
    assert any("deals.time" in f for f in figures.failures())


def test_refusals_are_split_by_retcode_and_avoidable_ones_counted():
    sent = [bench.Sent(mt5.TRADE_ACTION_DEAL, "EURUSD.m", code) for code in (
        mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_INVALID_FILL, mt5.TRADE_RETCODE_REQUOTE,
        mt5.TRADE_RETCODE_INVALID_STOPS, mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_INVALID_VOLUME)]
    refused, avoidable = bench.refusals(sent)
    assert refused == {mt5.TRADE_RETCODE_INVALID_FILL: 1, mt5.TRADE_RETCODE_REQUOTE: 2,
                       mt5.TRADE_RETCODE_INVALID_STOPS: 1, mt5.TRADE_RETCODE_INVALID_VOLUME: 1}
    assert avoidable == 3


def test_the_broker_side_cuts_a_netting_reversal_into_two_trades():
    """IN 0.10 buy, OUT 0.04, INOUT sell 0.16 (closes 0.06, opens 0.10 sell), OUT 0.10: two trades."""
    def deal(ticket, order, entry, kind, volume, profit, commission="0"):
        return {"ticket": ticket, "order": order, "time_msc": ticket, "position_id": 7, "entry": entry, "type": kind,
                "volume": volume, "profit": profit, "commission": commission, "swap": 0.0, "fee": 0.0}
    deals = [deal(1, 7, mt5.DEAL_ENTRY_IN, mt5.DEAL_TYPE_BUY, 0.10, 0.0, "-0.35"),
             deal(2, 8, mt5.DEAL_ENTRY_OUT, mt5.DEAL_TYPE_SELL, 0.04, 1.25),
             deal(3, 9, mt5.DEAL_ENTRY_INOUT, mt5.DEAL_TYPE_SELL, 0.16, 2.10, "-0.56"),
             deal(4, 10, mt5.DEAL_ENTRY_OUT, mt5.DEAL_TYPE_BUY, 0.10, -0.70)]
    totals, reversals = bench.broker_positions(deals)
    assert reversals == {9: 7}
    assert totals[7].key() == (2, Decimal("0.20"), Decimal("1.74"))
    stored = [{"ticket": 7, "volume": Decimal("0.10"), "profit": Decimal("3.00"), "is_closed": True},
              {"ticket": 9, "volume": Decimal("0.10"), "profit": Decimal("-1.26"), "is_closed": True}]
    assert bench.store_positions(stored, reversals)[0][7].key() == totals[7].key()


def test_server_time_converts_back_to_utc_on_both_sides_of_daylight_saving():
    from mt5bridge.sim.servertime import ServerTime

    rule = ServerTime("us-dst", 2)
    for utc in (1767614400.0, 1783339200.0):  # 2026-01-05 and 2026-07-06 12:00 UTC
        assert bench.server_to_utc(rule, rule.to_server(utc)) == utc
    assert bench.server_to_utc(ServerTime("utc"), 1767614400.0) == 1767614400.0


def test_a_broker_day_start_is_judged_against_the_servers_midnight():
    """daily_performance.day_start (broker days: the server's midnight in UTC) - 22:00 UTC at GMT+2."""
    from datetime import UTC, datetime

    from mt5bridge.sim.servertime import ServerTime

    def offsets(stored):
        record = bench.RunRecord("retail-hedging", 0, [], [], [], set(), {("daily_performance", "day_start"): stored},
                                 [], server_time=ServerTime("us-dst", 2))
        return bench.time_offsets(record)["daily_performance.day_start"]

    assert offsets([("1", datetime(2026, 1, 5, 22, 0, tzinfo=UTC))]) == (0.0, "1")
    assert offsets([("1", datetime(2026, 1, 5, 22, 0, tzinfo=UTC)), ("2", datetime(2026, 1, 6, 0, 0, tzinfo=UTC))]) \
        == (7200.0, "2")  # a UTC midnight is two hours off the broker's day


def test_a_deal_marks_newest_time_is_judged_against_the_deals_not_the_cycles():
    """deal_marks.newest is the newest stored deal's time: a deal made between two cycles is exact there."""
    from datetime import UTC, datetime

    deal_at = datetime(2026, 1, 5, 10, 0, 14, tzinfo=UTC)
    deals = [{"ticket": 7, "utc": deal_at, "entry": 0, "position_id": 1, "order": 1, "time_msc": 0, "type": 0,
              "volume": 0.1}]

    def offset(newest):
        record = bench.RunRecord("demo", 1, [datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)], [], deals, set(),
                                 {("deal_marks", "newest"): [("42", newest)]}, [])
        return bench.time_offsets(record)["deal_marks.newest"]

    assert offset(deal_at) == (0.0, "42")  # 14 s after the cycle: no gap
    assert offset(datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)) == (14.0, "42")  # a cycle's time is not a deal's
