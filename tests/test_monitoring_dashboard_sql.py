"""Every SQL query of the Grafana dashboards runs on PostgreSQL against the real schema.

The schema comes from the project's own migrations (python -m db upgrade); the `alerts` table,
which the exporter's migrations add, is created from its agreed columns when they have not yet.
Queries run as Grafana sends them: macros and ${var:sqlstring} expanded (tests/monitoring_helpers).
"""

from __future__ import annotations

import monitoring_helpers as mh
import pytest
from sqlalchemy import create_engine, inspect, text

from db import migrate

# The columns the exporter's alert sink writes (contract of the monitoring issue).
ALERTS_TABLE = """
CREATE TABLE alerts (
    id bigserial PRIMARY KEY,
    fingerprint text NOT NULL,
    status text NOT NULL,
    alertname text NOT NULL,
    severity text,
    labels jsonb NOT NULL,
    annotations jsonb NOT NULL,
    starts_at timestamptz,
    ends_at timestamptz,
    received_at timestamptz NOT NULL
)
"""
VALUES = {"account": ["1001", "2002"], "severity": ["critical", "warning", "info"]}
SQL_QUERIES = mh.sql_queries()


@pytest.fixture(scope="module")
def engine(pg_cluster):
    name = "monitoring_sql"
    url = pg_cluster.create_database(name)
    engine = create_engine(url)
    migrate.upgrade(engine)
    if not inspect(engine).has_table("alerts"):
        with engine.begin() as connection:
            connection.execute(text(ALERTS_TABLE))
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO alerts (fingerprint, status, alertname, severity, labels, annotations, starts_at, received_at) "
            "VALUES ('f1', 'firing', 'DrawdownHigh', 'warning', '{\"account\": \"1001\"}', "
            "'{\"summary\": \"s\", \"action\": \"a\"}', '2026-01-01T10:00:00Z', '2026-01-01T10:00:05Z')"))
    yield engine
    engine.dispose()
    pg_cluster.drop_database(name)


def test_the_dashboards_have_sql_panels():
    origins = {q.origin.split(":")[0] for q in SQL_QUERIES}
    assert origins == {"trading-overview.json", "alerts.json", "execution-quality.json"}


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: q.origin)
def test_dashboard_sql_runs_on_the_real_schema(engine, query):
    statement = mh.resolve_sql(query.expr, VALUES)
    assert "$" not in statement, statement
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        result = connection.exec_driver_sql(statement)
        rows = result.fetchall()
        columns = list(result.keys())
    assert columns
    if "FROM alerts" in query.expr and "status = 'firing'" in query.expr:
        assert rows, "the firing alert of account 1001 must show"


def test_resolve_sql_expands_grafana_macros_and_quotes_values():
    statement = mh.resolve_sql(
        "SELECT $__timeGroupAlias(t, '1h'), x FROM y WHERE $__timeFilter(t::timestamptz) "
        "AND a IN (${account:sqlstring})", {"account": ["o'brien", "2"]})
    assert statement == (
        "SELECT to_timestamp(floor(extract(epoch FROM t) / 3600) * 3600) AS \"time\", x FROM y "
        "WHERE t::timestamptz BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z' "
        "AND a IN ('o''brien','2')")
