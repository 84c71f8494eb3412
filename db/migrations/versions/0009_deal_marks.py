"""Deal marks: per account, how many deals are stored and the newest one's time (db.deal_marks).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The exporter's MT5 board (db.mt5board) asked the deals table for every account's count and newest
deal on each scrape (GROUP BY account): seconds at 20 M deals. Every deal write now keeps this table
in the same transaction; the upgrade fills it from the deals already stored, in one statement (the
table definition and the backfill are frozen here, not taken from db.models / db.deal_marks, so a
later change of those does not change what this revision did).

Downgrade drops the table: nothing else refers to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)

BACKFILL = ("INSERT INTO deal_marks (account, deals, newest)"
            " SELECT account, count(*), max(time) FROM deals GROUP BY account")

# Read grants like the other tables (0004, 0006): the exporter and Grafana read, only the bot writes.
GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON deal_marks TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON deal_marks TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def upgrade() -> None:
    op.create_table(
        "deal_marks",
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("deals", sa.BigInteger(), nullable=False),
        sa.Column("newest", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_deal_marks"),
    )
    op.execute(BACKFILL)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(GRANTS)


def downgrade() -> None:
    op.drop_table("deal_marks")
