"""Records refuse what the store would refuse, with one line naming the field."""

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from db import AccountSnapshot, DailyPerformance, OrderIntent, OrderOutcome, TradeClose, TradeOpen

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)

INTENT = OrderIntent(
    client_order_id="tw-1",
    account="5012345",
    correlation_id="corr",
    signal_id=None,
    symbol="EURUSD",
    strategy="ma_cross",
    side="BUY",
    purpose="open",
    position_ticket=None,
    volume=Decimal("0.10"),
    requested_price=Decimal("1.08453"),
    sl=None,
    tp=None,
    deviation=20,
    magic=1,
    comment="tw-1",
    created_at=NOW,
)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"volume": 0.1}, TypeError, r"OrderIntent.volume must be a Decimal, got float"),
        ({"volume": Decimal("NaN")}, ValueError, r"OrderIntent.volume must be finite"),
        (
            {"created_at": datetime(2025, 3, 14, 12, 0)},
            ValueError,
            r"OrderIntent.created_at must be timezone-aware",
        ),
        ({"side": "buy"}, ValueError, r"OrderIntent.side must be one of BUY, SELL, got 'buy'"),
        ({"purpose": "hedge"}, ValueError, r"OrderIntent.purpose must be one of open, close"),
        ({"symbol": "X" * 33}, ValueError, r"OrderIntent.symbol is longer than 32 characters"),
        ({"account": None}, ValueError, r"OrderIntent.account is required"),
        ({"deviation": True}, TypeError, r"OrderIntent.deviation must be int"),
        ({"magic": "1"}, TypeError, r"OrderIntent.magic must be int"),
    ],
)
def test_order_intent_refuses_bad_fields(changes, error, message):
    with pytest.raises(error, match=message) as refused:
        replace(INTENT, **changes)
    assert "\n" not in str(refused.value)


def test_valid_records_are_accepted():
    assert replace(INTENT, volume=1).volume == 1  # ints are exact too
    TradeOpen(
        "1", 5, "EURUSD", "SELL", Decimal("1"), Decimal("1.1"), NOW, None, None, None, None, None, 0, None
    )
    AccountSnapshot("1", NOW, Decimal("1"), Decimal("1"), Decimal("0"), Decimal("0"), Decimal("1"), None, 0)


def test_outcome_status_must_be_an_outcome():
    with pytest.raises(
        ValueError, match="OrderOutcome.status must be one of unknown, filled, rejected, expired"
    ):
        OrderOutcome("tw-1", "pending", None, None, None, None, None, "", NOW)


def test_trade_close_net_profit_is_exact():
    close = TradeClose(
        "1", 5, Decimal("1.1"), NOW, Decimal("0.10"), Decimal("0.20"), Decimal("-0.05"), Decimal("3")
    )
    assert close.net_profit == Decimal("0.25")


def test_daily_win_rate_is_a_fraction():
    args = (
        "1",
        date(2025, 3, 14),
        2,
        1,
        1,
        Decimal("1"),
        Decimal("1"),
        0.5,
        Decimal("2"),
        Decimal("-1"),
        Decimal("1"),
        None,
        None,
    )
    assert DailyPerformance(*args).win_rate == 0.5
    with pytest.raises(ValueError, match="win_rate is a fraction from 0 to 1, got 50.0"):
        DailyPerformance(*args[:7], 50.0, *args[8:])
    with pytest.raises(TypeError, match="DailyPerformance.date must be a date"):
        DailyPerformance(args[0], NOW, *args[2:])
