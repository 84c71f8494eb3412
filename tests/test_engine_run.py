"""Accelerated runs of the whole bot against the simulated terminal, on SQLite and PostgreSQL, on
every shipped broker profile (netting and hedging, Instant / Request / Market execution, suffixed
names, server clocks off UTC).

The simulator's own books are the truth: after the run, every deal in its history is in the store
exactly once, every order intent has exactly one outcome, and the trades equal the broker's
positions history (per position: count, volume, net profit to the cent; a netting reversal is two
trades). Each profile runs CYCLES on each database: 4 profiles x 2 databases x 500 cycles cost what
the single 2 000-cycle run on the default simulator cost per database.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sim_profile_helpers import broker_positions_history, broker_symbols, load_profile, shipped_profiles
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

CYCLES = 500
FAR = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _settings(url: str, symbols: list[str], **extra: str) -> Settings:
    env = {
        "DATABASE_URL": url,
        "SYMBOLS": ",".join(symbols),
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


def _assert_volumes(mismatches: dict[int, tuple[Decimal, Decimal]]) -> None:
    """Stored trade volumes equal the broker's, to the broker's own step (a 0.001 lot on request-exotic:
    NUMERIC(18, 8) since revision 0008)."""
    assert not mismatches, f"stored vs broker volume per position: {mismatches}"


def _as_utc(value) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _server_to_utc(clock, server_epoch: int) -> float:
    """A broker time (server clock) in UTC, by the profile's own rule (independent of the bot's clock)."""
    return server_epoch - clock.offset(server_epoch - clock.offset(server_epoch))


def _open_ticket(sim, position_id: int) -> int:
    """The ticket an open position carries (after a netting reversal: the INOUT order's)."""
    (position,) = [p for p in sim.positions_get() if p.identifier == position_id]
    return position.ticket


# Every profile on SQLite; PostgreSQL (the same store code, another backend) on the two profiles
# furthest from the default: the server clock off UTC with suffixed names, and netting.
RUNS = [("sqlite", p) for p in shipped_profiles()] + [
    ("postgres", p) for p in ("retail-hedging", "ecn-netting") if p in shipped_profiles()]


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "profile"), RUNS, ids=[f"{b}-{p}" for b, p in RUNS])
def test_accelerated_run_books_match_the_broker(request, tmp_path, backend, profile):
    database_url = f"sqlite:///{tmp_path}/run.db" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    sim = SimTerminal(seed=11, stepped=True, profile=profile)
    symbols = broker_symbols(profile)
    app = BotApp(_settings(database_url, symbols), sim=sim, stepped=True)
    schedule = FaultSchedule(sim, app)
    app.pacer.wait = schedule.wait
    assert app.run(cycles=CYCLES) == 0
    assert app.engine.cycles == CYCLES
    assert sim.initialize()  # the app shut its terminal session down on exit
    account = str(sim.account_info().login)

    # Reopen: the app closed its database handle.
    app = BotApp(_settings(database_url, symbols), sim=sim, stepped=True)
    clock = load_profile(profile).account.server_time
    try:
        broker_deals = {d.ticket: d for d in sim.history_deals_get(EPOCH, FAR) if d.symbol}
        store_deals = _rows(app, f"select ticket, time, profit, commission, swap from deals where account = '{account}'")
        tickets = Counter(r.ticket for r in store_deals)
        assert tickets and max(tickets.values()) == 1
        assert set(tickets) == set(broker_deals), "every broker deal is in the store exactly once"
        for row in store_deals:
            deal = broker_deals[row.ticket]
            assert cents(row.profit) == cents(deal.profit)
            assert cents(row.commission) == cents(deal.commission)
            # true UTC, although the broker reports its server clock (GMT+2/+3 with US DST, fixed GMT+3)
            assert _as_utc(row.time).timestamp() == _server_to_utc(clock, deal.time), row.ticket

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

        # Trades equal the broker's positions history: per position, count, volume and net profit to the
        # cent (hedging: one trade per position; netting: a reversal closes one trade and opens the next).
        history, reversals = broker_positions_history(sim, app.settings.magic)
        trades = _rows(app, f"select ticket, volume, profit, is_closed from trades where account = '{account}'")
        open_ids = {p.identifier for p in sim.positions_get()}
        stored: dict[int, dict] = {}
        for trade in trades:
            position_id = reversals.get(trade.ticket, trade.ticket)
            assert position_id in history, f"trade {trade.ticket} is no position of the broker's"
            s = stored.setdefault(position_id, {"count": 0, "volume": Decimal(0), "net": Decimal(0)})
            s["count"] += 1
            s["volume"] += Decimal(str(trade.volume))
            s["net"] += Decimal(str(trade.profit or 0))
            assert trade.is_closed == (position_id not in open_ids or trade.ticket != _open_ticket(sim, position_id)), \
                trade.ticket
        assert set(stored) == set(history), "every position of the bot's is in the store"
        closed = [pid for pid in history if pid not in open_ids]
        assert len(closed) > 10
        for position_id in closed:
            h, s = history[position_id], stored[position_id]
            assert (s["count"], cents(s["net"])) == (h["count"], cents(h["net"])), \
                f"position {position_id}: store {s} vs broker {h}"
        volumes = {pid: (stored[pid]["volume"], history[pid]["volume"]) for pid in closed
                   if stored[pid]["volume"] != history[pid]["volume"]}

        # Correlation: a trade leads back to its order and signal.
        linked = _rows(
            app,
            "select count(*) as n from trades t join orders o on o.client_order_id = t.client_order_id "
            "join signals s on s.id = o.signal_id where t.correlation_id = o.correlation_id "
            "and s.correlation_id = t.correlation_id",
        )
        assert linked[0].n == len(trades)

        snapshots = _rows(app, f"select count(*) as n, max(time) as latest from account_snapshots where account = '{account}'")
        assert snapshots[0].n >= CYCLES - 10  # a snapshot per cycle, except while disconnected
        assert abs((_as_utc(snapshots[0].latest) - sim.now()).total_seconds()) <= 31  # the last cycle's, in UTC
        _assert_volumes(volumes)
    finally:
        app.close()
