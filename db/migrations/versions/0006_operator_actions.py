"""Operator actions: every `python -m bot ctl` command with who, what, when and its result (db.operator_actions).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)

# Read grants like the other tables (0004): the exporter and Grafana read, only the bot writes.
GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON operator_actions TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON operator_actions TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def upgrade() -> None:
    op.create_table(
        "operator_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=False),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operator_actions"),
    )
    op.create_index("ix_operator_actions_account_requested_at", "operator_actions", ["account", "requested_at"])
    op.create_index("ix_operator_actions_correlation_id", "operator_actions", ["correlation_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRANTS)


def downgrade() -> None:
    op.drop_index("ix_operator_actions_correlation_id", table_name="operator_actions")
    op.drop_index("ix_operator_actions_account_requested_at", table_name="operator_actions")
    op.drop_table("operator_actions")
