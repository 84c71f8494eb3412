"""Mapping between wall-clock time and the simulator's trading-second index.

The market is closed from Saturday 00:00 to Monday 00:00 UTC. Prices are a function of
*trading* time only, so the weekend simply does not exist for the price path: tick index ``k``
counts trading seconds from the anchor (a Monday), and a trading day is exactly ``86400``
ticks. That makes bars never straddle a weekend and makes "no movement at weekends" true by
construction: every weekend instant maps to Friday's last tick.
"""

from datetime import UTC, datetime

#: Monday 2026-01-05 00:00 UTC: tick index 0 and the default simulation start.
ANCHOR_EPOCH = 1_767_571_200
DEFAULT_START = datetime.fromtimestamp(ANCHOR_EPOCH, UTC)

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
TRADING_DAYS_PER_WEEK = 5
TRADING_WEEK_SECONDS = TRADING_DAYS_PER_WEEK * DAY_SECONDS
WEDNESDAY = 2  # index of the trading day within its week (Monday = 0)


def tick_index(epoch: float) -> int:
    """Index of the last tick at or before ``epoch`` (weekend instants map to Friday's last tick)."""
    seconds = int(epoch // 1) - ANCHOR_EPOCH
    week, into_week = divmod(seconds, WEEK_SECONDS)
    return week * TRADING_WEEK_SECONDS + min(into_week, TRADING_WEEK_SECONDS - 1)


def tick_epoch(k: int) -> int:
    """Wall-clock epoch second of tick ``k``."""
    week, into_week = divmod(k, TRADING_WEEK_SECONDS)
    return ANCHOR_EPOCH + week * WEEK_SECONDS + into_week


def trading_day(k: int) -> int:
    """Trading day (0 = the anchor Monday) that tick ``k`` belongs to."""
    return k // DAY_SECONDS


def weekday_of_trading_day(day: int) -> int:
    """0 = Monday … 4 = Friday."""
    return day % TRADING_DAYS_PER_WEEK


def rollover_epoch(day: int) -> int:
    """Wall-clock instant of the rollover that ends trading ``day`` (the next 00:00 UTC)."""
    return tick_epoch(day * DAY_SECONDS + DAY_SECONDS - 1) + 1


def is_week_open(k: int) -> bool:
    """True for the first tick after a weekend, where prices may gap."""
    return k % TRADING_WEEK_SECONDS == 0


def is_weekend(epoch: float) -> bool:
    """True when the market is closed (Saturday or Sunday UTC)."""
    return (int(epoch // 1) - ANCHOR_EPOCH) % WEEK_SECONDS >= TRADING_WEEK_SECONDS


def to_epoch(value: object) -> float:
    """Accept a datetime (naive = UTC, like the MetaTrader5 package) or epoch seconds.

    Raises TypeError for anything else, so callers can turn it into an API error.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a datetime or epoch seconds, got {type(value).__name__}")
