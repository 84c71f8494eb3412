"""A symbol as one broker offers it: contract specification, trading rules and price model.

Specs are built from a broker profile (``profiles/``): the market facts of the instrument come
from ``profiles/feeds.toml`` and the broker's choices (name suffix, execution and filling, levels,
sessions, swaps, commission) from the profile. Everything that money depends on is a Decimal so
the books are exact; the price-model parameters (volatility, typical spread) are plain floats.
Specs are frozen and hashable: the price path cache is keyed by them.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from mt5bridge.constants import (
    SYMBOL_CALC_MODE_FOREX,
    SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE,
)

from .sessions import Sessions


@dataclass(frozen=True)
class SymbolSpec:
    """Contract specification, broker rules and the parameters of the symbol's seeded price process."""

    name: str  # the broker's name, e.g. "EURUSD.m"
    feed: str  # the instrument whose seeded price path it follows, e.g. "EURUSD"
    description: str
    path: str
    base: str
    quote: str
    digits: int
    contract_size: Decimal
    calc_mode: int
    volume_min: Decimal
    volume_max: Decimal
    volume_step: Decimal
    stops_level: int  # points
    swap_long: Decimal  # per lot per day, in the unit of swap_mode
    swap_short: Decimal
    start_price: float  # mid price at the anchor (2026-01-05 00:00 server time)
    annual_vol: float
    typical_spread: int  # points
    max_slippage: int  # points
    tick_size: int = 1  # points; an index may move in steps of 25 points (0.25)
    freeze_level: int = 0  # points
    execution: int = 1  # SYMBOL_TRADE_EXECUTION_*
    filling: frozenset = frozenset({0, 1})  # ORDER_FILLING_* accepted on market orders
    filling_mode: int = 3  # SYMBOL_FILLING_* bits reported by symbol_info
    order_mode: int = 1 | 16 | 32  # SYMBOL_ORDER_* bits
    swap_mode: int = 1  # SYMBOL_SWAP_MODE_*
    swap_rollover3days: int = 3  # MT5 day of week (Sunday = 0) of the triple swap
    commission_per_lot: Decimal = Decimal("-3.50")  # account currency, charged on IN and OUT deals
    margin_initial: Decimal = Decimal(0)  # futures: margin per lot in the margin currency
    tick_value: Decimal = Decimal(0)  # futures: value of one tick_size move per lot, quote currency
    market_watch: bool = True  # in Market Watch when the terminal starts
    trade_sessions: Sessions = ()
    quote_sessions: Sessions = ()
    requote_share: float = 0.0  # Request execution: share of requests the dealer requotes anyway
    trade_mode: int = 4  # SYMBOL_TRADE_MODE_FULL

    # Derived once per (frozen) spec, not on each of the ~100 reads a cycle (issue 16);
    # cached_property stores beside the fields, so equality, hashing and replace() are unchanged.
    @cached_property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    @cached_property
    def tick_size_price(self) -> Decimal:
        return self.tick_size * self.point

    @cached_property
    def scale(self) -> int:
        """Points per unit of price (10 ** digits)."""
        return 10**self.digits

    @cached_property
    def margin_currency(self) -> str:
        forex = self.calc_mode in (SYMBOL_CALC_MODE_FOREX, SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE)
        return self.base if forex else self.quote

    def to_price(self, points: int) -> Decimal:
        """Exact price of an integer number of points."""
        return Decimal(points).scaleb(-self.digits)

    def to_float(self, points: int) -> float:
        """Price as MT5 reports it: a float rounded to ``digits``."""
        return points / self.scale
