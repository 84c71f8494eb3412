"""Account snapshots are stamped with the moment their figures were read, so `db verify-rollups`
passes on the store an accelerated bot run writes.

A broker takes time to execute: here every order_send moves the (stepped) simulated clock on by a
few seconds, deterministically, as an accelerated free-running simulator or a real server does. A
snapshot stamped with the cycle's start would then hold the balance of deals made later in the
cycle, and the rollups' initial balance (the newest snapshot before the first exit) would already
include the first closed trade's profit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.app import BotApp
from bot.config import Settings
from db.__main__ import main as db_main
from db.models import AccountSnapshotModel, TradeModel
from mt5bridge.sim import SimTerminal

CYCLES = 400
SEED = 3  # its first exit is a close the bot sends: stamped at the cycle's start, verify-rollups failed
EXECUTION_SECONDS = 3.0  # simulated seconds an order takes at the broker
DEPOSIT = Decimal("10000.00")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _settings(url: str) -> Settings:
    return Settings.from_env({"DATABASE_URL": url, "SYMBOLS": "EURUSD,GBPUSD,USDJPY,XAUUSD", "TIMEFRAME": "M1",
                              "CYCLE_SECONDS": "30", "LOG_LEVEL": "WARNING"},
                             dotenv_path=None)


def _slow_broker(sim: SimTerminal) -> None:
    """Every order executes EXECUTION_SECONDS of broker time after it was sent."""
    send = sim.order_send

    def order_send(request):
        sim.advance(EXECUTION_SECONDS)
        return send(request)

    sim.order_send = order_send


def _cents(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/run.db"
    return request.getfixturevalue("postgres_url")


def test_snapshots_hold_what_the_broker_had_at_their_time_and_rollups_verify(database_url, caplog):
    sim = SimTerminal(seed=SEED, stepped=True, balance=DEPOSIT)
    _slow_broker(sim)
    app = BotApp(_settings(database_url), sim=sim, stepped=True)
    assert app.run(cycles=CYCLES, serve=False) == 0

    sim.initialize()
    deals = sorted(sim.history_deals_get(EPOCH, FAR), key=lambda d: d.time_msc)
    closes = [d for d in deals if d.symbol and d.entry != 0]
    assert len(closes) >= 3, "the run must close trades for the rollups to mean anything"
    account = str(sim.account_info().login)
    app = BotApp(_settings(database_url), sim=sim, stepped=True)
    try:
        with app.database.session() as session:
            snapshots = list(session.execute(
                select(AccountSnapshotModel.time, AccountSnapshotModel.balance)
                .where(AccountSnapshotModel.account == account).order_by(AccountSnapshotModel.time)))
            exits = session.scalar(select(func.count()).select_from(TradeModel)
                                   .where(TradeModel.account == account, TradeModel.is_closed.is_(True)))
    finally:
        app.database.dispose()
    assert len(snapshots) > CYCLES // 2 and exits >= 3
    # Each snapshot's balance is exactly the deposit plus every deal the broker made up to its time.
    wrong = []
    for snap in snapshots:
        stamp = snap.time if snap.time.tzinfo else snap.time.replace(tzinfo=UTC)
        booked = sum((Decimal(str(d.profit)) + Decimal(str(d.commission)) + Decimal(str(d.swap))
                      for d in deals if d.time <= stamp.timestamp()), DEPOSIT)
        if _cents(snap.balance) != _cents(booked):
            wrong.append((stamp.isoformat(), _cents(snap.balance), _cents(booked)))
    assert not wrong, f"{len(wrong)} snapshots hold a balance from another moment, e.g. {wrong[:3]}"

    caplog.set_level("INFO", logger="db")
    assert db_main(["--url", database_url, "verify-rollups"]) == 0, caplog.text
    assert "rollups agree with the trades of 1 account(s)" in caplog.text
