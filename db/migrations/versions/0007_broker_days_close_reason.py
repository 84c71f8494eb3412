"""Broker days and close reasons: the server's UTC offset per account, days cut at its midnight, why a trade closed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

- `broker_offsets` (account, since, offset_seconds): each offset of the trade server the bot
  measured (db.brokerday); reports, rollups and the exporter cut broker days on it.
- `daily_performance.day_start` / `server_offset_seconds`: the UTC instant a stored day starts at
  and the offset that cut it (NULL on rows written before: those are UTC days).
- `trades.close_reason`: from the closing deal's DEAL_REASON_* (stop_out, stop_loss, ...); NULL on
  trades closed before this revision. A partial index makes counting stop-outs per account cheap.

Rollups stored before this revision are UTC days; they stay so until the account's first offset
is recorded, which rebuilds that account's rollups on broker days (db.brokerday.record).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
# Frozen copy of db.vocabulary.CLOSE_REASONS at this revision.
CLOSE_REASONS = ("manual", "expert", "stop_loss", "take_profit", "stop_out", "rollover", "variation_margin",
                 "split", "other")
CLOSE_REASON_CHECK = "close_reason IS NULL OR close_reason IN ({})".format(
    ", ".join(f"'{reason}'" for reason in CLOSE_REASONS))
STOP_OUTS = sa.text("close_reason = 'stop_out'")

GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON broker_offsets TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON broker_offsets TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def upgrade() -> None:
    op.create_table(
        "broker_offsets",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("offset_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account", "since", name="pk_broker_offsets"),
    )
    with op.batch_alter_table("daily_performance") as batch:
        batch.add_column(sa.Column("day_start", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("server_offset_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("close_reason", sa.String(16), nullable=True))
        batch.create_check_constraint("ck_trades_close_reason", CLOSE_REASON_CHECK)
    op.create_index("ix_trades_stop_outs", "trades", ["account"], postgresql_where=STOP_OUTS, sqlite_where=STOP_OUTS)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRANTS)


def downgrade() -> None:
    op.drop_index("ix_trades_stop_outs", table_name="trades")
    with op.batch_alter_table("trades") as batch:
        batch.drop_constraint("ck_trades_close_reason", type_="check")
        batch.drop_column("close_reason")
    with op.batch_alter_table("daily_performance") as batch:
        batch.drop_column("server_offset_seconds")
        batch.drop_column("day_start")
    op.drop_table("broker_offsets")
