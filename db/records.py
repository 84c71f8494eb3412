"""Plain, frozen records: the only shapes that cross the store's boundary.

The engine builds the input records (validated on construction, with a one-line
error naming the bad field) and gets back row views; no ORM object leaves `db`.
Money, prices and volumes are Decimal; times are timezone-aware UTC.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from db.validation import check_record
from db.vocabulary import CLOSE_REASONS, OUTCOME_STATUSES, PURPOSES, SIDES, SIGNALS

_record = dataclass(frozen=True, slots=True)


@_record
class SignalRecord:
    account: str
    time: datetime
    cycle_id: str
    correlation_id: str
    symbol: str
    strategy: str
    signal: str  # BUY | SELL | HOLD
    confidence: float
    reason: str
    price: Decimal | None

    def __post_init__(self) -> None:
        check_record(self, {"signal": SIGNALS})


@_record
class OrderIntent:
    """What we are about to send, recorded before sending so a crash cannot lose it."""

    client_order_id: str
    account: str
    correlation_id: str
    signal_id: int | None
    symbol: str
    strategy: str
    side: str  # BUY | SELL
    purpose: str  # open | close
    position_ticket: int | None  # the position a close order closes
    volume: Decimal
    requested_price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    deviation: int
    magic: int
    comment: str
    created_at: datetime

    def __post_init__(self) -> None:
        check_record(self, {"side": SIDES, "purpose": PURPOSES})


@_record
class OrderOutcome:
    """How an order ended: 'unknown' (may still change) or final filled / rejected / expired."""

    client_order_id: str
    status: str
    retcode: int | None
    broker_order: int | None
    broker_deal: int | None
    fill_price: Decimal | None
    fill_volume: Decimal | None
    message: str
    resolved_at: datetime
    # Execution quality (see bot.engine.execution): None when not measured (never erases a stored figure).
    sent_at: datetime | None = None
    send_price: Decimal | None = None
    spread_points: Decimal | None = None
    slippage_decision_points: Decimal | None = None
    slippage_send_points: Decimal | None = None
    decision_to_send_seconds: Decimal | None = None
    send_to_fill_seconds: Decimal | None = None
    requotes: int | None = None

    def __post_init__(self) -> None:
        check_record(self, {"status": OUTCOME_STATUSES})


#: The OrderOutcome fields that measure the execution; written only when measured (not None).
EXECUTION_FIELDS = ("sent_at", "send_price", "spread_points", "slippage_decision_points", "slippage_send_points",
                    "decision_to_send_seconds", "send_to_fill_seconds", "requotes")


@_record
class OrderRow:
    """An orders row as stored: the intent, its status, and its outcome once known."""

    id: int
    client_order_id: str
    account: str
    correlation_id: str
    signal_id: int | None
    symbol: str
    strategy: str
    side: str
    purpose: str
    position_ticket: int | None
    volume: Decimal
    requested_price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    deviation: int
    magic: int
    comment: str
    created_at: datetime
    status: str
    retcode: int | None
    broker_order: int | None
    broker_deal: int | None
    fill_price: Decimal | None
    fill_volume: Decimal | None
    message: str
    resolved_at: datetime | None
    # Execution quality (see bot.engine.execution): None when not measured.
    sent_at: datetime | None = None
    send_price: Decimal | None = None
    spread_points: Decimal | None = None
    slippage_decision_points: Decimal | None = None
    slippage_send_points: Decimal | None = None
    decision_to_send_seconds: Decimal | None = None
    send_to_fill_seconds: Decimal | None = None
    requotes: int | None = None


@_record
class DealRecord:
    """A deal from MT5's history (type, entry and reason are MT5's integer enums)."""

    account: str
    ticket: int
    order_ticket: int
    position_id: int
    symbol: str
    type: int
    entry: int
    volume: Decimal
    price: Decimal
    profit: Decimal
    commission: Decimal
    swap: Decimal
    magic: int
    comment: str
    reason: int
    time: datetime

    def __post_init__(self) -> None:
        check_record(self)


@_record
class TradeOpen:
    """A position that opened; `ticket` is the MT5 position ticket."""

    account: str
    ticket: int
    symbol: str
    direction: str  # BUY | SELL
    volume: Decimal
    entry_price: Decimal
    entry_time: datetime
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy_name: str | None
    ml_confidence: float | None
    client_order_id: str | None
    magic: int
    correlation_id: str | None

    def __post_init__(self) -> None:
        check_record(self, {"direction": SIDES})


@_record
class TradeClose:
    """How a position closed; the store computes the net profit = gross_profit + commission + swap."""

    account: str
    ticket: int
    exit_price: Decimal
    exit_time: datetime
    gross_profit: Decimal
    commission: Decimal  # negative when charged, as MT5 reports it
    swap: Decimal
    profit_pips: Decimal
    close_reason: str | None = None  # db.vocabulary.CLOSE_REASONS: from the last exit deal's reason

    def __post_init__(self) -> None:
        check_record(self, {"close_reason": CLOSE_REASONS})

    @property
    def net_profit(self) -> Decimal:
        return self.gross_profit + self.commission + self.swap


@_record
class TradeRow:
    """A trades row as stored; exit fields and profits are None while the trade is open."""

    id: int
    account: str
    ticket: int
    symbol: str
    direction: str
    volume: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    entry_time: datetime
    exit_time: datetime | None
    profit: Decimal | None  # net: gross_profit + commission + swap
    gross_profit: Decimal | None
    commission: Decimal | None
    swap: Decimal | None
    profit_pips: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    strategy_name: str | None
    ml_confidence: float | None
    sentiment_score: float | None
    is_closed: bool
    client_order_id: str | None
    magic: int
    correlation_id: str | None
    close_reason: str | None = None


@_record
class PositionSnapshot:
    """One open position at the moment passed to `record_position_snapshots`."""

    ticket: int
    symbol: str
    direction: str  # BUY | SELL
    volume: Decimal
    price_open: Decimal
    price_current: Decimal
    sl: Decimal | None
    tp: Decimal | None
    profit: Decimal
    swap: Decimal

    def __post_init__(self) -> None:
        check_record(self, {"direction": SIDES})


@_record
class AccountSnapshot:
    account: str
    time: datetime
    balance: Decimal
    equity: Decimal
    profit: Decimal
    margin: Decimal
    free_margin: Decimal
    margin_level: Decimal | None  # percent; None (or 0 from MT5) when no margin is used
    open_positions: int

    def __post_init__(self) -> None:
        check_record(self)


@_record
class DailyPerformance:
    """One broker day's results for an account (db.brokerday); `win_rate` is a fraction from 0 to 1.

    `day_start` is the UTC instant of the server midnight that starts `date`, `server_offset_seconds`
    the offset that cut it; both None when the broker's offset was unknown (a UTC day)."""

    account: str
    date: date
    trades: int
    winners: int
    losers: int
    profit: Decimal
    pips: Decimal
    win_rate: float
    largest_win: Decimal
    largest_loss: Decimal
    max_drawdown: Decimal
    end_balance: Decimal | None
    end_equity: Decimal | None
    day_start: datetime | None = None
    server_offset_seconds: int | None = None

    def __post_init__(self) -> None:
        check_record(self)
        if not 0 <= self.win_rate <= 1:
            raise ValueError(f"DailyPerformance.win_rate is a fraction from 0 to 1, got {self.win_rate}")
