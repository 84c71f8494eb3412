"""Volumes exact to any volume step: every lots column widened from NUMERIC(12, 2) to NUMERIC(18, 8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

NUMERIC(12, 2) rounded a 0.579-lot trade to 0.58 and a 0.002-lot one to 0.00 on brokers whose
volume step is 0.001 (the request-exotic profile; real exotic and crypto symbols have 0.0001).
Eight decimals hold any MT5 volume step. Widening keeps every stored value as it is: PostgreSQL
rewrites the column (no view depends on these columns); on SQLite, where NUMERIC is a dynamic
type and the declaration only names the affinity, batch mode rebuilds the table so the schema
says the new type (the stored REAL values are copied unchanged).

Downgrade narrows back to two decimals: volumes finer than 0.01 are rounded, as before 0008.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = sa.Numeric(12, 2)
NEW = sa.Numeric(18, 8)
# (table, column, nullable) of every volume_type() column at this revision.
VOLUME_COLUMNS = (
    ("orders", "volume", False),
    ("orders", "fill_volume", True),
    ("deals", "volume", False),
    ("trades", "volume", False),
    ("position_snapshots", "volume", False),
)


def _alter(old: sa.Numeric, new: sa.Numeric) -> None:
    for table in dict.fromkeys(table for table, _, _ in VOLUME_COLUMNS):
        with op.batch_alter_table(table) as batch:
            for column, nullable in ((c, n) for t, c, n in VOLUME_COLUMNS if t == table):
                batch.alter_column(column, existing_type=old, type_=new, existing_nullable=nullable)


def upgrade() -> None:
    _alter(OLD, NEW)


def downgrade() -> None:
    _alter(NEW, OLD)
