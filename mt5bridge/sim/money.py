"""Exact account-currency arithmetic for profit, margin, swap and commission, per calc mode.

All amounts are Decimal and are rounded to the cent once per booked amount, the way a broker
books them, so balances add up exactly. Amounts in another currency are converted with a
``Rate`` (see ``conversion``): a multiplier and a divisor kept apart, so that converting JPY at
USDJPY's price is one exact division, as MetaTrader 5 does it.

Margin by calc mode (MQL5 "margin calculation"): forex = lots * contract / leverage (margin in
the base currency); forex-no-leverage = lots * contract; CFD = lots * contract * price (no
leverage); CFD-leverage = lots * contract * price / leverage; futures = lots * initial margin.
Profit: (close - open) * contract * lots, except futures: (close - open) / tick_size * tick_value
* lots.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from mt5bridge.constants import (
    SYMBOL_CALC_MODE_CFD,
    SYMBOL_CALC_MODE_CFDLEVERAGE,
    SYMBOL_CALC_MODE_FOREX,
    SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE,
    SYMBOL_CALC_MODE_FUTURES,
    SYMBOL_SWAP_MODE_CURRENCY_DEPOSIT,
    SYMBOL_SWAP_MODE_DISABLED,
    SYMBOL_SWAP_MODE_POINTS,
)

from .symbols import SymbolSpec

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Rate:
    """Account-currency units per unit of some currency: ``amount * mul / div``."""

    mul: Decimal = Decimal(1)
    div: Decimal = Decimal(1)

    def apply(self, amount: Decimal) -> Decimal:
        return amount * self.mul / self.div


ONE = Rate()


def cents(amount: Decimal) -> Decimal:
    """Round to the cent, half away from zero."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def profit(
    spec: SymbolSpec, is_buy: bool, volume: Decimal, open_price: Decimal, close_price: Decimal, rate: Rate = ONE
) -> Decimal:
    """Profit of ``volume`` lots opened at ``open_price`` and valued at ``close_price``, in cents.

    ``rate`` converts the profit (quote) currency to the account currency.
    """
    move = close_price - open_price if is_buy else open_price - close_price
    if spec.calc_mode == SYMBOL_CALC_MODE_FUTURES:
        amount = move / spec.tick_size_price * spec.tick_value * volume
    else:
        amount = move * spec.contract_size * volume
    return cents(rate.apply(amount))


#: Margin in the margin currency, by calc mode: f(spec, volume, price, leverage).
_MARGIN = {
    SYMBOL_CALC_MODE_FOREX: lambda s, v, p, lev: v * s.contract_size / lev,
    SYMBOL_CALC_MODE_FOREX_NO_LEVERAGE: lambda s, v, p, lev: v * s.contract_size,
    SYMBOL_CALC_MODE_CFD: lambda s, v, p, lev: v * s.contract_size * p,
    SYMBOL_CALC_MODE_CFDLEVERAGE: lambda s, v, p, lev: v * s.contract_size / lev * p,
    SYMBOL_CALC_MODE_FUTURES: lambda s, v, p, lev: v * s.margin_initial,
}


def margin(spec: SymbolSpec, volume: Decimal, price: Decimal, leverage: int, rate: Rate = ONE) -> Decimal:
    """Margin for ``volume`` lots at ``price`` in the account currency (unrounded).

    ``rate`` converts the margin currency (``spec.margin_currency``) to the account currency.
    """
    return rate.apply(_MARGIN[spec.calc_mode](spec, volume, price, leverage))


def tick_value(spec: SymbolSpec, rate: Rate = ONE) -> Decimal:
    """Account-currency value of one point move for one lot (unrounded); ``rate``: quote currency."""
    if spec.calc_mode == SYMBOL_CALC_MODE_FUTURES:
        return rate.apply(spec.tick_value / spec.tick_size)
    return rate.apply(spec.point * spec.contract_size)


def commission(spec: SymbolSpec, volume: Decimal) -> Decimal:
    """Commission for one deal of ``volume`` lots (IN and OUT deals are charged alike)."""
    return cents(spec.commission_per_lot * volume)


def swap_charge(spec: SymbolSpec, is_buy: bool, volume: Decimal, days: int, rate: Rate = ONE) -> Decimal:
    """Swap for holding ``volume`` lots over ``days`` rollovers.

    Points mode: rate (points per lot) * tick value (``rate`` converts the quote currency);
    currency-deposit mode: the rate is already account currency per lot.
    """
    per_lot = spec.swap_long if is_buy else spec.swap_short
    if spec.swap_mode == SYMBOL_SWAP_MODE_DISABLED:
        return Decimal(0)
    if spec.swap_mode == SYMBOL_SWAP_MODE_POINTS:
        return cents(per_lot * tick_value(spec, rate) * volume * days)
    if spec.swap_mode == SYMBOL_SWAP_MODE_CURRENCY_DEPOSIT:
        return cents(per_lot * volume * days)
    raise ValueError(f"{spec.name}: swap mode {spec.swap_mode} is not simulated")
