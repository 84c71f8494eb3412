"""Initial schema: signals, orders, deals, trades, position and account snapshots, daily performance.

Written by hand and frozen: it spells out its own types and allowed values
instead of importing them, so later changes to the models cannot change what
this revision did.  tests/test_migrations.py checks it matches the models.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
CASH = sa.Numeric(18, 2)
PRICE = sa.Numeric(18, 6)
VOLUME = sa.Numeric(12, 2)
ACCOUNT = sa.String(32)
SYMBOL = sa.String(32)
NAME = sa.String(64)
IDENT = sa.String(64)
COMMENT = sa.String(64)
SIDE_CHECK = "{} IN ('BUY', 'SELL')"


def _id() -> sa.Column:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "signals",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("time", TIMESTAMP, nullable=False),
        sa.Column("cycle_id", IDENT, nullable=False),
        sa.Column("correlation_id", IDENT, nullable=False),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("strategy", NAME, nullable=False),
        sa.Column("signal", sa.String(4), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("price", PRICE, nullable=True),
        sa.Column("executed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signals"),
        sa.UniqueConstraint(
            "account", "cycle_id", "symbol", "strategy", name="uq_signals_account_cycle_id_symbol_strategy"
        ),
        sa.CheckConstraint("signal IN ('BUY', 'SELL', 'HOLD')", name="ck_signals_signal"),
    )
    op.create_index("ix_signals_correlation_id", "signals", ["correlation_id"])
    op.create_index("ix_signals_account_time", "signals", ["account", "time"])

    op.create_table(
        "orders",
        _id(),
        sa.Column("client_order_id", IDENT, nullable=False),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("correlation_id", IDENT, nullable=False),
        sa.Column("signal_id", ID, nullable=True),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("strategy", NAME, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("purpose", sa.String(5), nullable=False),
        sa.Column("position_ticket", sa.BigInteger(), nullable=True),
        sa.Column("volume", VOLUME, nullable=False),
        sa.Column("requested_price", PRICE, nullable=False),
        sa.Column("sl", PRICE, nullable=True),
        sa.Column("tp", PRICE, nullable=True),
        sa.Column("deviation", sa.Integer(), nullable=False),
        sa.Column("magic", sa.BigInteger(), nullable=False),
        sa.Column("comment", COMMENT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(8), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("retcode", sa.Integer(), nullable=True),
        sa.Column("broker_order", sa.BigInteger(), nullable=True),
        sa.Column("broker_deal", sa.BigInteger(), nullable=True),
        sa.Column("fill_price", PRICE, nullable=True),
        sa.Column("fill_volume", VOLUME, nullable=True),
        sa.Column("message", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("client_order_id", name="uq_orders_client_order_id"),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["signals.id"], name="fk_orders_signal_id_signals", ondelete="SET NULL"
        ),
        sa.CheckConstraint(SIDE_CHECK.format("side"), name="ck_orders_side"),
        sa.CheckConstraint("purpose IN ('open', 'close')", name="ck_orders_purpose"),
        sa.CheckConstraint(
            "status IN ('pending', 'filled', 'rejected', 'unknown', 'expired')", name="ck_orders_status"
        ),
    )
    op.create_index("ix_orders_correlation_id", "orders", ["correlation_id"])
    op.create_index("ix_orders_account_status", "orders", ["account", "status"])

    op.create_table(
        "deals",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("order_ticket", sa.BigInteger(), nullable=False),
        sa.Column("position_id", sa.BigInteger(), nullable=False),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("entry", sa.Integer(), nullable=False),
        sa.Column("volume", VOLUME, nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("profit", CASH, nullable=False),
        sa.Column("commission", CASH, nullable=False),
        sa.Column("swap", CASH, nullable=False),
        sa.Column("magic", sa.BigInteger(), nullable=False),
        sa.Column("comment", COMMENT, nullable=False),
        sa.Column("reason", sa.Integer(), nullable=False),
        sa.Column("time", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deals"),
        sa.UniqueConstraint("account", "ticket", name="uq_deals_account_ticket"),
    )
    op.create_index("ix_deals_account_time", "deals", ["account", "time"])
    op.create_index("ix_deals_account_position_id", "deals", ["account", "position_id"])

    op.create_table(
        "trades",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("volume", VOLUME, nullable=False),
        sa.Column("entry_price", PRICE, nullable=False),
        sa.Column("exit_price", PRICE, nullable=True),
        sa.Column("entry_time", TIMESTAMP, nullable=False),
        sa.Column("exit_time", TIMESTAMP, nullable=True),
        sa.Column("profit", CASH, nullable=True),
        sa.Column("gross_profit", CASH, nullable=True),
        sa.Column("commission", CASH, nullable=True),
        sa.Column("swap", CASH, nullable=True),
        sa.Column("profit_pips", CASH, nullable=True),
        sa.Column("stop_loss", PRICE, nullable=True),
        sa.Column("take_profit", PRICE, nullable=True),
        sa.Column("strategy_name", NAME, nullable=True),
        sa.Column("ml_confidence", sa.Float(), nullable=True),
        sa.Column("sentiment_score", sa.Float(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("client_order_id", IDENT, nullable=True),
        sa.Column("magic", sa.BigInteger(), nullable=False),
        sa.Column("correlation_id", IDENT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        sa.UniqueConstraint("account", "ticket", name="uq_trades_account_ticket"),
        sa.CheckConstraint(SIDE_CHECK.format("direction"), name="ck_trades_direction"),
        sa.CheckConstraint(
            "NOT is_closed OR (exit_time IS NOT NULL AND exit_price IS NOT NULL AND profit IS NOT NULL)",
            name="ck_trades_closed_has_exit",
        ),
    )
    op.create_index("ix_trades_account_is_closed", "trades", ["account", "is_closed"])
    op.create_index("ix_trades_account_exit_time", "trades", ["account", "exit_time"])
    op.create_index("ix_trades_correlation_id", "trades", ["correlation_id"])

    op.create_table(
        "position_snapshots",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("time", TIMESTAMP, nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("symbol", SYMBOL, nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("volume", VOLUME, nullable=False),
        sa.Column("price_open", PRICE, nullable=False),
        sa.Column("price_current", PRICE, nullable=False),
        sa.Column("sl", PRICE, nullable=True),
        sa.Column("tp", PRICE, nullable=True),
        sa.Column("profit", CASH, nullable=False),
        sa.Column("swap", CASH, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_position_snapshots"),
        sa.UniqueConstraint("account", "time", "ticket", name="uq_position_snapshots_account_time_ticket"),
        sa.CheckConstraint(SIDE_CHECK.format("direction"), name="ck_position_snapshots_direction"),
    )

    op.create_table(
        "account_snapshots",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("time", TIMESTAMP, nullable=False),
        sa.Column("balance", CASH, nullable=False),
        sa.Column("equity", CASH, nullable=False),
        sa.Column("profit", CASH, nullable=False),
        sa.Column("margin", CASH, nullable=False),
        sa.Column("free_margin", CASH, nullable=False),
        sa.Column("margin_level", CASH, nullable=True),
        sa.Column("open_positions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_account_snapshots"),
        sa.UniqueConstraint("account", "time", name="uq_account_snapshots_account_time"),
    )

    op.create_table(
        "daily_performance",
        _id(),
        sa.Column("account", ACCOUNT, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("losers", sa.Integer(), nullable=False),
        sa.Column("profit", CASH, nullable=False),
        sa.Column("pips", CASH, nullable=False),
        sa.Column("win_rate", sa.Float(), nullable=False),
        sa.Column("largest_win", CASH, nullable=False),
        sa.Column("largest_loss", CASH, nullable=False),
        sa.Column("max_drawdown", CASH, nullable=False),
        sa.Column("end_balance", CASH, nullable=True),
        sa.Column("end_equity", CASH, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_daily_performance"),
        sa.UniqueConstraint("account", "date", name="uq_daily_performance_account_date"),
    )


def downgrade() -> None:
    op.drop_table("daily_performance")
    op.drop_table("account_snapshots")
    op.drop_table("position_snapshots")
    op.drop_index("ix_trades_correlation_id", table_name="trades")
    op.drop_index("ix_trades_account_exit_time", table_name="trades")
    op.drop_index("ix_trades_account_is_closed", table_name="trades")
    op.drop_table("trades")
    op.drop_index("ix_deals_account_position_id", table_name="deals")
    op.drop_index("ix_deals_account_time", table_name="deals")
    op.drop_table("deals")
    op.drop_index("ix_orders_account_status", table_name="orders")
    op.drop_index("ix_orders_correlation_id", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_signals_account_time", table_name="signals")
    op.drop_index("ix_signals_correlation_id", table_name="signals")
    op.drop_table("signals")
