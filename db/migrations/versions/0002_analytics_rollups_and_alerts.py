"""Analytics rollups, signal counters, the alert sink, and the exporter's grants.

- trade_rollups: closed-trade totals per (account, day | month | all, strategy, symbol),
  amounts in integer hundredths, plus 24 pivoted hourly columns (see db.rollups);
- equity_bases: each account's initial balance (where its equity curve starts);
- signal_counts: signals per (account, strategy, signal, executed);
- alerts: what Alertmanager's webhook delivered, one row per (fingerprint, starts_at);
- a partial index on the open trades (the exporter counts them on every scrape).

On PostgreSQL, when the roles of deploy/postgres/initdb/10-tradewatch-roles.sql exist,
the exporter's writer role gets INSERT/UPDATE on `alerts` (and its id sequence) and the
readers SELECT on the new tables; where they do not exist yet, re-running that script
after the migrations grants the same.

The table definitions are frozen here; the backfill of existing trades and signals uses
db.rollups / db.signal_counts, i.e. the code that keeps them current (a later revision
that changes the rollup layout must rebuild them again).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
CASH = sa.Numeric(18, 2)
ACCOUNT = sa.String(32)
SYMBOL = sa.String(32)
NAME = sa.String(64)
IDENT = sa.String(64)
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

GRANTS = """
DO $grants$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_alert_writer') THEN
    GRANT INSERT, UPDATE ON alerts TO tradewatch_alert_writer;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO tradewatch_alert_writer', pg_get_serial_sequence('alerts', 'id'));
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_exporter') THEN
    GRANT SELECT ON trade_rollups, equity_bases, signal_counts, alerts TO tradewatch_exporter;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradewatch_grafana') THEN
    GRANT SELECT ON trade_rollups, equity_bases, signal_counts, alerts TO tradewatch_grafana;
  END IF;
END
$grants$
"""


def _hour_columns() -> list[sa.Column]:
    trades = [sa.Column(f"h{hour:02d}_trades", sa.Integer(), nullable=False) for hour in range(24)]
    cents = [sa.Column(f"h{hour:02d}_cents", sa.BigInteger(), nullable=False) for hour in range(24)]
    return trades + cents


def upgrade() -> None:
    op.create_table(
        "trade_rollups",
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("span", sa.String(5), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("strategy", NAME, nullable=False),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("losers", sa.Integer(), nullable=False),
        sa.Column("profit_cents", sa.BigInteger(), nullable=False),
        sa.Column("win_cents", sa.BigInteger(), nullable=False),
        sa.Column("loss_cents", sa.BigInteger(), nullable=False),
        sa.Column("pips_hundredths", sa.BigInteger(), nullable=False),
        sa.Column("largest_win_cents", sa.BigInteger(), nullable=True),
        sa.Column("largest_loss_cents", sa.BigInteger(), nullable=True),
        sa.Column("period_peak_cents", sa.BigInteger(), nullable=False),
        sa.Column("period_trough_cents", sa.BigInteger(), nullable=False),
        sa.Column("period_drawdown_cents", sa.BigInteger(), nullable=False),
        sa.Column("end_cum_cents", sa.BigInteger(), nullable=False),
        sa.Column("end_peak_cents", sa.BigInteger(), nullable=False),
        sa.Column("max_drawdown_cents", sa.BigInteger(), nullable=False),
        sa.Column("max_drawdown_ratio", sa.Float(), nullable=True),
        sa.Column("last_exit_time", TIMESTAMP, nullable=False),
        sa.Column("last_trade_id", sa.BigInteger(), nullable=False),
        *_hour_columns(),
        sa.PrimaryKeyConstraint("account", "span", "period_start", "strategy", "symbol", name="pk_trade_rollups"),
        sa.CheckConstraint("span IN ('day', 'month', 'all')", name="ck_trade_rollups_span"),
    )
    op.create_index(
        "ix_trade_rollups_selection",
        "trade_rollups",
        ["account", "span", "strategy", "symbol", "period_start", "trades", "profit_cents"],
    )

    op.create_table(
        "equity_bases",
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("initial_balance", CASH, nullable=False),
        sa.Column("snapshot_time", TIMESTAMP, nullable=True),
        sa.Column("first_exit_time", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("account", name="pk_equity_bases"),
    )

    op.create_table(
        "signal_counts",
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("strategy", NAME, nullable=False),
        sa.Column("signal", sa.String(4), nullable=False),
        sa.Column("executed", sa.Boolean(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", "strategy", "signal", "executed", name="pk_signal_counts"),
        sa.CheckConstraint("signal IN ('BUY', 'SELL', 'HOLD')", name="ck_signal_counts_signal"),
    )

    op.create_table(
        "alerts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", IDENT, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("alertname", sa.String(128), nullable=False),
        sa.Column("severity", NAME, nullable=True),
        sa.Column("labels", DOCUMENT, nullable=False),
        sa.Column("annotations", DOCUMENT, nullable=False),
        sa.Column("starts_at", TIMESTAMP, nullable=False),
        sa.Column("ends_at", TIMESTAMP, nullable=True),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alerts_fingerprint_starts_at"),
        sa.CheckConstraint("status IN ('firing', 'resolved')", name="ck_alerts_status"),
    )
    op.create_index("ix_alerts_received_at", "alerts", ["received_at"])

    op.create_index(
        "ix_trades_open_account_symbol",
        "trades",
        ["account", "symbol"],
        postgresql_where=sa.text("is_closed = false"),
        sqlite_where=sa.text("is_closed = 0"),
    )

    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(GRANTS)
    _backfill(bind)


def _backfill(bind: sa.Connection) -> None:
    """Count what the store already holds (nothing on a new database)."""
    from db import rollups, signal_counts

    rollups.rebuild(bind)
    signal_counts.recount(bind)


def downgrade() -> None:
    op.drop_index("ix_trades_open_account_symbol", table_name="trades")
    op.drop_index("ix_alerts_received_at", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("signal_counts")
    op.drop_table("equity_bases")
    op.drop_index("ix_trade_rollups_selection", table_name="trade_rollups")
    op.drop_table("trade_rollups")
