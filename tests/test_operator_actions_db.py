"""The operator_actions table (migration 0006, db.operator_actions): rows, validation, read grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from db import OperatorAction, Repository, init_db

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def action(**changes) -> OperatorAction:
    values = {"account": "1001", "actor": "ops@host", "action": "pause", "arguments": "{}",
              "correlation_id": "c0ffee", "requested_at": T0, "finished_at": T0 + timedelta(milliseconds=3),
              "result": "ok", "detail": "{\"paused\": true}"}
    return OperatorAction(**{**values, **changes})


def test_actions_are_kept_in_order_with_their_result(url):
    database = init_db(url)
    try:
        repo = Repository(database)
        repo.record_operator_action(action())
        repo.record_operator_action(action(action="close-all", arguments='{"symbol": "EURUSD"}', result="refused",
                                           requested_at=T0 + timedelta(minutes=1),
                                           finished_at=T0 + timedelta(minutes=1)))
        repo.record_operator_action(action(account="2002"))
        rows = repo.operator_actions("1001")
        assert [(r.action, r.result) for r in rows] == [("pause", "ok"), ("close-all", "refused")]
        assert rows[0].requested_at == T0 and rows[0].requested_at.tzinfo is not None
        assert [r.action for r in repo.operator_actions("1001", since=T0 + timedelta(seconds=30))] == ["close-all"]
    finally:
        database.dispose()


@pytest.mark.parametrize(("field", "value"), [("action", "format-disk"), ("result", "maybe"), ("actor", "x" * 65),
                                              ("requested_at", datetime(2026, 12, 1, 9, 0))])
def test_a_row_the_store_would_refuse_is_refused_before(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        action(**{field: value})


def test_grafana_and_the_exporter_may_read_the_table(pg_cluster, postgres_url):
    for role in ("tradewatch_grafana", "tradewatch_exporter"):  # roles are the cluster's; made once, if absent
        pg_cluster.admin_execute(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
                                 f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")
    database = init_db(postgres_url)
    try:
        with database.engine.connect() as conn:
            for role in ("tradewatch_grafana", "tradewatch_exporter"):
                assert conn.execute(text(f"SELECT has_table_privilege('{role}', 'operator_actions', 'SELECT')")).scalar()
                assert not conn.execute(
                    text(f"SELECT has_table_privilege('{role}', 'operator_actions', 'INSERT')")).scalar()
    finally:
        database.dispose()
