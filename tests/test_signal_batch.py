"""A cycle's signals in one store write (issue 16): the same rows, ids and counters as one write per signal.

`Repository.record_signals` against `record_signal` one by one on twin databases (SQLite and
PostgreSQL); the spooled store keeping a batch as one `record_signal` call per signal, so a lost
unit replays it to the same rows; `PendingSignals` holding HOLDs until a BUY/SELL needs its id;
and the whole bot on the stepped simulator with and without the batching, table against table.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from bot.app import BotApp
from bot.config import Settings
from bot.engine.signal_log import PendingSignals
from bot.store import CircuitBreaker, SpooledRepository, is_connectivity_error
from db import DuplicateSignal, Repository, SignalRecord, init_db
from mt5bridge.sim import SimTerminal

ACCOUNT = "5012345"
T0 = datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC)


def signals(cycle: str, actions: str = "HBHSH") -> list[SignalRecord]:
    names = {"H": "HOLD", "B": "BUY", "S": "SELL"}
    return [SignalRecord(ACCOUNT, T0, cycle, f"{cycle}-corr-{k}", f"SYM{k}", ("ma", "rsi")[k % 2], names[a],
                         0.5 + k / 100, f"reason {k}", Decimal("1.0845") + k)
            for k, a in enumerate(actions)]


def dump(database, table: str, order: str, columns: str = "*") -> list[tuple]:
    with database.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY {order}"))]


def stored(database) -> tuple[list[tuple], list[tuple]]:
    return (dump(database, "signals", "id"),
            dump(database, "signal_counts", "account, strategy, signal, executed"))


@pytest.fixture
def twins(url, tmp_path, pg_cluster):
    """Two empty stores on the backend of `url`: one fed one signal at a time, one fed batches."""
    name = None
    if url.startswith("sqlite"):
        second = f"sqlite:///{tmp_path}/twin.db"
    else:  # a second fresh database on the same cluster
        name = f"test_{uuid.uuid4().hex[:16]}"
        second = pg_cluster.create_database(name)
    one, other = init_db(url), init_db(second)
    yield one, other
    one.dispose()
    other.dispose()
    if name is not None:
        pg_cluster.drop_database(name)


def test_a_batch_stores_what_one_call_per_signal_stores(twins):
    single, batched = twins
    one_by_one, at_once = Repository(single), Repository(batched)
    for cycle in ("c1", "c2", "c3"):
        with one_by_one.unit():
            ids = [one_by_one.record_signal(rec) for rec in signals(cycle)]
        with at_once.unit():
            assert at_once.record_signals(signals(cycle)) == ids  # the same ids, in order
    one_by_one.mark_signal_executed(ids[1])
    at_once.mark_signal_executed(ids[1])
    assert stored(batched) == stored(single)
    # Three HOLDs of one strategy per batch: summed into one counter upsert, 9 after three batches.
    assert dump(batched, "signal_counts", "strategy, signal, executed", "strategy, signal, executed, count") == [
        ("ma", "HOLD", False, 9), ("rsi", "BUY", False, 2), ("rsi", "BUY", True, 1), ("rsi", "SELL", False, 3)]


def test_a_repeated_batch_gives_the_stored_ids_and_a_changed_signal_is_refused_where_one_call_would_be(twins):
    single, batched = twins
    one_by_one, at_once = Repository(single), Repository(batched)
    first = at_once.record_signals(signals("c1"))
    assert [one_by_one.record_signal(rec) for rec in signals("c1")] == first
    # A replay, also mixed with new ones: the stored ids, nothing twice, counters moved for the new ones only.
    replayed = [*signals("c1")[:2], *signals("c2", "HS")]
    assert at_once.record_signals(replayed) == [one_by_one.record_signal(rec) for rec in replayed]
    assert stored(batched) == stored(single)

    # New signals around one stored before with other content: the ones before it are stored, it is refused.
    changed = [*signals("c3", "HB"), replace(signals("c1")[2], reason="other"), *signals("c4", "H")]
    with pytest.raises(DuplicateSignal):
        at_once.record_signals(changed)
    with pytest.raises(DuplicateSignal):
        for rec in changed:
            one_by_one.record_signal(rec)
    # The same rows and counters; on PostgreSQL the undone batch's sequence values are skipped
    # (as after any refused INSERT), so there the ids of the rows stored before the refusal differ.
    without_ids = [lambda rows: [row[1:] for row in rows], lambda rows: rows]
    assert [drop(part) for drop, part in zip(without_ids, stored(batched), strict=True)] \
        == [drop(part) for drop, part in zip(without_ids, stored(single), strict=True)]
    assert len(stored(batched)[0]) == 9
    if batched.backend == "sqlite":  # the undone batch's rows were deleted: their ids are handed out again
        assert stored(batched) == stored(single)


def test_a_batch_that_fails_after_its_insert_leaves_nothing_in_the_unit(twins, monkeypatch):
    database, _ = twins
    repo = Repository(database)
    repo.record_signals(signals("c1"))
    before = stored(database)

    def broken(*_args, **_kwargs):
        raise OperationalError("INSERT INTO signal_counts", {}, ConnectionResetError("connection reset by peer"))

    monkeypatch.setattr("db.signal_counts.bump_many", broken)
    with pytest.raises(OperationalError), repo.unit():  # the unit commits what its calls stored: none of these
        repo.record_signals(signals("c2"))
    monkeypatch.undo()
    assert stored(database) == before
    ids = repo.record_signals(signals("c2"))
    if database.backend == "sqlite":  # deleted by hand (no SAVEPOINT): the ids it would have had
        assert ids == [6, 7, 8, 9, 10]
    assert len(stored(database)[0]) == 10 and sum(row[-1] for row in stored(database)[1]) == 10


class LostCommitRepository(Repository):
    """A real Repository whose next commit fails with a connection error, after landing or not."""

    def __init__(self, database, landed):
        super().__init__(database)
        self.landed, self.fail_next_commit = landed, False

    def commit(self, durable=True):
        if self.fail_next_commit:
            self.fail_next_commit = False
            if self.landed:
                super().commit(durable)
            else:
                self.rollback()
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset by peer"))
        super().commit(durable)


@pytest.mark.parametrize("landed", [False, True])
def test_a_spooled_batch_whose_unit_is_lost_replays_to_the_same_rows(tmp_path, landed):
    control, database = init_db(f"sqlite:///{tmp_path}/control.db"), init_db(f"sqlite:///{tmp_path}/store.db")
    try:
        control_repo = Repository(control)
        for cycle in ("c1", "c2"):
            control_ids = [control_repo.record_signal(rec) for rec in signals(cycle)]
        control_repo.mark_signal_executed(control_ids[1])

        repo = LostCommitRepository(database, landed)
        breaker = CircuitBreaker("store", 1, 30.0, is_failure=is_connectivity_error)
        store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=breaker)
        statements = []
        event.listen(database.engine, "before_cursor_execute",
                     lambda _c, _cur, sql, *_a: statements.append(sql) if "INSERT INTO signals" in sql else None)
        with store.unit():
            store.record_signals(signals("c1"))
        assert len(statements) == 1  # five signals, one INSERT
        repo.fail_next_commit = True
        with store.unit():
            ids = store.record_signals(signals("c2"))
            assert ids == control_ids  # real ids, handed out inside the transaction that is then lost
            store.mark_signal_executed(ids[1])
        assert store.depth == 6  # one spooled record_signal per signal (with its id), then the mark
        assert [entry.method for entry in store.spool.head(10)] == ["record_signal"] * 5 + ["mark_signal_executed"]
        store.breaker.reset()
        assert store.flush() == 6 and store.depth == 0 and store.rejected() == []
        assert stored(database) == stored(control)
        store.close()
    finally:
        control.dispose()
        database.dispose()


class CallLog:
    def __init__(self):
        self.calls, self.next_id = [], 1

    def record_signals(self, recs):
        self.calls.append([rec.signal for rec in recs])
        ids = list(range(self.next_id, self.next_id + len(recs)))
        self.next_id += len(recs)
        return ids


def test_holds_wait_for_the_next_signal_that_needs_its_id_or_the_flush():
    store = CallLog()
    pending = PendingSignals(store)
    hold, buy, sell = (signals("c", a)[0] for a in "HBS")
    pending.hold(hold)
    pending.hold(hold)
    assert store.calls == []
    assert pending.record(buy) == 3 and store.calls == [["HOLD", "HOLD", "BUY"]]  # its id, after the HOLDs'
    assert pending.record(sell) == 4 and store.calls[-1] == ["SELL"]
    pending.flush()  # nothing waiting: no store call
    pending.hold(hold)
    pending.flush()
    assert store.calls[-1] == ["HOLD"] and len(store.calls) == 3


# Every column but the random ids (cycle, correlation, client order id) and the measured latencies.
SIGNAL_COLUMNS = "id, account, time, symbol, strategy, signal, confidence, reason, price, executed"
ORDER_COLUMNS = ("id, account, signal_id, symbol, strategy, side, purpose, position_ticket, volume, requested_price, "
                 "sl, tp, status, retcode, broker_order, broker_deal, fill_price, fill_volume")


def _run_bot(tmp_path, name, batched, cycles=8):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/{name}.db", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
           "CYCLE_SECONDS": "60", "SYMBOLS": "EURUSD,GBPUSD", "STRATEGIES": "ma_crossover,rsi_reversion",
           "STORE_SPOOL_PATH": str(tmp_path / f"{name}-spool.db"),
           "ORDER_QUEUE_PATH": str(tmp_path / f"{name}-queue.db")}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=5, stepped=True), stepped=True)
    app.connect()
    inserts = []
    event.listen(app.database.engine, "before_cursor_execute",
                 lambda _c, _cur, sql, *_a: inserts.append(1) if sql.startswith("INSERT INTO signals") else None)
    if not batched:  # the store as it was: one record_signal per signal, at the signal
        app.engine.signal_log = PendingSignals(type("OneByOne", (), {"record_signal": app.repo.record_signal})())
    reports = []
    try:
        for _ in range(cycles):
            reports.append(app.engine.run_cycle())
            app.pacer.wait()
        rows = {"signals": dump(app.database, "signals", "id", SIGNAL_COLUMNS),
                "signal_counts": dump(app.database, "signal_counts", "strategy, signal, executed"),
                "orders": dump(app.database, "orders", "id", ORDER_COLUMNS)}
    finally:
        app.close()
    return reports, rows, len(inserts)


def test_the_bot_stores_the_same_rows_with_one_signal_write_per_cycle(tmp_path):
    # The stepped simulator's clock and prices are seeded; the wall clock is only in ids and latencies.
    reports, batched, inserts = _run_bot(tmp_path, "batched", batched=True)
    assert all(r.ok for r in reports), [r.error for r in reports]
    assert sum(sum(r.orders.values()) for r in reports) >= 1  # a run that also sends orders (seed 5)
    _, one_by_one, single_inserts = _run_bot(tmp_path, "single", batched=False)
    signals_count = sum(sum(r.signals.values()) for r in reports)
    assert single_inserts == signals_count == 4 * len(reports)
    buys_and_sells = sum(r.signals["BUY"] + r.signals["SELL"] for r in reports)
    assert inserts <= len(reports) + buys_and_sells  # one INSERT a cycle, plus one per BUY/SELL
    assert batched == one_by_one and len(batched["orders"]) >= 1


def test_a_cycle_failing_midway_stores_the_signals_decided_before_the_failure(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/store.db", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
           "CYCLE_SECONDS": "60", "SYMBOLS": "EURUSD,GBPUSD", "STRATEGIES": "ma_crossover,rsi_reversion",
           "STORE_SPOOL_PATH": str(tmp_path / "spool.db"), "ORDER_QUEUE_PATH": str(tmp_path / "queue.db")}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=5, stepped=True), stepped=True)
    app.connect()
    try:
        assert app.engine.run_cycle().ok
        app.pacer.wait()
        closed_bars = app.engine.runner.closed_bars

        def second_symbol_breaks(gateway, symbol, *args):
            if symbol == "GBPUSD":
                raise RuntimeError("a bug while reading GBPUSD's bars")
            return closed_bars(gateway, symbol, *args)

        app.engine.runner.closed_bars = second_symbol_breaks
        report = app.engine.run_cycle()
        assert not report.ok and "GBPUSD" in report.error
        assert sum(report.signals.values()) == 2  # EURUSD's two strategies decided before the failure
        with app.database.engine.connect() as connection:
            rows = connection.execute(text("SELECT symbol, strategy FROM signals WHERE cycle_id = :c ORDER BY id"),
                                      {"c": report.cycle_id}).all()
        assert [tuple(row) for row in rows] == [("EURUSD", "ma_crossover"), ("EURUSD", "rsi_reversion")]
    finally:
        app.close()
