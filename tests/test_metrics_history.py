"""The bot's metrics history on SQLite and PostgreSQL: a minute written in pieces adds up to the same
row, maxima and last samples replace, listing and retention by time, one-line refusals."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from db import Repository, init_db
from db.metrics_history import MetricsMinute

ACCOUNT = "8001"
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = init_db(url)
    yield Repository(database)
    database.dispose()


def piece(moment: datetime, **values) -> MetricsMinute:
    return MetricsMinute(account=ACCOUNT, minute=moment, **values)


def test_a_minute_flushed_in_pieces_adds_up(repo):
    rng = random.Random(4)
    pieces = []
    for k in range(6):
        pieces.append(
            piece(
                T0 + timedelta(seconds=7 * k, microseconds=k),  # anywhere inside the minute
                cycles=rng.randrange(1, 5),
                cycle_seconds_sum=rng.randrange(1, 100) / 8,
                cycle_seconds_max=rng.randrange(1, 100) / 8,
                signals=rng.randrange(10),
                orders=rng.randrange(3),
                trades_executed=rng.randrange(2),
                broker_latency_seconds_sum=rng.randrange(1, 50) / 16,
                broker_calls=rng.randrange(1, 20),
                memory_rss_bytes=100_000_000 + k,
                cpu_percent=None if k == 5 else 10.0 + k,  # the last piece has no CPU sample
            )
        )
    for p in pieces:
        repo.record_metrics_minute(p)
    (stored,) = repo.metrics_history(ACCOUNT)
    assert stored.minute == T0
    for name in ("cycles", "signals", "orders", "trades_executed", "broker_calls"):
        assert getattr(stored, name) == sum(getattr(p, name) for p in pieces), name
    for name in ("cycle_seconds_sum", "broker_latency_seconds_sum"):
        assert getattr(stored, name) == pytest.approx(sum(getattr(p, name) for p in pieces), rel=1e-12), name
    assert stored.cycle_seconds_max == max(p.cycle_seconds_max for p in pieces)
    assert stored.memory_rss_bytes == 100_000_005  # the last sample
    assert stored.cpu_percent == 14.0  # the last sample there was


def test_history_lists_minutes_in_order_within_bounds_and_prunes(repo):
    for k in (3, 0, 2, 1, 4):
        repo.record_metrics_minute(piece(T0 + timedelta(minutes=k), cycles=k))
    repo.record_metrics_minute(MetricsMinute(account="other", minute=T0, cycles=9))
    assert [m.cycles for m in repo.metrics_history(ACCOUNT)] == [0, 1, 2, 3, 4]
    window = repo.metrics_history(ACCOUNT, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert [m.minute for m in window] == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    plus_two = timezone(timedelta(hours=2))
    assert repo.metrics_history(ACCOUNT, since=(T0 + timedelta(minutes=4)).astimezone(plus_two))[0].cycles == 4
    assert repo.prune_metrics_history(ACCOUNT, older_than=T0 + timedelta(minutes=2)) == 2
    assert [m.cycles for m in repo.metrics_history(ACCOUNT)] == [2, 3, 4]
    assert [m.cycles for m in repo.metrics_history("other")] == [9]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"minute": datetime(2026, 1, 5, 10, 0)}, "timezone-aware"),
        ({"cycles": -1}, "cycles must not be negative"),
        ({"cycles": 1.5}, "cycles must be int"),
        ({"cpu_percent": float("nan")}, "cpu_percent must be finite"),
        ({"account": "x" * 33}, "account is longer than 32"),
    ],
)
def test_bad_values_are_refused_in_one_line(changes, message):
    with pytest.raises((TypeError, ValueError), match=message) as caught:
        MetricsMinute(**{"account": ACCOUNT, "minute": T0, **changes})
    assert "\n" not in str(caught.value)


def test_listing_refuses_naive_bounds(repo):
    with pytest.raises(ValueError, match="since must be timezone-aware"):
        repo.metrics_history(ACCOUNT, since=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="older_than must be timezone-aware"):
        repo.prune_metrics_history(ACCOUNT, datetime(2026, 1, 1))


def test_minute_rows_in_a_unit_share_its_commit_and_one_statement_per_backend(repo):
    """The engine writes a closed minute inside its cycle's unit (no SAVEPOINT on SQLite): the pieces add
    up once it commits; the upsert is built once per backend, not per row (issue 16)."""
    from db import metrics_history

    metrics_history._record_statement.cache_clear()
    metrics_history._sqlite_rows.cache_clear()
    with repo.unit():
        for k in range(3):
            repo.record_metrics_minute(piece(T0 + timedelta(seconds=k), cycles=2, broker_calls=k))
    (stored,) = repo.metrics_history(ACCOUNT)
    assert (stored.cycles, stored.broker_calls) == (6, 3)
    built = metrics_history._sqlite_rows if repo._sqlite else metrics_history._record_statement
    assert (built.cache_info().misses, built.cache_info().hits) == (1, 2)


def test_on_sqlite_the_driver_path_stores_what_sqlalchemys_statement_stores(tmp_path):
    """The minute upsert through db.sqlite_rows and the same statement through SQLAlchemy: the same rows,
    value for value and type for type, pieces adding up, None samples keeping the stored one."""
    import sqlite3

    from db import metrics_history

    pieces = [piece(T0 + timedelta(seconds=s), cycles=1 + s % 3, cycle_seconds_sum=s / 8, cycle_seconds_max=(s % 4) / 4,
                    signals=s, orders=s % 2, trades_executed=s % 2, broker_latency_seconds_sum=s / 16, broker_calls=s,
                    memory_rss_bytes=None if s % 3 == 0 else 10**8 + s, cpu_percent=None if s % 2 else s / 3)
              for s in range(0, 150, 7)]  # three minutes
    rows = []
    for driver in (True, False):
        database = init_db(f"sqlite:///{tmp_path}/{driver}.db")
        try:
            with database.engine.begin() as connection:
                for p in pieces:
                    if driver:
                        metrics_history.record_minute(connection, p)
                    else:
                        values = {name: getattr(p, name) for name in MetricsMinute.__dataclass_fields__}
                        values["minute"] = metrics_history.truncate_to_minute(p.minute)
                        connection.execute(metrics_history._record_statement("sqlite"), values)
        finally:
            database.dispose()
        with sqlite3.connect(f"{tmp_path}/{driver}.db") as db:
            rows.append(db.execute("SELECT *, typeof(minute), typeof(cpu_percent) FROM metrics_history "
                                   "ORDER BY minute").fetchall())
    assert len(rows[0]) == 3 and rows[0] == rows[1]
