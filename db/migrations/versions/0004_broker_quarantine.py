"""Quarantined broker records: what the gateway refused, kept raw with the reason (db.quarantine).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)

GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON quarantine TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON quarantine TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("record_kind", sa.String(16), nullable=False),
        sa.Column("record_key", sa.String(64), nullable=False),
        sa.Column("reject_reason", sa.String(32), nullable=False),
        sa.Column("reject_field", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("broker_time", TIMESTAMP, nullable=True),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        sa.UniqueConstraint("account", "record_kind", "fingerprint", name="uq_quarantine_account_record_kind_fingerprint"),
    )
    op.create_index("ix_quarantine_account_received_at", "quarantine", ["account", "received_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRANTS)


def downgrade() -> None:
    op.drop_index("ix_quarantine_account_received_at", table_name="quarantine")
    op.drop_table("quarantine")
