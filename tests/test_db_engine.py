"""URL resolution and redaction, engine settings per backend, sessions, ping, and surviving a server restart."""

import logging

import psycopg2
import pytest
from pgcluster import PgClusterError, find_bin_dir
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import QueuePool

from db import DEFAULT_URL, Database, init_db, redact_url, resolve_url
from db.models import SignalModel


def test_default_url_is_the_sqlite_file_under_data(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert str(resolve_url()) == DEFAULT_URL == "sqlite:///data/tradewatch.db"
    monkeypatch.setenv("DATABASE_URL", "")
    assert str(resolve_url()) == DEFAULT_URL
    monkeypatch.chdir(tmp_path)
    with init_db() as database:
        assert database.backend == "sqlite"
    assert (tmp_path / "data" / "tradewatch.db").is_file()


def test_database_url_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:pw@db.example:5432/tradewatch")
    assert resolve_url().drivername == "postgresql+psycopg2"
    assert resolve_url("sqlite:////var/lib/tw.db").database == "/var/lib/tw.db"


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@h/d", "postgresql+psycopg2"),
        ("postgres://u:p@h/d", "postgresql+psycopg2"),
        ("postgresql+psycopg2://u:p@h/d", "postgresql+psycopg2"),
        ("sqlite:///x.db", "sqlite"),
    ],
)
def test_postgres_urls_use_psycopg2(given, driver):
    assert resolve_url(given).drivername == driver


def test_bad_urls_are_refused_in_one_line_without_the_password():
    with pytest.raises(ValueError, match="unsupported database backend 'mysql'") as refused:
        resolve_url("mysql://root:hunter2@db/x")
    assert "hunter2" not in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="not a valid database URL") as garbage:
        resolve_url("host=db password=hunter2")
    assert "hunter2" not in str(garbage.value)


def test_redact_url_hides_passwords():
    assert redact_url("postgresql://bot:s3cr%40t@db:5432/tw") == "postgresql://bot:***@db:5432/tw"
    assert "s3cr" not in redact_url("postgresql://bot@db/tw?password=s3cret&sslmode=require")
    assert "sslmode=require" in redact_url("postgresql://bot@db/tw?password=s3cret&sslmode=require")
    assert redact_url("sqlite:///data/tradewatch.db") == "sqlite:///data/tradewatch.db"
    assert redact_url("host=db password=s3cret") == "<unparseable database URL>"
    assert "s3cr" not in repr(Database("postgresql://bot:s3cret@127.0.0.1:1/tw"))


def test_sqlite_is_durable_and_strict(tmp_path):
    with init_db(f"sqlite:///{tmp_path}/nested/dir/store.db") as database:
        with database.engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("synchronous") == 1  # NORMAL: db.walsync fsyncs the WAL after each commit that wrote
            assert pragma("busy_timeout") == 15000
            assert connection.connection.dbapi_connection.wal_sync is database.engine.wal_sync
    assert (tmp_path / "nested" / "dir" / "store.db").is_file()


def test_in_memory_sqlite_keeps_one_database():
    with init_db("sqlite://") as database:
        assert database.ping()


def test_postgres_pool_pings_and_uses_the_password(postgres_url, pg_cluster):
    with Database(postgres_url) as database:
        assert isinstance(database.engine.pool, QueuePool)
        assert database.engine.pool._pre_ping is True
        assert database.engine.dialect.driver == "psycopg2"
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT current_user")).scalar_one() == "tradewatch"
            assert connection.execute(text("SHOW application_name")).scalar_one() == "tradewatch"
    wrong = postgres_url.replace(pg_cluster.password, "wrong-password")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong.replace("postgresql+psycopg2", "postgresql"))


def test_session_commits_on_success_and_rolls_back_on_error(tmp_path):
    from datetime import UTC, datetime

    def signal(cycle: str) -> SignalModel:
        return SignalModel(
            account="1",
            time=datetime.now(UTC),
            cycle_id=cycle,
            correlation_id="c",
            symbol="EURUSD",
            strategy="s",
            signal="HOLD",
            confidence=0.0,
            reason="",
        )

    with init_db(f"sqlite:///{tmp_path}/s.db") as database:
        with database.session() as session:
            session.add(signal("kept"))
        with pytest.raises(RuntimeError), database.session() as session:
            session.add(signal("dropped"))
            session.flush()
            raise RuntimeError("boom")
        with pytest.raises(IntegrityError), database.session() as session:
            session.add(signal("kept"))
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT cycle_id FROM signals")).scalars().all() == ["kept"]


def test_ping_false_when_unreachable_and_logs_no_password(caplog, pg_cluster):
    unreachable = pg_cluster.url.replace(f":{pg_cluster.port}/", ":1/")
    with caplog.at_level(logging.WARNING, logger="db"), Database(unreachable) as database:
        assert database.ping() is False
    assert "not usable" in caplog.text
    assert pg_cluster.password not in caplog.text


def test_ping_false_on_a_read_only_database(postgres_url, pg_cluster):
    with init_db(postgres_url) as database:
        assert database.ping() is True
        name = database.url.database
        pg_cluster.admin_execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        database.dispose()  # the setting applies to new sessions
        assert database.ping() is False


def test_pool_recovers_after_the_server_restarts(postgres_url, pg_cluster):
    with init_db(postgres_url) as database:
        with database.engine.connect() as connection:
            before = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        pg_cluster.restart()  # the pooled connection is now dead
        with database.engine.connect() as connection:
            after = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert after != before
        assert database.ping() is True


def test_missing_postgres_binaries_are_reported_with_the_fix(tmp_path):
    (tmp_path / "15" / "bin").mkdir(parents=True)  # a major version without initdb
    with pytest.raises(PgClusterError, match="make sysdeps"):
        find_bin_dir(str(tmp_path))
    assert find_bin_dir().name == "bin"  # the real one, which the rest of the suite uses
