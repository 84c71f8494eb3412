"""The trade store's tables as SQLAlchemy models (private to `db`: callers get records).

Every row names the trading `account` (the MT5 login) so one database can
serve several accounts.  Money columns are NUMERIC(18, 2), prices
NUMERIC(18, 6), volumes NUMERIC(18, 8), timestamps aware UTC; see `db.types`.
Constraint names follow `NAMING_CONVENTION` so migrations can name them too.
"""

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.model_base import NAMING_CONVENTION, Base, _account, _id  # noqa: F401 - NAMING_CONVENTION re-exported
from db.rollup_models import (  # noqa: F401 - re-exported: the store's tables are all named from db.models
    ANY,
    HOUR_CENTS_COLUMNS,
    HOUR_TRADES_COLUMNS,
    HOURS,
    SPANS,
    DealMarkModel,
    EquityBaseModel,
    SignalCountModel,
    TradeRollupModel,
    trade_rollups,
)
from db.types import Identifier, UTCDateTime, cash_type, points_type, price_type, seconds_type, volume_type
from db.vocabulary import (
    ACTION_LEN,
    ACTOR_LEN,
    CLOSE_REASON_LEN,
    CLOSE_REASONS,
    COMMENT_LEN,
    FINGERPRINT_LEN,
    ID_LEN,
    NAME_LEN,
    ORDER_STATUSES,
    PURPOSES,
    RECORD_KEY_LEN,
    RECORD_KIND_LEN,
    REJECT_FIELD_LEN,
    REJECT_REASON_LEN,
    RESULT_LEN,
    SIDES,
    SIGNALS,
    SYMBOL_LEN,
    sql_in,
)


class SignalModel(Base):
    """What a strategy concluded for a symbol in one cycle; one row per (account, cycle, symbol, strategy)."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("account", "cycle_id", "symbol", "strategy"),
        CheckConstraint(sql_in("signal", SIGNALS), name="signal"),
        Index(None, "account", "time"),
    )

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    cycle_id: Mapped[str] = mapped_column(String(ID_LEN))
    correlation_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LEN))
    strategy: Mapped[str] = mapped_column(String(NAME_LEN))
    signal: Mapped[str] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    price: Mapped[Decimal | None] = mapped_column(price_type())
    executed: Mapped[bool] = mapped_column(Boolean, server_default=false())


class OrderModel(Base):
    """An order intent, written before it is sent, and the single outcome it ends with."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(sql_in("side", SIDES), name="side"),
        CheckConstraint(sql_in("purpose", PURPOSES), name="purpose"),
        CheckConstraint(sql_in("status", ORDER_STATUSES), name="status"),
        Index(None, "account", "status"),
        Index(None, "account", "sent_at"),  # execution quality by send time (db.execution)
    )

    id: Mapped[int] = _id()
    client_order_id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    account: Mapped[str] = _account()
    correlation_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    signal_id: Mapped[int | None] = mapped_column(Identifier, ForeignKey("signals.id", ondelete="SET NULL"))
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LEN))
    strategy: Mapped[str] = mapped_column(String(NAME_LEN))
    side: Mapped[str] = mapped_column(String(4))
    purpose: Mapped[str] = mapped_column(String(5))
    position_ticket: Mapped[int | None] = mapped_column(BigInteger)
    volume: Mapped[Decimal] = mapped_column(volume_type())
    requested_price: Mapped[Decimal] = mapped_column(price_type())
    sl: Mapped[Decimal | None] = mapped_column(price_type())
    tp: Mapped[Decimal | None] = mapped_column(price_type())
    deviation: Mapped[int] = mapped_column(Integer)
    magic: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str] = mapped_column(String(COMMENT_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8), server_default=text("'pending'"))
    retcode: Mapped[int | None] = mapped_column(Integer)
    broker_order: Mapped[int | None] = mapped_column(BigInteger)
    broker_deal: Mapped[int | None] = mapped_column(BigInteger)
    fill_price: Mapped[Decimal | None] = mapped_column(price_type())
    fill_volume: Mapped[Decimal | None] = mapped_column(volume_type())
    message: Mapped[str] = mapped_column(Text, server_default=text("''"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Execution quality of the send (bot.engine.execution; migration 0005): null when not measured.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # wall UTC of the first send
    send_price: Mapped[Decimal | None] = mapped_column(price_type())  # the quote when it was sent
    spread_points: Mapped[Decimal | None] = mapped_column(points_type())  # at the decision
    slippage_decision_points: Mapped[Decimal | None] = mapped_column(points_type())  # + = worse for us
    slippage_send_points: Mapped[Decimal | None] = mapped_column(points_type())
    decision_to_send_seconds: Mapped[Decimal | None] = mapped_column(seconds_type())
    send_to_fill_seconds: Mapped[Decimal | None] = mapped_column(seconds_type())
    requotes: Mapped[int | None] = mapped_column(Integer)


class DealModel(Base):
    """A deal from the broker's history, as MT5 reports it (type, entry and reason are MT5 enums)."""

    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("account", "ticket"),
        Index(None, "account", "time"),
        Index(None, "account", "position_id"),
    )

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    ticket: Mapped[int] = mapped_column(BigInteger)
    order_ticket: Mapped[int] = mapped_column(BigInteger)
    position_id: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LEN))
    type: Mapped[int] = mapped_column(Integer)
    entry: Mapped[int] = mapped_column(Integer)
    volume: Mapped[Decimal] = mapped_column(volume_type())
    price: Mapped[Decimal] = mapped_column(price_type())
    profit: Mapped[Decimal] = mapped_column(cash_type())
    commission: Mapped[Decimal] = mapped_column(cash_type())
    swap: Mapped[Decimal] = mapped_column(cash_type())
    magic: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str] = mapped_column(String(COMMENT_LEN))
    reason: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UTCDateTime())


class TradeModel(Base):
    """A position from open to close, keyed by its MT5 position ticket; `profit` is net of costs."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("account", "ticket"),
        CheckConstraint(sql_in("direction", SIDES), name="direction"),
        CheckConstraint(
            "NOT is_closed OR (exit_time IS NOT NULL AND exit_price IS NOT NULL AND profit IS NOT NULL)",
            name="closed_has_exit",
        ),
        Index(None, "account", "is_closed"),
        Index(None, "account", "exit_time"),
        CheckConstraint(f"close_reason IS NULL OR {sql_in('close_reason', CLOSE_REASONS)}", name="close_reason"),
        # Stop-outs are rare: a partial index keeps counting them per account cheap at any size.
        Index("ix_trades_stop_outs", "account", postgresql_where=text("close_reason = 'stop_out'"),
              sqlite_where=text("close_reason = 'stop_out'")),
    )

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    ticket: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LEN))
    direction: Mapped[str] = mapped_column(String(4))
    volume: Mapped[Decimal] = mapped_column(volume_type())
    entry_price: Mapped[Decimal] = mapped_column(price_type())
    exit_price: Mapped[Decimal | None] = mapped_column(price_type())
    entry_time: Mapped[datetime] = mapped_column(UTCDateTime())
    exit_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    profit: Mapped[Decimal | None] = mapped_column(cash_type())
    gross_profit: Mapped[Decimal | None] = mapped_column(cash_type())
    commission: Mapped[Decimal | None] = mapped_column(cash_type())
    swap: Mapped[Decimal | None] = mapped_column(cash_type())
    profit_pips: Mapped[Decimal | None] = mapped_column(cash_type())
    stop_loss: Mapped[Decimal | None] = mapped_column(price_type())
    take_profit: Mapped[Decimal | None] = mapped_column(price_type())
    strategy_name: Mapped[str | None] = mapped_column(String(NAME_LEN))
    ml_confidence: Mapped[float | None] = mapped_column(Float)
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    is_closed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    client_order_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    magic: Mapped[int] = mapped_column(BigInteger)
    correlation_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    close_reason: Mapped[str | None] = mapped_column(String(CLOSE_REASON_LEN))  # db.vocabulary.CLOSE_REASONS


class PositionSnapshotModel(Base):
    """One open position as seen at one moment; one row per (account, time, ticket)."""

    __tablename__ = "position_snapshots"
    __table_args__ = (
        UniqueConstraint("account", "time", "ticket"),
        CheckConstraint(sql_in("direction", SIDES), name="direction"),
    )

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    ticket: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(SYMBOL_LEN))
    direction: Mapped[str] = mapped_column(String(4))
    volume: Mapped[Decimal] = mapped_column(volume_type())
    price_open: Mapped[Decimal] = mapped_column(price_type())
    price_current: Mapped[Decimal] = mapped_column(price_type())
    sl: Mapped[Decimal | None] = mapped_column(price_type())
    tp: Mapped[Decimal | None] = mapped_column(price_type())
    profit: Mapped[Decimal] = mapped_column(cash_type())
    swap: Mapped[Decimal] = mapped_column(cash_type())


class AccountSnapshotModel(Base):
    """Balance, equity and margin at one moment; one row per (account, time)."""

    __tablename__ = "account_snapshots"
    __table_args__ = (UniqueConstraint("account", "time"),)

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    balance: Mapped[Decimal] = mapped_column(cash_type())
    equity: Mapped[Decimal] = mapped_column(cash_type())
    profit: Mapped[Decimal] = mapped_column(cash_type())
    margin: Mapped[Decimal] = mapped_column(cash_type())
    free_margin: Mapped[Decimal] = mapped_column(cash_type())
    margin_level: Mapped[Decimal | None] = mapped_column(cash_type())
    open_positions: Mapped[int] = mapped_column(Integer)


class DailyPerformanceModel(Base):
    """The day's results for one account on broker days (db.brokerday): `date` is the server's date,
    `day_start` the UTC instant of its server midnight and `server_offset_seconds` the offset that
    cut it (both NULL: the offset was unknown and the day is a UTC day). One row per (account, date)."""

    __tablename__ = "daily_performance"
    __table_args__ = (UniqueConstraint("account", "date"),)

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    date: Mapped[date] = mapped_column(Date)
    trades: Mapped[int] = mapped_column(Integer)
    winners: Mapped[int] = mapped_column(Integer)
    losers: Mapped[int] = mapped_column(Integer)
    profit: Mapped[Decimal] = mapped_column(cash_type())
    pips: Mapped[Decimal] = mapped_column(cash_type())
    win_rate: Mapped[float] = mapped_column(Float)
    largest_win: Mapped[Decimal] = mapped_column(cash_type())
    largest_loss: Mapped[Decimal] = mapped_column(cash_type())
    max_drawdown: Mapped[Decimal] = mapped_column(cash_type())
    end_balance: Mapped[Decimal | None] = mapped_column(cash_type())
    end_equity: Mapped[Decimal | None] = mapped_column(cash_type())
    day_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    server_offset_seconds: Mapped[int | None] = mapped_column(Integer)


class BrokerOffsetModel(Base):
    """The trade server's UTC offset as the bot measured it, from `since` on (db.brokerday)."""

    __tablename__ = "broker_offsets"
    __table_args__ = (PrimaryKeyConstraint("account", "since"),)

    account: Mapped[str] = _account()
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    offset_seconds: Mapped[int] = mapped_column(Integer)


# -- the alert sink (exporter POST /api/v1/alerts) ---------------------------------------------

ALERT_STATUSES = ("firing", "resolved")
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class AlertModel(Base):
    """One alert episode as Alertmanager reported it: (fingerprint, starts_at) is one firing."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("fingerprint", "starts_at"),
        CheckConstraint(sql_in("status", ALERT_STATUSES), name="status"),
        Index(None, "received_at"),
    )

    id: Mapped[int] = _id()
    fingerprint: Mapped[str] = mapped_column(String(ID_LEN))
    status: Mapped[str] = mapped_column(String(8))
    alertname: Mapped[str] = mapped_column(String(NAME_LEN * 2))
    severity: Mapped[str | None] = mapped_column(String(NAME_LEN))
    labels: Mapped[dict] = mapped_column(JSONDocument)
    annotations: Mapped[dict] = mapped_column(JSONDocument)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- the bot's metrics history (one row per account and minute) -------------------------------


class MetricsMinuteModel(Base):
    """What the bot did in one minute: counts and sums add up, maxima and last samples replace."""

    __tablename__ = "metrics_history"
    __table_args__ = (UniqueConstraint("account", "minute"),)

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    minute: Mapped[datetime] = mapped_column(UTCDateTime())
    cycles: Mapped[int] = mapped_column(Integer)
    cycle_seconds_sum: Mapped[float] = mapped_column(Float)
    cycle_seconds_max: Mapped[float] = mapped_column(Float)
    signals: Mapped[int] = mapped_column(Integer)
    orders: Mapped[int] = mapped_column(Integer)
    trades_executed: Mapped[int] = mapped_column(Integer)
    broker_latency_seconds_sum: Mapped[float] = mapped_column(Float)
    broker_calls: Mapped[int] = mapped_column(Integer)
    memory_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cpu_percent: Mapped[float | None] = mapped_column(Float)


class QuarantineModel(Base):
    """A broker record the gateway refused (db.quarantine), kept raw for an operator.

    One row per distinct record: (account, record_kind, fingerprint) is the stable key, so the
    same bad record met again (every cycle, after a restart, from the spool) is stored once.
    """

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("account", "record_kind", "fingerprint"),
        Index(None, "account", "received_at"),
    )

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    record_kind: Mapped[str] = mapped_column(String(RECORD_KIND_LEN))
    record_key: Mapped[str] = mapped_column(String(RECORD_KEY_LEN))
    reject_reason: Mapped[str] = mapped_column(String(REJECT_REASON_LEN))
    reject_field: Mapped[str | None] = mapped_column(String(REJECT_FIELD_LEN))
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT_LEN))
    broker_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OperatorActionModel(Base):
    """One operator command (`python -m bot ctl ...`): who, what, when, and its result (db.operator_actions)."""

    __tablename__ = "operator_actions"
    __table_args__ = (Index(None, "account", "requested_at"),)

    id: Mapped[int] = _id()
    account: Mapped[str] = _account()
    actor: Mapped[str] = mapped_column(String(ACTOR_LEN))
    action: Mapped[str] = mapped_column(String(ACTION_LEN))
    arguments: Mapped[str] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result: Mapped[str] = mapped_column(String(RESULT_LEN))
    detail: Mapped[str] = mapped_column(Text)


# The exporter counts open trades per account and symbol on every scrape: a partial index keeps
# that to the few open rows instead of the whole (mostly closed) table.
Index(
    "ix_trades_open_account_symbol",
    TradeModel.account,
    TradeModel.symbol,
    postgresql_where=TradeModel.is_closed == false(),
    sqlite_where=TradeModel.is_closed == false(),
)
