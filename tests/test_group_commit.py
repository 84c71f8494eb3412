"""Group commit: one store commit per cycle, plus one right before each order is sent (issue 16).

The whole bot runs cycles against the stepped simulator on SQLite and PostgreSQL; the commits are
counted twice: by the store's own counter (`CycleReport.store_commits`, from
`db.database.Database.commits`) and by an independent SQLAlchemy "commit" listener here.
The same run checks the cheap bookkeeping: no unknown-order lookup in the store while no order
can be unresolved, one look after a send came back unknown, and the open trades read at most
once per cycle (never in a cycle of HOLDs only).
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import event, func, select

from bot.app import BotApp
from bot.config import Settings
from db.models import MetricsMinuteModel, OrderModel, SignalModel
from mt5bridge.sim import SimTerminal

CYCLES = 7  # seed 5 on two symbols: one order at cycle 1 and one at cycle 4 (the one made "unknown")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_url")


def _counting(calls: Counter, name: str, method):
    def counted(*args, **kwargs):
        calls[name] += 1
        return method(*args, **kwargs)

    return counted


def test_one_commit_per_cycle_plus_one_per_order_sent(database_url, tmp_path, monkeypatch):
    env = {"DATABASE_URL": database_url, "METRICS_PORT": "0", "LOG_LEVEL": "WARNING", "CYCLE_SECONDS": "60",
           "SYMBOLS": "EURUSD,GBPUSD", "STRATEGIES": "ma_crossover,rsi_reversion",
           "STORE_SPOOL_PATH": str(tmp_path / "spool.db"), "ORDER_QUEUE_PATH": str(tmp_path / "queue.db")}
    sim = SimTerminal(seed=5, stepped=True)
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=sim, stepped=True)
    app.connect()
    seen = [0]
    event.listen(app.database.engine, "commit", lambda _conn: seen.__setitem__(0, seen[0] + 1))
    calls: Counter = Counter()
    for name in ("orders_by_status", "open_trades"):
        monkeypatch.setattr(app.repo, name, _counting(calls, name, getattr(app.repo, name)))
    cycles = []
    try:
        for number in range(CYCLES):
            if number == 2:
                sim.fault_timeout_after_execute(1)  # the next order executes but its answer is lost
            before, calls_before = seen[0], Counter(calls)
            report = app.engine.run_cycle()
            cycles.append((report, seen[0] - before, calls - calls_before))
            app.pacer.wait()
        with app.database.session() as session:
            statuses = Counter(session.scalars(select(OrderModel.status)))
            signals = session.scalar(select(func.count()).select_from(SignalModel))
    finally:
        app.close()

    assert all(report.ok for report, _, _ in cycles), [r.error for r, _, _ in cycles]
    sent = [sum(r.orders.values()) for r, _, _ in cycles]
    assert sent == [0, 1, 0, 0, 1, 0, 0], sent  # the run this test is about (seed 5)
    for (report, listened, reads), orders in zip(cycles, sent, strict=True):
        assert report.store_commits == listened == 1 + orders, (report.number, report.store_commits, listened)
        if report.number == 1:
            continue  # the start-up reconciliation reads the open trades itself
        assert reads["open_trades"] <= 1, report.number  # one ownership map per cycle at most
        if report.signals.keys() == {"HOLD"}:
            assert reads["open_trades"] == 0, report.number
    # The order of cycle 4 came back unknown: only the cycles after it look orders up in the store
    # (the first cycle's reconciliation does so itself), and it is resolved as filled at the broker.
    lookups = [reads["orders_by_status"] for _, _, reads in cycles]
    assert cycles[4][0].orders == Counter({"unknown": 1})
    assert lookups[1:5] == [0, 0, 0, 0] and lookups[5] > 0 and lookups[6] == 0, lookups
    assert cycles[5][0].unknown_resolved == 1
    assert statuses == Counter({"filled": 2}) and signals == sum(sum(r.signals.values()) for r, _, _ in cycles)


def _position(ticket, comment, symbol="EURUSD"):
    from datetime import UTC, datetime
    from decimal import Decimal

    from bot.gateway import Position

    one = Decimal("1")
    return Position(ticket, symbol, "BUY", one, one, one, None, None, one, one, 240001, comment,
                    datetime(2025, 1, 1, tzinfo=UTC))


def test_ownership_is_read_once_per_cycle_and_knows_positions_opened_in_it():
    from bot.engine.orders import new_client_order_id, order_comment
    from bot.engine.ownership import Ownership

    loads = []

    def load():
        loads.append(1)
        return [(1, "ma_crossover"), (2, None)]

    ownership = Ownership(load)
    held = [_position(1, "manual"), _position(2, "")]
    assert ownership.of(held, "GBPUSD", "ma_crossover") == [] and loads == []  # none on it: the store is not asked
    assert ownership.of(held, "EURUSD", "ma_crossover") == held[:1] and len(loads) == 1
    # Opened this cycle, before the books store its trade: by its comment's client order id ...
    by_comment = new_client_order_id()
    ownership.opened(by_comment, "rsi_reversion", None)
    now = [*held, _position(3, order_comment(by_comment, "rsi_reversion"))]
    assert [p.ticket for p in ownership.of(now, "EURUSD", "rsi_reversion")] == [3]
    # ... or by the ticket the send reported (a broker that rewrites comments).
    ownership.opened(new_client_order_id(), "rsi_reversion", 4)
    now.append(_position(4, "rewritten by the broker"))
    assert [p.ticket for p in ownership.of(now, "EURUSD", "rsi_reversion")] == [3, 4]
    assert ownership.of(now, "GBPUSD", "rsi_reversion") == [] and len(loads) == 1  # one read for the cycle
    ownership.reset()  # the next cycle reads the store again (the books have stored the trades by then)
    assert ownership.owners() == {1: "ma_crossover", 2: None} and len(loads) == 2


def test_a_closed_minute_is_the_last_write_of_the_next_cycles_commit(tmp_path):
    """Telemetry's minute row joins the cycle's one commit as its last write: after the cycle's signals
    (the transaction is open by then), before the commit - so a cycle with a minute row still commits once."""
    import time

    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/store.db", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
           "CYCLE_SECONDS": "60", "SYMBOLS": "EURUSD", "STRATEGIES": "ma_crossover",
           "STORE_SPOOL_PATH": str(tmp_path / "spool.db"), "ORDER_QUEUE_PATH": str(tmp_path / "queue.db")}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=5, stepped=True), stepped=True)
    app.connect()
    app.start_telemetry(serve=False)
    ahead = [0.0]
    app.instrumentation.clock = app.history.clock = lambda: time.time() + ahead[0]
    order: list[tuple[str, int]] = []
    signal_log, closing = app.engine.signal_log, app.instrumentation.store_unit_closing
    flush = signal_log.flush
    signal_log.flush = lambda: (order.append(("signals", app.database.commits)), flush())[1]
    app.instrumentation.store_unit_closing = lambda: (order.append(("minute", app.database.commits)), closing())[1]
    reports = []
    try:
        for _ in range(6):
            ahead[0] += 30.0  # a minute closes every other cycle
            before, start = app.database.commits, len(order)
            report = app.engine.run_cycle()
            reports.append((report, before, order[start:]))
            app.pacer.wait()
        with app.database.session() as session:
            rows = session.scalar(select(func.count()).select_from(MetricsMinuteModel))
    finally:
        app.close()
    assert rows >= 2  # minutes closed by the run, written in later cycles
    for report, before, seen in reports:
        assert report.ok and report.store_commits == 1 + sum(report.orders.values()), report
        kinds = [kind for kind, _ in seen]
        assert kinds[-1] == "minute" and kinds.count("minute") == 1 and "signals" in kinds, kinds  # the hook last
        assert {at for _, at in seen} == {before}  # all inside the cycle's transaction, before its commit
