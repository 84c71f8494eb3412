"""The bot's metrics history: one row per (account, minute), written additively (db.metrics_history).

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)

GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON metrics_history TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON metrics_history TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def upgrade() -> None:
    op.create_table(
        "metrics_history",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("minute", TIMESTAMP, nullable=False),
        sa.Column("cycles", sa.Integer(), nullable=False),
        sa.Column("cycle_seconds_sum", sa.Float(), nullable=False),
        sa.Column("cycle_seconds_max", sa.Float(), nullable=False),
        sa.Column("signals", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("trades_executed", sa.Integer(), nullable=False),
        sa.Column("broker_latency_seconds_sum", sa.Float(), nullable=False),
        sa.Column("broker_calls", sa.Integer(), nullable=False),
        sa.Column("memory_rss_bytes", sa.BigInteger(), nullable=True),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_metrics_history"),
        sa.UniqueConstraint("account", "minute", name="uq_metrics_history_account_minute"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRANTS)


def downgrade() -> None:
    op.drop_table("metrics_history")
