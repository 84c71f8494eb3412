"""Whole-account history import: balance operations, foreign trades, idempotent, resumable, fast.

The cases on a simulated account run on every shipped broker profile (its name of EURUSD, its
server clock, its margin mode); the netting reversal on every netting profile."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sim_profile_helpers import broker_name, is_netting, profiles_where, shipped_profiles

from bench.history_import import YearOfDeals
from bot.account_history import Cursor, HistoryImport, Progress
from bot.gateway import OrderRejected
from bot.gateway.mt5api import Mt5ApiGateway
from bot.gateway.types import OrderRequest
from db import Repository, init_db
from db.history_store import deal_count
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

BOT_MAGIC = 240001


def _send(gateway, side, magic, position=None, volume="0.10"):
    """A trade placed by hand or by another EA (sent again when a Request dealer requotes it)."""
    for _ in range(10):
        quote = gateway.quote(gateway.sym)
        try:
            return gateway.order_send(OrderRequest(
                symbol=gateway.sym, side=side, volume=Decimal(volume), price=quote.ask if side == "BUY" else quote.bid,
                sl=None, tp=None, deviation=50, magic=magic, comment="", position=position))
        except OrderRejected as refused:
            if refused.retcode != mt5.TRADE_RETCODE_REQUOTE:
                raise
    raise AssertionError("requoted ten times")


def _gateway(sim, profile: str | None) -> Mt5ApiGateway:
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim))
    gateway.sym = broker_name(profile, "EURUSD") if profile else "EURUSD"  # the profile's name of EURUSD
    return gateway


@pytest.fixture(params=shipped_profiles())
def account(tmp_path, request):
    """A simulated account with a deposit, a credit, a manual trade, another EA's trade and an open one."""
    sim = SimTerminal(seed=5, stepped=True, profile=request.param)
    gateway = _gateway(sim, request.param)
    gateway.connect()
    sim.advance(3600)
    sim.deposit(500, comment="Deposit")
    sim.advance(86_400)
    sim.deposit(-200, comment="Withdrawal")
    sim.deposit(50, comment="Credit", deal_type=mt5.DEAL_TYPE_CREDIT)
    manual = _send(gateway, "BUY", 0)
    sim.advance(86_400)  # weekdays only: the sim's market closes at the weekend
    _send(gateway, "SELL", 0, position=manual.order)
    ea = _send(gateway, "SELL", 777)
    sim.advance(3600)
    _send(gateway, "BUY", 777, position=ea.order, volume="0.05")  # partial exit ...
    sim.advance(86_400)
    _send(gateway, "BUY", 777, position=ea.order, volume="0.05")  # ... and the rest a day later
    still_open = _send(gateway, "BUY", 0)
    sim.advance(600)
    database = init_db(f"sqlite:///{tmp_path / 'store.db'}")
    yield sim, gateway, database, {"manual": manual.order, "ea": ea.order, "open": still_open.order}
    database.dispose()


def _import(gateway, database, tmp_path, since=None):
    now = gateway.quote(gateway.sym).time
    cursor = Cursor(str(tmp_path / "cursor.json"))
    return HistoryImport(gateway, database, "1", BOT_MAGIC, {gateway.sym: 5}, cursor=cursor).run(now, since)


def test_imports_balance_operations_and_foreign_trades(account, tmp_path):
    sim, gateway, database, tickets = account
    result = _import(gateway, database, tmp_path)
    repo = Repository(database)
    deals = repo.deals_since("1", datetime(2000, 1, 1, tzinfo=UTC))
    balance = [d for d in deals if d.type not in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL)]
    assert [(d.type, d.profit, d.symbol, d.volume) for d in balance] == [
        (mt5.DEAL_TYPE_BALANCE, Decimal("500.00"), "", Decimal("0.00")),
        (mt5.DEAL_TYPE_BALANCE, Decimal("-200.00"), "", Decimal("0.00")),
        (mt5.DEAL_TYPE_CREDIT, Decimal("50.00"), "", Decimal("0.00")),
    ]
    assert len(deals) == 3 + 2 + 3 + 1 == result.deals_stored
    manual = repo.get_trade("1", tickets["manual"])
    ea = repo.get_trade("1", tickets["ea"])
    still_open = repo.get_trade("1", tickets["open"])
    assert (manual.strategy_name, manual.is_closed, manual.magic) == ("manual", True, 0)
    assert (ea.strategy_name, ea.is_closed, ea.direction) == ("ea:777", True, "SELL")
    ea_exits = [d for d in deals if d.position_id == tickets["ea"] and d.entry == mt5.DEAL_ENTRY_OUT]
    assert ea.gross_profit == sum(d.profit for d in ea_exits)  # both partial exits, not the first alone
    assert (still_open.strategy_name, still_open.is_closed) == ("manual", False)
    # Balance operations are never trades: three positions, three trades.
    assert len(repo.open_trades("1")) == 1 and result.trades_opened == 3 and result.trades_closed == 2
    # The balance after every deal ends where the terminal's does.
    assert sum(d.profit + d.commission + d.swap for d in deals) + Decimal(10_000) == \
        Decimal(str(sim.account_info().balance))


@pytest.mark.parametrize("profile", profiles_where(is_netting))
def test_a_netting_reversal_imports_as_the_live_books_trades(tmp_path, profile):
    """The import books with trades_from_deals like the live bot: an INOUT closes one trade and opens
    the reversed one (keyed by the INOUT's order), attributed by its deal's magic."""
    sim = SimTerminal(seed=7, stepped=True, profile=profile)
    gateway = _gateway(sim, profile)
    gateway.connect()
    sim.advance(3600)
    first = _send(gateway, "BUY", 0)
    sim.advance(3600)
    reversal = _send(gateway, "SELL", 0, volume="0.30")  # closes 0.10 long, opens 0.20 short
    sim.advance(600)
    database = init_db(f"sqlite:///{tmp_path / 'store.db'}")
    result = _import(gateway, database, tmp_path)
    repo = Repository(database)
    closed, reversed_ = repo.get_trade("1", first.order), repo.get_trade("1", reversal.order)
    assert (closed.direction, closed.volume, closed.is_closed, closed.strategy_name) == \
        ("BUY", Decimal("0.10"), True, "manual")
    assert closed.close_reason == "expert" and reversed_.close_reason is None  # the INOUT deal's reason, stored
    assert (reversed_.direction, reversed_.volume, reversed_.is_closed, reversed_.strategy_name) == \
        ("SELL", Decimal("0.20"), False, "manual")
    assert result.trades_opened == 2 and result.trades_closed == 1
    assert _import(gateway, database, tmp_path, since=result.since).trades_opened == 0  # idempotent
    database.dispose()


def test_reimport_stores_nothing_twice(account, tmp_path):
    _, gateway, database, _ = account
    first = _import(gateway, database, tmp_path)
    again = _import(gateway, database, tmp_path, since=first.since)  # from the start again, on purpose
    assert first.deals_stored == 9 and again.deals_stored == 0
    assert again.trades_opened == 0 and again.trades_closed == 0
    assert deal_count(database, "1") == 9


def test_resumes_after_the_last_window(account, tmp_path):
    sim, gateway, database, _ = account
    first = _import(gateway, database, tmp_path)
    sim.advance(2 * 86_400)
    sim.deposit(75)
    resumed = _import(gateway, database, tmp_path)  # no --since: the cursor's window
    assert resumed.since >= first.until - timedelta(days=1)
    assert resumed.windows <= 4 and resumed.deals_stored == 1


def test_progress_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    plain, tty = io.StringIO(), Tty()
    for stream in (plain, tty):
        bar = Progress(4, stream)
        bar.update(2, 10)
        bar.finish()
    assert plain.getvalue() == ""
    assert "50.0%" in tty.getvalue() and "2/4 days, 10 deals" in tty.getvalue()


def test_a_history_of_deals_imports_whole_and_attributed(tmp_path):
    """The year-of-deals terminal of `python -m bench history_import` (100 000 deals, timed there against
    the issue's 60 s), here at 10 000 deals: every deal stored once, every position a trade, foreign
    trades attributed to `manual` / `ea:<magic>`."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    gateway = YearOfDeals(10_000, start, BOT_MAGIC)
    database = init_db(f"sqlite:///{tmp_path / 'year.db'}")
    try:
        result = HistoryImport(gateway, database, "1", BOT_MAGIC, {"EURUSD": 5}).run(
            gateway.times[-1] + timedelta(minutes=1), since=start)
        assert result.deals_stored == 10_000 == deal_count(database, "1")
        positions = {d.position_id for d in gateway.rows if d.symbol}
        assert result.trades_opened == len(positions)
        assert result.trades_closed >= len(positions) - 1  # the last may have lost its exit to the cut
        strategies = {t.strategy_name for t in Repository(database).open_trades("1")}
        assert strategies <= {"manual", "ea:777", None}
    finally:
        database.dispose()


def test_cli_imports_the_simulators_history(tmp_path, monkeypatch, capsys):
    from bot.cli import main

    store = tmp_path / "store.db"
    sim = SimTerminal(seed=42, stepped=True, state_file=str(tmp_path / "store.db.sim_state.json"))
    sim.advance(3600)
    sim.deposit(1234)
    gateway = _gateway(sim, None)
    gateway.connect()
    ticket = _send(gateway, "BUY", 0).order
    sim.advance(600)
    _send(gateway, "SELL", 0, position=ticket)
    sim.advance(60)
    sim._persist(force=True)
    monkeypatch.chdir(tmp_path)
    for name, value in {"DATABASE_URL": f"sqlite:///{store}", "SYMBOLS": "EURUSD", "MT5_MODE": "sim", "SIM_SEED": "42"}.items():
        monkeypatch.setenv(name, value)
    assert main(["history", "import"]) == 0
    out = capsys.readouterr()
    assert "3 new stored, 1 trades opened, 1 closed" in out.out and out.err == ""  # no bar: not a terminal
    assert main(["history", "import", "--since", "2025-12-01"]) == 0  # again, from before the first deal
    assert "0 new stored" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["history", "import", "--since", "someday"])
    assert refused.value.code == 2 and "not an ISO date" in capsys.readouterr().err


@pytest.mark.parametrize("profile", shipped_profiles())
def test_first_start_imports_the_whole_history_once(tmp_path, profile):
    from bot.config import Settings
    from bot.engine import Engine
    from bot.engine.strategies import load_strategies
    from bot.gateway.factory import make_gateway

    sim = SimTerminal(seed=5, stepped=True, profile=profile)
    person = _gateway(sim, profile)  # someone trading at the terminal by hand
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/first.db", "SYMBOLS": person.sym,
                                  "HISTORY_DAYS": "1", "TRADING": "off"}, dotenv_path=None)
    gateway = make_gateway(settings, sim)
    person.connect()
    sim.advance(3600)
    sim.deposit(900)
    old = _send(person, "BUY", 0).order
    sim.advance(600)
    _send(person, "SELL", 0, position=old)
    sim.advance(3 * 86_400)  # older than HISTORY_DAYS: the live books alone would never see it
    database = init_db(settings.database_url)
    engine = Engine(settings, gateway, Repository(database), load_strategies(settings.strategies))
    engine.policy.database = database
    assert engine.run_cycle().ok
    repo = Repository(database)
    assert repo.get_trade(engine.account_id, old).strategy_name == "manual"
    assert deal_count(database, engine.account_id) == 3
    assert (tmp_path / f"first.db.history_import.{engine.account_id}.json").exists()  # not imported again
    database.dispose()
