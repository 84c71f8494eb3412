"""Accelerated runs of the whole bot against the simulated terminal, on SQLite and PostgreSQL.

The simulator's own books are the truth: after the run, every deal in its history is in the store
exactly once, every order intent has exactly one outcome, and every closed trade's profit equals
the sum of its deals to the cent.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

CYCLES = 2000
FAR = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _settings(url: str, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": url,
        "SYMBOLS": "EURUSD,GBPUSD,USDJPY,XAUUSD",
        "TIMEFRAME": "M1",
        "CYCLE_SECONDS": "30",
        "LOG_LEVEL": "WARNING",
        "METRICS_PORT": "0",  # any free port: never depend on 8000 being free
        # the books under faults are measured, not losses: the risk guard's loss halts off
        "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100",
        **extra,
    }
    return Settings.from_env(env, dotenv_path=None)


class FaultSchedule:
    """Wraps the pacer's step so faults hit the terminal at fixed cycles of the run."""

    def __init__(self, sim: SimTerminal, app: BotApp):
        self.sim = sim
        self.app = app
        self.step = 0
        self.original_wait = app.pacer.wait

    def wait(self) -> None:
        self.step += 1
        if self.step % 97 == 0:
            self.sim.fault_reject_next(1, mt5.TRADE_RETCODE_NO_MONEY)
        if self.step % 151 == 0:
            self.sim.fault_timeout_after_execute(1)
        if self.step % 401 == 0:
            self.sim.fault_disconnect(90)
        self.original_wait()


def cents(value) -> Decimal:
    """Raw SQL on SQLite hands back floats for NUMERIC; compare at the cent."""
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _rows(app: BotApp, sql: str) -> list:
    with app.database.engine.connect() as conn:
        return list(conn.execute(text(sql)))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/run.db"
    return request.getfixturevalue("postgres_url")


@pytest.mark.slow
def test_accelerated_run_books_match_the_broker(database_url):
    sim = SimTerminal(seed=11, stepped=True)
    app = BotApp(_settings(database_url), sim=sim, stepped=True)
    schedule = FaultSchedule(sim, app)
    app.pacer.wait = schedule.wait
    assert app.run(cycles=CYCLES) == 0
    assert app.engine.cycles == CYCLES
    assert sim.initialize()  # the app shut its terminal session down on exit
    account = str(sim.account_info().login)

    # Reopen: the app closed its database handle.
    app = BotApp(_settings(database_url), sim=sim, stepped=True)
    try:
        broker_deals = {d.ticket: d for d in sim.history_deals_get(EPOCH, FAR) if d.symbol}
        store_deals = _rows(app, f"select ticket, profit, commission, swap from deals where account = '{account}'")
        tickets = Counter(r.ticket for r in store_deals)
        assert tickets and max(tickets.values()) == 1
        assert set(tickets) == set(broker_deals), "every broker deal is in the store exactly once"
        for row in store_deals:
            deal = broker_deals[row.ticket]
            assert cents(row.profit) == cents(deal.profit)
            assert cents(row.commission) == cents(deal.commission)

        orders = _rows(app, f"select client_order_id, status, retcode, message from orders where account = '{account}'")
        statuses = Counter(o.status for o in orders)
        assert statuses["pending"] == 0, "every intent has an outcome"
        assert statuses["filled"] > 20
        assert any(o.retcode == mt5.TRADE_RETCODE_NO_MONEY for o in orders), "injected rejections are recorded"
        resolved = [o for o in orders if (o.message or "").startswith("resolved")]
        assert resolved, "orders whose reply was lost were resolved at the broker"
        assert statuses["unknown"] <= 1  # at most the last cycle's, still inside its grace period

        # No order reached the broker twice: one broker order per client order id.
        # (orders the broker generated itself for SL/TP carry "[sl …]" / "[tp …]" comments)
        broker_orders = [o for o in sim.history_orders_get(EPOCH, FAR) if o.magic == app.settings.magic]
        per_client_id = Counter(o.comment.split()[0] for o in broker_orders if o.comment.startswith("tw"))
        assert all(o.comment.startswith(("tw", "[sl", "[tp")) for o in broker_orders)
        assert per_client_id and max(per_client_id.values()) == 1
        filled_ids = {o.client_order_id for o in orders if o.status == "filled"}
        assert filled_ids == set(per_client_id), "filled in the store <=> executed at the broker"

        # Closed trades: net profit equals the sum of the position's deals, to the cent.
        trades = _rows(app, f"select ticket, profit, commission, swap, is_closed from trades where account = '{account}'")
        by_position: dict[int, Decimal] = {}
        for d in broker_deals.values():
            by_position[d.position_id] = by_position.get(d.position_id, Decimal(0)) + (
                Decimal(str(d.profit)) + Decimal(str(d.commission)) + Decimal(str(d.swap))
            )
        open_tickets = {p.ticket for p in sim.positions_get()}
        closed = [t for t in trades if t.is_closed]
        assert len(closed) > 10
        assert {t.ticket for t in trades} == set(by_position)
        for trade in closed:
            assert cents(trade.profit) == cents(by_position[trade.ticket]), trade.ticket
        assert {t.ticket for t in trades if not t.is_closed} == open_tickets

        # Correlation: a trade leads back to its order and signal.
        linked = _rows(
            app,
            "select count(*) as n from trades t join orders o on o.client_order_id = t.client_order_id "
            "join signals s on s.id = o.signal_id where t.correlation_id = o.correlation_id "
            "and s.correlation_id = t.correlation_id",
        )
        assert linked[0].n == len(trades)

        snapshots = _rows(app, f"select count(*) as n from account_snapshots where account = '{account}'")
        assert snapshots[0].n >= CYCLES - 10  # a snapshot per cycle, except while disconnected
    finally:
        app.close()
