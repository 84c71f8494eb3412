"""Shared pytest fixtures. Each section is owned by one part of the project and is self-contained.

Imports stay at the top (ruff E402); add yours below, then your section at the end.
"""

import tempfile
import uuid

import pytest

# db/: throwaway PostgreSQL helper (tests/pgcluster.py)
from pgcluster import PgCluster, PgClusterError

# ---------------------------------------------------------------------------------------
# Throwaway PostgreSQL (owner: db/). `pg_cluster` is one server per session; `postgres_url`
# gives each test a fresh, empty database owned by the password-protected role `tradewatch`.
# Missing server binaries FAIL the test with instructions (never skip): `make sysdeps`.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL server for the whole test session, on a free port, deleted afterwards."""
    # Not tmp_path: pytest's temp root is private to root, and the server runs as `postgres`.
    cluster = PgCluster(tempfile.mkdtemp(prefix="tradewatch-pg-"))
    try:
        cluster.start()
    except PgClusterError as exc:
        cluster.destroy()
        pytest.fail(f"cannot start the throwaway PostgreSQL: {exc}", pytrace=False)
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(pg_cluster):
    """URL of a new empty database for this test (dropped afterwards, even if connections linger)."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = pg_cluster.create_database(name)
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A store URL on each backend in turn: a SQLite file, then a fresh PostgreSQL database.
    A test module defining its own `url` fixture overrides this one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_url")


# ---------------------------------------------------------------------------------------
# end of the PostgreSQL section
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# A scratch SQLite store (owner: db/): a file database with one table `t (x integer)`, for tests
# of the store's own mechanics (commit counting, WAL fsyncs). Disposed after the test.
# ---------------------------------------------------------------------------------------


@pytest.fixture
def scratch_sqlite(tmp_path):
    from sqlalchemy import text

    from db import Database

    database = Database(f"sqlite:///{tmp_path}/scratch.db")
    with database.engine.begin() as conn:
        conn.execute(text("create table t (x integer)"))
    yield database
    database.dispose()
