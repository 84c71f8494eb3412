"""deploy/postgres/initdb/10-tradewatch-roles.sql on a real PostgreSQL, run by psql as the
postgres image runs it: the bot's role writes, the exporter's reads (and writes only alerts),
Grafana's reads in read-only sessions, a missing password stops it, and a re-run rotates.

Runs its own throwaway cluster: the script changes cluster-wide roles, which the shared
`pg_cluster` fixture's other users rely on.
"""

from __future__ import annotations

import os
import tempfile

import monitoring_helpers as mh
import psycopg2
import pytest
from pgcluster import PgCluster, PgClusterError, find_bin_dir

PASSWORDS = {"TRADEWATCH_DB_PASSWORD": "tw-Pa55'word", "EXPORTER_DB_PASSWORD": "ex-pa55\"word",
             "GRAFANA_DB_PASSWORD": "gr pa55 word"}


@pytest.fixture(scope="module")
def cluster():
    server = PgCluster(tempfile.mkdtemp(prefix="tradewatch-roles-pg-"))
    try:
        server.start()
    except PgClusterError as exc:
        server.destroy()
        pytest.fail(f"cannot start the throwaway PostgreSQL: {exc}", pytrace=False)
    yield server
    server.destroy()


def run_roles_sql(cluster: PgCluster, passwords: dict[str, str]):
    """psql -f the script as the superuser on the tradewatch database, like docker-entrypoint does."""
    psql = find_bin_dir() / "psql"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **passwords}
    return mh.run([str(psql), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-h", str(cluster.socket_dir),
                   "-p", str(cluster.port), "-U", "postgres", "-d", "tradewatch", "-f", str(mh.POSTGRES_ROLES_SQL)],
                  env=env)


def connect(cluster: PgCluster, user: str, password: str):
    connection = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=user, password=password,
                                  dbname="tradewatch", connect_timeout=10)
    connection.autocommit = True
    return connection


def execute(connection, statement: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_a_missing_password_stops_the_script_with_its_name(cluster, missing):
    passwords = {k: v for k, v in PASSWORDS.items() if k != missing}
    result = run_roles_sql(cluster, passwords)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_roles_do_what_their_names_say(cluster):
    result = run_roles_sql(cluster, PASSWORDS)
    assert result.returncode == 0, result.stderr
    bot = connect(cluster, "tradewatch", PASSWORDS["TRADEWATCH_DB_PASSWORD"])
    exporter = connect(cluster, "tradewatch_exporter", PASSWORDS["EXPORTER_DB_PASSWORD"])
    grafana = connect(cluster, "tradewatch_grafana", PASSWORDS["GRAFANA_DB_PASSWORD"])
    try:
        # The bot migrates: it creates tables in the public schema and writes them.
        execute(bot, "CREATE TABLE trades (id bigserial PRIMARY KEY, account text, profit numeric)")
        execute(bot, "CREATE TABLE alerts (id bigserial PRIMARY KEY, fingerprint text, status text)")
        execute(bot, "INSERT INTO trades (account, profit) VALUES ('1001', 12.5)")
        # Readers see tables created after the script ran (default privileges) ...
        assert execute(exporter, "SELECT account FROM trades") == [("1001",)]
        assert execute(grafana, "SELECT count(*) FROM trades") == [(1,)]
        # ... and cannot write them, nor create anything.
        for reader in (exporter, grafana):
            with pytest.raises(psycopg2.Error):
                execute(reader, "INSERT INTO trades (account, profit) VALUES ('x', 1)")
            with pytest.raises(psycopg2.Error):
                execute(reader, "CREATE TABLE mine (x int)")
        # Grafana's sessions are read-only whatever it tries, and time-boxed.
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            execute(grafana, "CREATE TEMP TABLE scratch (x int)")
        assert execute(grafana, "SHOW statement_timeout") == [("30s",)]
        # What the migration creating `alerts` must grant (or a re-run of the script grants):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            execute(exporter, "INSERT INTO alerts (fingerprint, status) VALUES ('f1', 'firing')")
        assert run_roles_sql(cluster, PASSWORDS).returncode == 0
        execute(exporter, "INSERT INTO alerts (fingerprint, status) VALUES ('f1', 'firing')")
        execute(exporter, "UPDATE alerts SET status = 'resolved' WHERE fingerprint = 'f1'")
        with pytest.raises(psycopg2.Error):
            execute(grafana, "INSERT INTO alerts (fingerprint, status) VALUES ('f2', 'firing')")
        assert execute(grafana, "SELECT status FROM alerts") == [("resolved",)]
    finally:
        for connection in (bot, exporter, grafana):
            connection.close()


def test_a_rerun_rotates_the_passwords(cluster):
    rotated = {name: value + "-new" for name, value in PASSWORDS.items()}
    assert run_roles_sql(cluster, rotated).returncode == 0
    with pytest.raises(psycopg2.OperationalError):
        connect(cluster, "tradewatch_grafana", PASSWORDS["GRAFANA_DB_PASSWORD"])
    connect(cluster, "tradewatch_grafana", rotated["GRAFANA_DB_PASSWORD"]).close()
    assert run_roles_sql(cluster, PASSWORDS).returncode == 0


def test_passwords_can_come_from_files_as_compose_secrets(cluster, tmp_path):
    """compose passes <NAME>_FILE=/run/secrets/...: the values never sit in psql's environment."""
    files = {}
    for name, value in PASSWORDS.items():
        path = tmp_path / name.lower()
        path.write_text(value + "-file\n", encoding="utf-8")  # with the newline `echo` leaves
        files[f"{name}_FILE"] = str(path)
    result = run_roles_sql(cluster, files)
    try:
        assert result.returncode == 0, result.stderr
        for role, name in (("tradewatch", "TRADEWATCH_DB_PASSWORD"), ("tradewatch_exporter", "EXPORTER_DB_PASSWORD"),
                           ("tradewatch_grafana", "GRAFANA_DB_PASSWORD")):
            connect(cluster, role, PASSWORDS[name] + "-file").close()
        missing = dict(files, EXPORTER_DB_PASSWORD_FILE=str(tmp_path / "absent"))
        refused = run_roles_sql(cluster, missing)
        assert refused.returncode != 0 and "EXPORTER_DB_PASSWORD is not set" in refused.stderr
    finally:
        assert run_roles_sql(cluster, PASSWORDS).returncode == 0  # the other tests' passwords again
