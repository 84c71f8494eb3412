"""Conversion of profit, margin and swap currencies into the account currency.

MetaTrader 5 converts through the symbol itself when it has the account currency as one leg
(USDJPY profit in JPY is divided by USDJPY's own price), otherwise through another symbol of the
server that pairs the currency with the account currency (EURJPY profit in JPY through USDJPY).
The sim converts at that symbol's bid; profiles are checked at load time to have such a symbol.
"""

from decimal import Decimal

from .money import ONE, Rate
from .quotes import Quotes
from .symbols import SymbolSpec


class Converter:
    def __init__(self, account_currency: str, symbols: dict[str, SymbolSpec], quotes: Quotes):
        self.currency = account_currency
        self._quotes = quotes
        self._via: dict[str, tuple[str, bool]] = {}  # currency -> (symbol, currency is its base)
        for spec in symbols.values():
            if spec.quote == account_currency and spec.base != account_currency:
                self._via.setdefault(spec.base, (spec.name, True))
            elif spec.base == account_currency and spec.quote != account_currency:
                self._via.setdefault(spec.quote, (spec.name, False))

    def rate(self, currency: str, k: int, own: SymbolSpec | None = None, price: Decimal | None = None) -> Rate:
        """Account units per unit of ``currency`` at tick ``k``.

        With ``own``/``price``: a symbol that has the account currency as a leg converts at
        ``price``, its own price at that moment (the MT5 convention).
        """
        if currency == self.currency:
            return ONE
        if own is not None and price is not None:
            if own.quote == self.currency and own.base == currency:
                return Rate(mul=price)
            if own.base == self.currency and own.quote == currency:
                return Rate(div=price)
        symbol, is_base = self._via[currency]
        spec = self._quotes.spec(symbol)
        bid = spec.to_price(self._quotes.quote(symbol, k)[0])
        return Rate(mul=bid) if is_base else Rate(div=bid)

    def profit_rate(self, spec: SymbolSpec, k: int, price: Decimal) -> Rate:
        return self.rate(spec.quote, k, spec, price)

    def margin_rate(self, spec: SymbolSpec, k: int, price: Decimal) -> Rate:
        return self.rate(spec.margin_currency, k, spec, price)
