"""The spooled store: writes survive a database outage in a durable spool and land, in order, exactly once.

Real PostgreSQL (stopped and started under the bot) and SQLite; a "flaky"
Repository subclass switches connectivity off, or crashes after N committed
writes, to interrupt a flush at every point.
"""

import functools
import inspect
import os
import subprocess
import sys
import textwrap
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from signal import SIGKILL

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.store import CircuitBreaker, SpooledRepository, StoreUnavailable, codec, is_connectivity_error
from bot.store.spool import is_write_method
from db import (
    AccountSnapshot,
    DailyPerformance,
    DealRecord,
    DuplicateClientOrderId,
    OrderIntent,
    OrderOutcome,
    OutcomeConflict,
    PositionSnapshot,
    Repository,
    SignalRecord,
    TradeClose,
    TradeOpen,
    init_db,
)

ACCOUNT = "5012345"
T0 = datetime(2025, 3, 14, 9, 30, 0, 123456, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]
TABLES = ("signals", "orders", "deals", "trades", "account_snapshots", "position_snapshots", "daily_performance")


# -- a realistic sequence of writes -------------------------------------------------------------------


def signal(k):
    return SignalRecord(ACCOUNT, T0 + timedelta(minutes=k), f"cyc-{k}", f"corr-{k}", "EURUSD", "ma_cross", "BUY",
                        0.731, "fast MA crossed above slow MA", Decimal("1.084530"))


def intent(k, signal_id):
    return OrderIntent(f"tw-{k:04d}", ACCOUNT, f"corr-{k}", signal_id, "EURUSD", "ma_cross", "BUY", "open", None,
                       Decimal("0.10"), Decimal("1.08453"), Decimal("1.08000"), Decimal("1.09500"), 20, 240001,
                       f"tw-{k:04d}", T0 + timedelta(minutes=k))


def outcome(k, status="filled"):
    filled = status == "filled"
    return OrderOutcome(f"tw-{k:04d}", status, 10009 if filled else None, 7000 + k if filled else None,
                        8000 + k if filled else None, Decimal("1.08455") if filled else None,
                        Decimal("0.10") if filled else None, "done" if filled else "timeout",
                        T0 + timedelta(minutes=k, seconds=1))


def deal(k, entry=0, ticket=None):
    return DealRecord(ACCOUNT, ticket or (8000 + k if entry == 0 else 18000 + k), 7000 + k, 9000 + k, "EURUSD",
                      entry, entry, Decimal("0.10"), Decimal("1.08455") if entry == 0 else Decimal("1.09500"),
                      Decimal("0.00") if entry == 0 else Decimal("104.50"), Decimal("-0.35"), Decimal("0.00"),
                      240001, f"tw-{k:04d}", 3, T0 + timedelta(minutes=k, hours=entry * 3))


def trade(k):
    return TradeOpen(ACCOUNT, 9000 + k, "EURUSD", "BUY", Decimal("0.10"), Decimal("1.08455"),
                     T0 + timedelta(minutes=k), Decimal("1.08000"), Decimal("1.09500"), "ma_cross", 0.731,
                     f"tw-{k:04d}", 240001, f"corr-{k}")


def close(k):
    return TradeClose(ACCOUNT, 9000 + k, Decimal("1.09500"), T0 + timedelta(minutes=k, hours=3), Decimal("104.50"),
                      Decimal("-0.70"), Decimal("-1.234"), Decimal("104.5"))


def snapshot(k):
    return AccountSnapshot(ACCOUNT, T0 + timedelta(minutes=k), Decimal("10000.00") + k, Decimal("10034.50") + k,
                           Decimal("34.50"), Decimal("43.38"), Decimal("9991.12"), Decimal("23131.81"), 1)


def positions(k):
    return [PositionSnapshot(9000 + k, "EURUSD", "BUY", Decimal("0.10"), Decimal("1.08455"), Decimal("1.08600"),
                             Decimal("1.08"), None, Decimal("14.50"), Decimal("-0.12"))]


def day(k):
    return DailyPerformance(ACCOUNT, date(2025, 3, 14), k + 1, k + 1, 0, Decimal("102.57") * (k + 1),
                            Decimal("104.5") * (k + 1), 1.0, Decimal("102.57"), Decimal("0.00"), Decimal("0.00"),
                            Decimal("10102.57"), None)


def open_story(store, k, unknown_first=False):
    """One cycle up to an open position: signal -> intent -> outcome -> deal -> open_trade, snapshots."""
    signal_id = store.record_signal(signal(k))
    store.record_order_intent(intent(k, signal_id))
    store.mark_signal_executed(signal_id)
    if unknown_first:
        store.record_order_outcome(outcome(k, "unknown"))
    store.record_order_outcome(outcome(k))
    store.record_deal(deal(k))
    assert store.open_trade(trade(k)) is True
    store.record_account_snapshot(snapshot(k))
    store.record_position_snapshots(ACCOUNT, T0 + timedelta(minutes=k), positions(k))
    return signal_id


def close_story(store, k):
    store.record_deal(deal(k, entry=1))
    assert store.close_trade(close(k)) is True
    store.upsert_daily_performance(day(k))


def full_story(store, k, unknown_first=False):
    open_story(store, k, unknown_first)
    close_story(store, k)


def dump(database):
    """Every row of the trade tables without surrogate ids (orders.signal_id as the signal's cycle)."""
    tables = {}
    with database.engine.connect() as connection:
        cycles = dict(connection.execute(text("SELECT id, cycle_id FROM signals")).all())
        for table in TABLES:
            rows = []
            for row in connection.execute(text(f"SELECT * FROM {table}")).mappings():
                row = dict(row)
                row.pop("id", None)
                if table == "orders":
                    row["signal_id"] = cycles.get(row["signal_id"], row["signal_id"])
                rows.append(tuple(sorted((k, str(v)) for k, v in row.items())))
            tables[table] = sorted(rows)
    return tables


# -- test doubles ------------------------------------------------------------------------------------


class Crash(BaseException):
    """A kill between the database commit and the spool delete (not an Exception: nothing catches it)."""


class FlakyRepository(Repository):
    """A real Repository whose connectivity can be cut, which counts calls and can crash after N writes."""

    def __init__(self, database):
        super().__init__(database)
        self.down = False
        self.calls = []
        self.crash_after = None


def _flaky(name):
    real = getattr(Repository, name)

    @functools.wraps(real)
    def method(self, *args, **kwargs):
        if self.down:
            if name == "ping":
                return False
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        result = real(self, *args, **kwargs)
        if is_write_method(name):
            self.calls.append(name)
            if self.crash_after is not None:
                self.crash_after -= 1
                if self.crash_after == 0:
                    raise Crash(f"killed after {name}")
        return result

    return method


PUBLIC = [name for name, _ in inspect.getmembers(Repository, inspect.isfunction) if not name.startswith("_")]
# Opening a unit or dropping its transaction never needs the server; committing it does (and may fail).
for _name in set(PUBLIC) - {"unit", "rollback"}:
    setattr(FlakyRepository, _name, _flaky(_name))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def a_breaker(threshold=2, clock=None):
    return CircuitBreaker("store", threshold, 30.0, clock=clock or FakeClock(), is_failure=is_connectivity_error)


@pytest.fixture
def sqlite_db(tmp_path):
    database = init_db(f"sqlite:///{tmp_path}/store.db")
    yield database
    database.dispose()


@pytest.fixture
def control(tmp_path):
    database = init_db(f"sqlite:///{tmp_path}/control.db")
    yield database
    database.dispose()


# -- API -----------------------------------------------------------------------------------------------


def _parameters(method):
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]


def test_every_repository_method_is_there_with_the_same_parameters(sqlite_db, tmp_path):
    repo = Repository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"))
    for name in PUBLIC:  # named ones and those Repository gained later (served through __getattr__)
        assert callable(getattr(store, name, None)), f"SpooledRepository lacks {name}"
        assert _parameters(getattr(store, name)) == _parameters(getattr(repo, name)), name


def test_methods_repository_gained_later_are_spooled_too(sqlite_db, tmp_path):
    later = [name for name in PUBLIC if not any(name in vars(cls) for cls in SpooledRepository.__mro__[:-1])]
    writes = [name for name in later if is_write_method(name)]
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    repo.down = True
    for name in later:
        if name in writes:
            continue
        with pytest.raises(StoreUnavailable, match=name):  # reads the mirror does not know need the database
            getattr(store, name)(*[ACCOUNT, T0][: len(inspect.signature(getattr(repo, name)).parameters)])
    assert store.depth == 0


def test_codec_keeps_decimals_datetimes_dates_and_records_exact():
    values = {"rec": replace(close(1), swap=Decimal("-1.2300")), "d": day(2), "when": T0.astimezone(),
              "positions": positions(3), "n": 7, "none": None}
    back = codec.loads(codec.dumps(values))
    assert back == values
    assert str(back["rec"].swap) == "-1.2300"
    assert back["when"].utcoffset() == values["when"].utcoffset()


# -- outage on a real PostgreSQL -------------------------------------------------------------------------


def start_again(cluster):
    """Start a stopped PgCluster on its old port (PgCluster.start would pick a new one)."""
    cluster._pg_ctl("start", "-w", "-t", "60", "-l", str(cluster.log_file), "-o", cluster._server_options())


@contextmanager
def postgres_down(cluster):
    cluster.stop()
    try:
        yield
    finally:
        start_again(cluster)


def test_postgres_outage_spools_answers_reads_and_flushes_to_the_same_rows(pg_cluster, postgres_url, tmp_path):
    control_name = f"control_{uuid.uuid4().hex[:12]}"
    control_db = init_db(pg_cluster.create_database(control_name))
    database = init_db(postgres_url)
    try:
        control_repo = Repository(control_db)
        for k in range(4):
            full_story(control_repo, k, unknown_first=k == 2)
        open_story(control_repo, 4)

        clock, depths = FakeClock(), []
        store = SpooledRepository(Repository(database), str(tmp_path / "spool.db"), breaker=a_breaker(2, clock),
                                  on_depth=depths.append)
        full_story(store, 0)
        # What the engine reads at start-up; the mirror learns the database's state from it.
        assert store.open_trades(ACCOUNT) == []
        assert store.orders_by_status(ACCOUNT, "unknown") == []
        assert store.known_deal_tickets(ACCOUNT, T0 - timedelta(days=7)) == {8000, 18000}
        assert store.last_account_snapshot(ACCOUNT) == snapshot(0)
        assert store.last_deal_time(ACCOUNT) == deal(0, entry=1).time
        assert store.depth == 0

        with postgres_down(pg_cluster):
            assert store.ping() is False and store.spool_ping() is True
            open_story(store, 1)
            assert store.breaker.state == "open"  # 2 failures: later calls do not even try
            close_story(store, 1)
            signal_id = store.record_signal(signal(2))
            assert signal_id < 0
            store.record_order_intent(intent(2, signal_id))
            store.mark_signal_executed(signal_id)
            store.record_order_outcome(outcome(2, "unknown"))
            # Reads while down: the database's last known state merged with the spooled writes.
            pending = store.orders_by_status(ACCOUNT, "unknown")
            assert [o.client_order_id for o in pending] == ["tw-0002"] and pending[0].signal_id == signal_id
            store.record_order_outcome(outcome(2))
            row = store.get_order("tw-0002")
            assert (row.status, row.fill_price, row.broker_deal) == ("filled", Decimal("1.084550"), 8002)
            assert store.orders_by_status(ACCOUNT, "unknown") == []
            store.record_deal(deal(2))
            store.open_trade(trade(2))
            store.record_account_snapshot(snapshot(2))
            store.record_position_snapshots(ACCOUNT, T0 + timedelta(minutes=2), positions(2))
            assert [t.ticket for t in store.open_trades(ACCOUNT)] == [9002]
            closed = store.get_trade(ACCOUNT, 9001)
            assert closed.is_closed and closed.profit == Decimal("102.57")  # -1.234 swap stored as -1.23
            assert store.known_deal_tickets(ACCOUNT, T0 - timedelta(days=1)) >= {8000, 18000, 8001, 18001, 8002}
            assert store.last_account_snapshot(ACCOUNT) == snapshot(2)
            assert store.last_deal_time(ACCOUNT) == deal(1, entry=1).time
            with pytest.raises(StoreUnavailable, match="trades_by_correlation"):
                store.trades_by_correlation("corr-1")
            with pytest.raises(StoreUnavailable, match="get_order"):
                store.get_order("never-seen")
            spooled = store.depth
            assert spooled > 15 and depths[-1] == spooled
            clock.now += 30  # the breaker may try again, but the server is still down
            assert store.flush() == 0 and store.depth == spooled and store.breaker.state == "open"

        clock.now += 60
        assert store.ping() is True
        assert store.flush() == spooled
        assert store.depth == 0 and depths[-1] == 0 and store.breaker.state == "closed"
        close_story(store, 2)
        full_story(store, 3, unknown_first=True)
        open_story(store, 4)
        assert dump(database) == dump(control_db)
        assert store.trades_by_correlation("corr-1")[0].profit == Decimal("102.57")
        assert store.rejected() == []
    finally:
        database.dispose()
        control_db.dispose()
        pg_cluster.drop_database(control_name)


# -- ordering, refusals, interrupted flushes (SQLite) ----------------------------------------------------


def test_while_the_spool_is_not_empty_writes_queue_behind_it(sqlite_db, tmp_path):
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(5), auto_flush_seconds=0)
    repo.down = True
    store.record_order_intent(intent(1, None))
    repo.down = False
    store.record_order_outcome(outcome(1))  # the database is back, but the intent is still queued
    assert repo.calls == [] and store.depth == 2
    assert store.flush() == 2
    assert repo.calls == ["record_order_intent", "record_order_outcome"]
    assert Repository(sqlite_db).get_order("tw-0001").status == "filled"


def test_quarantined_records_are_spooled_and_stored_once(sqlite_db, tmp_path):
    """A refused broker record met while the database is down is spooled; replays leave one row."""
    from db import QuarantineRecord

    rec = QuarantineRecord(ACCOUNT, "deal", "ticket 9001", "not_finite", "profit", "profit is nan",
                           '{"profit": "nan"}', "ab" * 16, T0, T0)
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1), auto_flush_seconds=0)
    repo.down = True
    assert store.record_quarantine(rec) is True
    assert store.record_quarantine(replace(rec, received_at=T0 + timedelta(seconds=30))) is True  # next cycle
    assert store.depth == 2
    repo.down = False
    store.breaker.record_success()
    assert store.flush() == 2
    assert [q.fingerprint for q in Repository(sqlite_db).quarantined(ACCOUNT)] == ["ab" * 16]
    assert store.record_quarantine(rec) is False and store.depth == 0


def test_integrity_errors_are_not_spooled(sqlite_db, tmp_path):
    store = SpooledRepository(Repository(sqlite_db), str(tmp_path / "spool.db"), breaker=a_breaker(1))
    store.record_order_intent(intent(1, None))
    with pytest.raises(DuplicateClientOrderId):
        store.record_order_intent(replace(intent(1, None), volume=Decimal("0.20")))
    store.record_order_outcome(outcome(1))
    with pytest.raises(OutcomeConflict):
        store.record_order_outcome(replace(outcome(1), fill_price=Decimal("1.2")))
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_position_snapshots(ACCOUNT, datetime(2025, 1, 1), positions(1))
    assert store.depth == 0 and store.breaker.state == "closed"


def _lost(*_args, **_kwargs):
    raise Crash("killed before the spool deletes were committed")


@pytest.mark.parametrize("crash_after, deletes_lost", [(1, False), (2, False), (5, False), (6, False), (9, False),
                                                       (15, False), (9, True), (20, True)])
def test_an_interrupted_flush_run_again_leaves_the_same_rows(sqlite_db, control, tmp_path, crash_after,
                                                             deletes_lost, monkeypatch):
    chunk = 5  # the drain commits (and then deletes) this many spooled writes per database transaction
    monkeypatch.setattr("bot.store.batches.DELETE_BATCH", chunk)
    control_repo = Repository(control)
    full_story(control_repo, 1)
    full_story(control_repo, 2, unknown_first=True)

    repo = FlakyRepository(sqlite_db)
    spool = str(tmp_path / "spool.db")
    store = SpooledRepository(repo, spool, breaker=a_breaker(1))
    repo.down = True
    full_story(store, 1)
    full_story(store, 2, unknown_first=True)
    queued = store.depth
    repo.down = False
    store.breaker.reset()
    repo.crash_after = crash_after
    if deletes_lost:  # a SIGKILL right after the first chunk's commit: none of its deletes is committed
        store.spool.delete = _lost
    with pytest.raises(Crash):
        store.flush()
    store.close()  # the process is gone; its committed database rows and the spool file remain
    assert len(repo.calls) == (chunk if deletes_lost else crash_after)

    resumed = SpooledRepository(Repository(sqlite_db), spool, breaker=a_breaker(1))
    # The chunk the kill interrupted never committed, so it is replayed whole (as is the first one,
    # committed but not deleted, when the deletes are lost); chunks before it are gone from the spool.
    assert resumed.depth == (queued if deletes_lost else queued - chunk * ((crash_after - 1) // chunk))
    remaining = resumed.depth
    assert resumed.flush() == remaining
    assert resumed.depth == 0 and resumed.rejected() == []
    assert dump(sqlite_db) == dump(control)


def test_a_provisional_signal_id_used_after_the_flush_is_translated(sqlite_db, tmp_path):
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    repo.down = True
    provisional = store.record_signal(signal(1))
    repo.down = False
    store.breaker.reset()
    store.flush()
    # A new process (the mapping comes from the spool file) marks the signal and orders with the old id.
    again = SpooledRepository(Repository(sqlite_db), str(tmp_path / "spool.db"))
    again.mark_signal_executed(provisional)
    again.record_order_intent(intent(1, provisional))
    real = Repository(sqlite_db).record_signal(signal(1))
    assert real > 0 and Repository(sqlite_db).get_order("tw-0001").signal_id == real
    with sqlite_db.engine.connect() as connection:
        assert connection.execute(text("SELECT executed FROM signals")).scalar_one() in (True, 1)


def test_a_spooled_write_the_database_refuses_is_set_aside_not_blocking(sqlite_db, tmp_path):
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    repo.down = True
    store.record_order_outcome(outcome(7))  # no intent was ever recorded: UnknownOrder at flush
    store.record_deal(deal(7))
    repo.down = False
    store.breaker.reset()
    assert store.flush() == 1
    assert store.depth == 0
    assert [(m, e.split(":")[0]) for _, m, e in store.rejected()] == [("record_order_outcome", "UnknownOrder")]
    assert Repository(sqlite_db).known_deal_tickets(ACCOUNT) == {8007}


def test_reads_that_cannot_be_answered_raise_store_unavailable(sqlite_db, tmp_path):
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    repo.down = True
    for read in (lambda: store.open_trades(ACCOUNT), lambda: store.get_trade(ACCOUNT, 1),
                 lambda: store.known_deal_tickets(ACCOUNT), lambda: store.last_deal_time(ACCOUNT),
                 lambda: store.orders_by_status(ACCOUNT, "filled")):
        with pytest.raises(StoreUnavailable, match="store unavailable"):
            read()
    with pytest.raises(ValueError, match="order status"):
        store.orders_by_status(ACCOUNT, "bogus")


# -- durability across a SIGKILL -------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from datetime import UTC, datetime
    from decimal import Decimal
    from bot.store import CircuitBreaker, SpooledRepository
    from db import DealRecord, Repository, init_db
    breaker = CircuitBreaker("store", 1, 3600)
    breaker.record_failure()  # the database is "down" for the whole life of this process
    store = SpooledRepository(Repository(init_db(sys.argv[1])), sys.argv[2], breaker=breaker)
    for k in range(int(sys.argv[3])):
        store.record_deal(DealRecord("5012345", 100 + k, 1, 2, "EURUSD", 0, 0, Decimal("0.01"),
                          Decimal("1.234567"), Decimal("-0.01"), Decimal("0"), Decimal("0"), 1, "c", 0,
                          datetime(2025, 1, 1, tzinfo=UTC)))
    sys.stdout.write("spooled\\n")
    sys.stdout.flush()
    time.sleep(60)
""")


def test_spooled_writes_survive_sigkill(sqlite_db, tmp_path):
    spool = str(tmp_path / "spool.db")
    child = subprocess.Popen([sys.executable, "-c", CHILD, f"sqlite:///{tmp_path}/child.db", spool, "25"],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "spooled"
    finally:
        os.kill(child.pid, SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -SIGKILL
    store = SpooledRepository(Repository(sqlite_db), spool)
    assert store.depth == 25
    assert store.flush() == 25
    assert Repository(sqlite_db).known_deal_tickets("5012345") == set(range(100, 125))
    with sqlite_db.engine.connect() as connection:
        prices = connection.execute(text("SELECT DISTINCT price FROM deals")).scalars().all()
    assert [Decimal(str(p)) for p in prices] == [Decimal("1.234567")]


# -- group commit: a cycle's writes as one unit ----------------------------------------------------------


class LostCommitRepository(Repository):
    """A real Repository whose next commit fails with a connection error, after landing or before."""

    def __init__(self, database, landed):
        super().__init__(database)
        self.landed = landed
        self.fail_next_commit = False

    def commit(self, durable=True):
        if self.fail_next_commit:
            self.fail_next_commit = False
            if self.landed:
                super().commit(durable)  # the commit landed; only its answer was lost
            else:
                self.rollback()
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset by peer"))
        super().commit(durable)


def _counts(database):
    with database.engine.connect() as connection:
        return sorted(connection.execute(text("SELECT account, strategy, signal, executed, count FROM signal_counts")))


@pytest.mark.parametrize("landed", [False, True])
def test_a_cycle_whose_commit_fails_is_spooled_as_one_batch_and_stored_once(sqlite_db, control, tmp_path, landed):
    control_repo = Repository(control)
    for k in (1, 2, 3):
        full_story(control_repo, k, unknown_first=k == 2)

    repo = LostCommitRepository(sqlite_db, landed)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    appends = []
    store.spool.append_many = _recording(appends, store.spool.append_many)
    commits = store.commits
    with store.unit():
        full_story(store, 1)
    assert store.commits == commits + 1 and store.depth == 0  # one cycle, one commit
    repo.fail_next_commit = True
    with store.unit():
        signal_id = store.record_signal(signal(2))
        assert signal_id > 0  # a real id, handed out inside the transaction that is then lost
        store.record_order_intent(intent(2, signal_id))
        store.mark_signal_executed(signal_id)
        store.record_order_outcome(outcome(2, "unknown"))
        store.commit()  # the commit before order_send fails: the batch so far is spooled, in one go
        assert [len(calls) for calls in appends] == [4] and store.depth == 4 and store.breaker.state == "open"
        store.record_order_outcome(outcome(2))  # the rest of the cycle queues behind it
        store.record_deal(deal(2))
        assert store.open_trade(trade(2)) is True
        store.record_account_snapshot(snapshot(2))
        store.record_position_snapshots(ACCOUNT, T0 + timedelta(minutes=2), positions(2))
        close_story(store, 2)
    with store.unit():
        full_story(store, 3)
    queued = store.spool.head(1000)
    store.breaker.reset()
    assert store.flush() == len(queued) and store.depth == 0 and store.rejected() == []
    assert dump(sqlite_db) == dump(control) and _counts(sqlite_db) == _counts(control)
    with sqlite_db.engine.connect() as connection:  # the intent points at its own signal, under the id handed out
        assert connection.execute(text("SELECT signal_id FROM orders WHERE client_order_id = 'tw-0002'")).scalar() \
            == signal_id == connection.execute(text("SELECT id FROM signals WHERE cycle_id = 'cyc-2'")).scalar()

    # The same batch replayed again (a kill after the database committed, before the spool deleted): nothing twice.
    store.spool.append_many([(entry.method, entry.arguments) for entry in queued])
    assert store.flush() == len(queued) and store.rejected() == []
    assert dump(sqlite_db) == dump(control) and _counts(sqlite_db) == _counts(control)


def _recording(calls, method):
    def recorded(batch):
        calls.append(list(batch))
        return method(batch)

    return recorded


def test_the_drain_commits_a_chunk_of_spooled_writes_at_a_time(sqlite_db, tmp_path, monkeypatch):
    monkeypatch.setattr("bot.store.batches.DELETE_BATCH", 8)
    repo = FlakyRepository(sqlite_db)
    store = SpooledRepository(repo, str(tmp_path / "spool.db"), breaker=a_breaker(1))
    repo.down = True
    for k in (1, 2, 3):
        full_story(store, k)
    queued = store.depth
    repo.down = False
    store.breaker.reset()
    commits = store.commits
    assert store.flush() == queued == 3 * 11  # full_story makes 11 writes
    assert store.commits - commits == -(-queued // 8)  # ceil: one transaction per chunk of 8
