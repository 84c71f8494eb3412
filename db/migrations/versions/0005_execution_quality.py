"""Execution quality on the order row: slippage, spread, latencies and requotes of each send.

Revision ID: 0005
Revises: 0004 (to be chained after 0005 operator_actions when both branches are merged)
Create Date: 2026-12-01

Columns only, all nullable: orders stored before this revision, and orders whose send was not
measured (expired unsent, resolved at the broker after a lost reply), keep null figures rather
than invented ones. The grafana/exporter roles already read `orders`, so no grant is needed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POINTS = sa.Numeric(12, 2)
SECONDS = sa.Numeric(12, 6)
COLUMNS = (
    ("sent_at", sa.DateTime(timezone=True)),
    ("send_price", sa.Numeric(18, 6)),
    ("spread_points", POINTS),
    ("slippage_decision_points", POINTS),
    ("slippage_send_points", POINTS),
    ("decision_to_send_seconds", SECONDS),
    ("send_to_fill_seconds", SECONDS),
    ("requotes", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_index("ix_orders_account_sent_at", "orders", ["account", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_account_sent_at", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
