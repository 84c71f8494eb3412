"""The schema of a broker profile: every key, its parser and its default, as tables.

A profile file has an ``[account]`` table and a ``[symbols."<broker name>"]`` table per symbol.
A symbol names its ``feed`` (an instrument of ``feeds.toml``); the feed's keys are its defaults,
so a profile only spells out what this broker does differently. Each parser turns the raw TOML
value into what the simulator uses, or raises ValueError with the reason; the loader adds the
file and the key, so a bad profile stops with exactly one line.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from mt5bridge import constants as mt5

from ..servertime import RULES
from ..sessions import FULL_WEEK, parse_sessions

MARGIN_MODES = {
    "netting": mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
    "exchange": mt5.ACCOUNT_MARGIN_MODE_EXCHANGE,
    "hedging": mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
}
TRADE_MODES = {
    "demo": mt5.ACCOUNT_TRADE_MODE_DEMO,
    "contest": mt5.ACCOUNT_TRADE_MODE_CONTEST,
    "real": mt5.ACCOUNT_TRADE_MODE_REAL,
}
EXECUTIONS = {
    "request": mt5.SYMBOL_TRADE_EXECUTION_REQUEST,
    "instant": mt5.SYMBOL_TRADE_EXECUTION_INSTANT,
    "market": mt5.SYMBOL_TRADE_EXECUTION_MARKET,
    "exchange": mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE,
}
FILLINGS = {"FOK": mt5.ORDER_FILLING_FOK, "IOC": mt5.ORDER_FILLING_IOC, "RETURN": mt5.ORDER_FILLING_RETURN}
#: symbol_info().filling_mode bit of each filling (RETURN has none: the execution mode implies it).
FILLING_BITS = {mt5.ORDER_FILLING_FOK: mt5.SYMBOL_FILLING_FOK, mt5.ORDER_FILLING_IOC: mt5.SYMBOL_FILLING_IOC}
ORDER_MODES = {
    "market": mt5.SYMBOL_ORDER_MARKET,
    "limit": mt5.SYMBOL_ORDER_LIMIT,
    "stop": mt5.SYMBOL_ORDER_STOP,
    "stop-limit": mt5.SYMBOL_ORDER_STOP_LIMIT,
    "sl": mt5.SYMBOL_ORDER_SL,
    "tp": mt5.SYMBOL_ORDER_TP,
    "close-by": mt5.SYMBOL_ORDER_CLOSEBY,
}
CALC_MODES = {
    "forex": mt5.SYMBOL_CALC_MODE_FOREX,
    "forex-no-leverage": mt5.SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE,
    "cfd": mt5.SYMBOL_CALC_MODE_CFD,
    "cfd-leverage": mt5.SYMBOL_CALC_MODE_CFDLEVERAGE,
    "futures": mt5.SYMBOL_CALC_MODE_FUTURES,
}
SWAP_MODES = {
    "disabled": mt5.SYMBOL_SWAP_MODE_DISABLED,
    "points": mt5.SYMBOL_SWAP_MODE_POINTS,
    "currency-deposit": mt5.SYMBOL_SWAP_MODE_CURRENCY_DEPOSIT,
}
WEEKDAYS = {
    "sunday": mt5.DAY_OF_WEEK_SUNDAY,
    "monday": mt5.DAY_OF_WEEK_MONDAY,
    "tuesday": mt5.DAY_OF_WEEK_TUESDAY,
    "wednesday": mt5.DAY_OF_WEEK_WEDNESDAY,
    "thursday": mt5.DAY_OF_WEEK_THURSDAY,
    "friday": mt5.DAY_OF_WEEK_FRIDAY,
    "saturday": mt5.DAY_OF_WEEK_SATURDAY,
}


# ---------------------------------------------------------------- parsers
def text(raw) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be a non-empty string")
    return raw


def free_text(raw) -> str:
    if not isinstance(raw, str):
        raise ValueError("must be a string")
    return raw


def boolean(raw) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"must be true or false, got {raw!r}")
    return raw


def integer(low: int, high: int) -> Callable:
    def parse(raw) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise ValueError(f"must be an integer between {low} and {high}, got {raw!r}")
        return raw

    return parse


def number(low: float, high: float, open_low: bool = False) -> Callable:
    def parse(raw) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ValueError(f"must be a number, got {raw!r}")
        if raw < low or raw > high or (open_low and raw == low):
            raise ValueError(f"must be {'above' if open_low else 'at least'} {low} and at most {high}, got {raw!r}")
        return float(raw)

    return parse


def decimal(low: str | None = None, positive: bool = False) -> Callable:
    """Exact amounts: written as strings ("0.001") or numbers; floats go through their repr."""

    def parse(raw) -> Decimal:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"must be a number or a numeric string, got {raw!r}")
        try:
            value = Decimal(str(raw).strip())
        except InvalidOperation:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not value.is_finite() or (positive and value <= 0) or (low is not None and value < Decimal(low)):
            raise ValueError(f"must be {'positive' if positive else f'at least {low}'}, got {raw!r}")
        return value

    return parse


def choice(table: dict) -> Callable:
    def parse(raw):
        if raw not in table:
            raise ValueError(f"must be one of {', '.join(map(str, table))}, got {raw!r}")
        return table[raw]

    return parse


def choice_set(table: dict) -> Callable:
    def parse(raw) -> frozenset:
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"must be a non-empty list of {', '.join(table)}")
        bad = [item for item in raw if item not in table]
        if bad:
            raise ValueError(f"unknown value {bad[0]!r}; allowed: {', '.join(table)}")
        return frozenset(table[item] for item in raw)

    return parse


def weekday_sessions(raw) -> tuple:
    """Sessions on Monday to Friday only: the simulated market does not move at weekends."""
    sessions = parse_sessions(raw)
    if any(day > 4 for day, _, _ in sessions):
        raise ValueError("sessions must be Mon-Fri: the simulated market is closed at weekends")
    return sessions


def currency(raw) -> str:
    if not isinstance(raw, str) or len(raw) != 3 or not raw.isalpha() or not raw.isupper():
        raise ValueError(f"must be a three-letter currency code such as USD, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Key:
    parse: Callable
    default: object = None  # None: required
    doc: str = ""


REQUIRED = None

ACCOUNT_KEYS: dict[str, Key] = {
    "description": Key(free_text, "", "what broker style this profile plays"),
    "name": Key(text, "Tradewatch Sim", "account holder name"),
    "company": Key(text, "Tradewatch Simulated Markets", "broker company"),
    "server": Key(text, "TradewatchSim-Demo", "trade server name"),
    "trade_mode": Key(choice(TRADE_MODES), "demo", "demo | contest | real"),
    "margin_mode": Key(choice(MARGIN_MODES), REQUIRED, "hedging | netting | exchange"),
    "currency": Key(currency, "USD", "account currency"),
    "leverage": Key(integer(1, 10_000), 100, "account leverage (1:N)"),
    "margin_call": Key(number(0, 10_000, open_low=True), 50.0, "margin call level, percent"),
    "stop_out": Key(number(0, 10_000), 30.0, "stop-out level, percent (0: never)"),
    "server_time": Key(choice({r: r for r in RULES}), "utc", "utc | fixed | us-dst"),
    "utc_offset_hours": Key(number(-12, 14), 0.0, "fixed offset, or the winter offset of us-dst"),
    "permissive_filling": Key(boolean, False, "accept IOC under Instant execution (the old sim)"),
}

SYMBOL_KEYS: dict[str, Key] = {
    "feed": Key(text, REQUIRED, "instrument of feeds.toml whose price path it follows"),
    "description": Key(text, REQUIRED, "symbol description"),
    "path": Key(text, REQUIRED, "Market Watch folder path"),
    "base": Key(currency, REQUIRED, "base currency"),
    "quote": Key(currency, REQUIRED, "profit (quote) currency"),
    "digits": Key(integer(0, 8), REQUIRED, "price digits"),
    "tick_size": Key(decimal(low="0"), "0", "smallest price change; 0: one point"),
    "contract_size": Key(decimal(positive=True), REQUIRED, "units per lot"),
    "calc_mode": Key(choice(CALC_MODES), REQUIRED, "forex | forex-no-leverage | cfd | cfd-leverage | futures"),
    "margin_initial": Key(decimal(low="0"), "0", "futures: margin per lot (margin currency)"),
    "tick_value": Key(decimal(low="0"), "0", "futures: value of one tick per lot (quote currency)"),
    "volume_min": Key(decimal(positive=True), "0.01", "smallest volume"),
    "volume_max": Key(decimal(positive=True), "100", "largest volume"),
    "volume_step": Key(decimal(positive=True), "0.01", "volume step (e.g. 0.001)"),
    "execution": Key(choice(EXECUTIONS), "instant", "request | instant | market | exchange"),
    "filling": Key(choice_set(FILLINGS), ["FOK"], "fillings accepted on market orders: FOK, IOC, RETURN"),
    "orders": Key(choice_set(ORDER_MODES), ["market", "sl", "tp"], "order types the symbol allows"),
    "stops_level": Key(integer(0, 100_000), 0, "minimum SL/TP distance, points"),
    "freeze_level": Key(integer(0, 100_000), 0, "no change within this many points of the market"),
    "swap_mode": Key(choice(SWAP_MODES), "points", "disabled | points | currency-deposit"),
    "swap_long": Key(decimal(), "0", "swap per lot per day for longs"),
    "swap_short": Key(decimal(), "0", "swap per lot per day for shorts"),
    "triple_swap_day": Key(choice(WEEKDAYS), "wednesday", "weekday whose rollover charges 3 days"),
    "commission_per_lot": Key(decimal(), "0", "per lot per deal, account currency (negative = charge)"),
    "market_watch": Key(boolean, True, "in Market Watch when the terminal starts"),
    "trade_sessions": Key(weekday_sessions, [FULL_WEEK], "trading sessions, server time"),
    "quote_sessions": Key(weekday_sessions, [FULL_WEEK], "quote sessions, server time"),
    "start_price": Key(number(0, 1e9, open_low=True), REQUIRED, "mid price at the anchor"),
    "annual_vol": Key(number(0, 5, open_low=True), REQUIRED, "annualised volatility"),
    "typical_spread": Key(integer(1, 100_000), REQUIRED, "mean spread, points"),
    "max_slippage": Key(integer(0, 100_000), 2, "largest seeded slippage, points"),
    "requote_share": Key(number(0, 1), 0.0, "request execution: share of requests requoted anyway"),
}
