"""The analytics tables kept current by the writes themselves (db.rollups, db.signal_counts, db.deal_marks).

Private to `db` like db.models, which re-exports every name here: callers import them from there.
"""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.model_base import Base
from db.types import UTCDateTime, cash_type
from db.vocabulary import ACCOUNT_LEN, NAME_LEN, SIGNALS, SYMBOL_LEN, sql_in

# -- analytics: rollups kept current by the transaction that closes a trade (db.rollups) -----

# The "all strategies" / "all symbols" value of a rollup row's strategy or symbol.  MT5 symbol
# names never contain '*'; a trade without a strategy is rolled up under '' (empty).
ANY = "*"
SPANS = ("day", "month", "all")
HOURS = range(24)


HOUR_TRADES_COLUMNS = tuple(f"h{hour:02d}_trades" for hour in HOURS)
HOUR_CENTS_COLUMNS = tuple(f"h{hour:02d}_cents" for hour in HOURS)


def _hour_columns() -> list[Column]:
    """Trades and net profit per UTC hour of exit, pivoted into columns: one row answers 'by hour'."""
    trades = [Column(name, Integer, nullable=False) for name in HOUR_TRADES_COLUMNS]
    cents = [Column(name, BigInteger, nullable=False) for name in HOUR_CENTS_COLUMNS]
    return trades + cents


# Amounts are integer hundredths (cents of the account currency, hundredths of a pip): sums stay
# exact on SQLite too, whose NUMERIC is a binary float.  Path columns describe the equity curve of
# the row's selection (closed trades in exit order, ties by trade id); see db.ledger.
trade_rollups = Table(
    "trade_rollups",
    Base.metadata,
    Column("account", String(ACCOUNT_LEN), nullable=False),
    Column("span", String(5), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("strategy", String(NAME_LEN), nullable=False),
    Column("symbol", String(SYMBOL_LEN), nullable=False),
    Column("trades", Integer, nullable=False),
    Column("winners", Integer, nullable=False),
    Column("losers", Integer, nullable=False),
    Column("profit_cents", BigInteger, nullable=False),
    Column("win_cents", BigInteger, nullable=False),
    Column("loss_cents", BigInteger, nullable=False),
    Column("pips_hundredths", BigInteger, nullable=False),
    Column("largest_win_cents", BigInteger, nullable=True),
    Column("largest_loss_cents", BigInteger, nullable=True),
    # The period's own path, starting from 0 at the period start: highest and lowest point, deepest fall.
    Column("period_peak_cents", BigInteger, nullable=False),
    Column("period_trough_cents", BigInteger, nullable=False),
    Column("period_drawdown_cents", BigInteger, nullable=False),
    # The selection's path since its first trade: where it ends, its running peak, and the deepest
    # drawdown (amount and ratio to initial balance + peak) reached by a trade of this period.
    Column("end_cum_cents", BigInteger, nullable=False),
    Column("end_peak_cents", BigInteger, nullable=False),
    Column("max_drawdown_cents", BigInteger, nullable=False),
    Column("max_drawdown_ratio", Float, nullable=True),
    Column("last_exit_time", UTCDateTime(), nullable=False),
    Column("last_trade_id", BigInteger, nullable=False),
    *_hour_columns(),
    PrimaryKeyConstraint("account", "span", "period_start", "strategy", "symbol"),
    CheckConstraint(sql_in("span", SPANS), name="span"),
    # One selection's periods in order; trades and profit in the key make the narrow reads
    # (day/week/weekday buckets, correlation) index-only.
    Index("ix_trade_rollups_selection", "account", "span", "strategy", "symbol", "period_start", "trades",
          "profit_cents"),
)


class TradeRollupModel(Base):
    """Closed-trade totals per (account, day | month | all time, strategy or '*', symbol or '*')."""

    __table__ = trade_rollups


class EquityBaseModel(Base):
    """Where an account's closed-trade equity curve starts; one row per account, also its rollup lock."""

    __tablename__ = "equity_bases"

    account: Mapped[str] = mapped_column(String(ACCOUNT_LEN), primary_key=True)
    initial_balance: Mapped[Decimal] = mapped_column(cash_type())
    snapshot_time: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the snapshot it was taken from
    first_exit_time: Mapped[datetime] = mapped_column(UTCDateTime())  # the earliest exit when it was set


class SignalCountModel(Base):
    """Signals recorded per (account, strategy, signal, executed), kept by the repository's writes."""

    __tablename__ = "signal_counts"
    __table_args__ = (CheckConstraint(sql_in("signal", SIGNALS), name="signal"),)

    account: Mapped[str] = mapped_column(String(ACCOUNT_LEN), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(NAME_LEN), primary_key=True)
    signal: Mapped[str] = mapped_column(String(4), primary_key=True)
    executed: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class DealMarkModel(Base):
    """How many deals of an account are stored and the newest one's time, kept by every deal write
    in its own transaction (db.deal_marks).

    Why: the exporter's MT5 board (db.mt5board) must tell on every scrape which accounts got deals
    since the last one; counting the deals table for that (GROUP BY account) took seconds at 20 M
    deals against a 50 ms scrape. Deals are only ever inserted, so a count and a newest time say
    exactly what changed.
    """

    __tablename__ = "deal_marks"

    account: Mapped[str] = mapped_column(String(ACCOUNT_LEN), primary_key=True)
    deals: Mapped[int] = mapped_column(BigInteger)
    newest: Mapped[datetime] = mapped_column(UTCDateTime())
