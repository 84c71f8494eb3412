"""Exact account-currency arithmetic for profit, margin, swap and commission.

All amounts are Decimal and are rounded to the cent once per booked amount, the way a broker
books them, so balances add up exactly. The account currency is USD; a symbol quoted in another
currency (USDJPY, USDCHF) is converted at the symbol's own price, the MetaTrader 5 convention.
"""

from decimal import ROUND_HALF_UP, Decimal

from mt5bridge.constants import SYMBOL_CALC_MODE_FOREX

from .symbols import SymbolSpec

ACCOUNT_CURRENCY = "USD"
CENT = Decimal("0.01")
#: Commission charged on every deal, per lot (so a round trip costs twice this).
COMMISSION_PER_LOT = Decimal("-3.50")


def cents(amount: Decimal) -> Decimal:
    """Round to the cent, half away from zero."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def quote_to_account(spec: SymbolSpec, amount: Decimal, price: Decimal) -> Decimal:
    """Convert an amount in the symbol's quote currency to USD at ``price`` (unrounded)."""
    if spec.quote == ACCOUNT_CURRENCY:
        return amount
    if spec.base == ACCOUNT_CURRENCY:
        return amount / price
    raise ValueError(f"{spec.name}: no USD leg to convert through")


def profit(
    spec: SymbolSpec, is_buy: bool, volume: Decimal, open_price: Decimal, close_price: Decimal
) -> Decimal:
    """Profit of ``volume`` lots opened at ``open_price`` and valued at ``close_price``, in cents."""
    move = close_price - open_price if is_buy else open_price - close_price
    return cents(quote_to_account(spec, move * spec.contract_size * volume, close_price))


def margin(spec: SymbolSpec, volume: Decimal, price: Decimal, leverage: int) -> Decimal:
    """Margin for ``volume`` lots at ``price`` (unrounded): forex in the base currency, CFD at price."""
    notional = volume * spec.contract_size / leverage
    if spec.calc_mode == SYMBOL_CALC_MODE_FOREX:
        if spec.base == ACCOUNT_CURRENCY:
            return notional
        if spec.quote == ACCOUNT_CURRENCY:
            return notional * price
        raise ValueError(f"{spec.name}: no USD leg to convert through")
    return quote_to_account(spec, notional * price, price)


def tick_value(spec: SymbolSpec, price: Decimal) -> Decimal:
    """Value in USD of one point move for one lot (unrounded)."""
    return quote_to_account(spec, spec.point * spec.contract_size, price)


def commission(volume: Decimal) -> Decimal:
    """Commission for one deal of ``volume`` lots."""
    return cents(COMMISSION_PER_LOT * volume)


def swap_charge(spec: SymbolSpec, is_buy: bool, volume: Decimal, price: Decimal, days: int) -> Decimal:
    """Swap for holding ``volume`` lots over ``days`` rollovers, from the points-mode swap rates."""
    rate = spec.swap_long if is_buy else spec.swap_short
    return cents(rate * tick_value(spec, price) * volume * days)
