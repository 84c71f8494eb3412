"""The instruments the simulated broker offers, with broker-like contract specifications.

Everything that money depends on (point, contract size, volume limits) is a Decimal so that the
books are exact; the price-model parameters (volatility, typical spread) are plain floats.
"""

from dataclasses import dataclass
from decimal import Decimal

from mt5bridge.constants import SYMBOL_CALC_MODE_CFD, SYMBOL_CALC_MODE_FOREX


@dataclass(frozen=True)
class SymbolSpec:
    """Contract specification plus the parameters of the symbol's seeded price process."""

    name: str
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
    swap_long: Decimal  # points per lot per day
    swap_short: Decimal
    start_price: float  # mid price at the anchor (2026-01-05 00:00 UTC)
    annual_vol: float
    typical_spread: int  # points
    max_slippage: int  # points

    @property
    def point(self) -> Decimal:
        return Decimal(1).scaleb(-self.digits)

    @property
    def scale(self) -> int:
        """Points per unit of price (10 ** digits)."""
        return 10**self.digits

    @property
    def margin_currency(self) -> str:
        return self.base if self.calc_mode == SYMBOL_CALC_MODE_FOREX else self.quote

    def to_price(self, points: int) -> Decimal:
        """Exact price of an integer number of points."""
        return Decimal(points).scaleb(-self.digits)

    def to_float(self, points: int) -> float:
        """Price as MT5 reports it: a float rounded to ``digits``."""
        return points / self.scale


def _forex(name, description, digits, price, vol, spread, swap_long, swap_short, slippage=2):
    base, quote = name[:3], name[3:]
    return SymbolSpec(
        name=name,
        description=description,
        path=f"Forex\\Majors\\{name}",
        base=base,
        quote=quote,
        digits=digits,
        contract_size=Decimal(100000),
        calc_mode=SYMBOL_CALC_MODE_FOREX,
        volume_min=Decimal("0.01"),
        volume_max=Decimal(100),
        volume_step=Decimal("0.01"),
        stops_level=10,
        swap_long=Decimal(swap_long),
        swap_short=Decimal(swap_short),
        start_price=price,
        annual_vol=vol,
        typical_spread=spread,
        max_slippage=slippage,
    )


SYMBOLS: dict[str, SymbolSpec] = {
    spec.name: spec
    for spec in (
        _forex("EURUSD", "Euro vs US Dollar", 5, 1.17200, 0.07, 10, "-8.0", "3.0"),
        _forex("GBPUSD", "Great Britain Pound vs US Dollar", 5, 1.34500, 0.08, 14, "-4.0", "-1.0"),
        _forex("AUDUSD", "Australian Dollar vs US Dollar", 5, 0.66800, 0.09, 12, "-3.0", "-1.5"),
        _forex("USDJPY", "US Dollar vs Japanese Yen", 3, 156.500, 0.09, 15, "15.0", "-30.0"),
        _forex("USDCHF", "US Dollar vs Swiss Franc", 5, 0.79200, 0.07, 15, "8.0", "-20.0"),
        SymbolSpec(
            name="XAUUSD",
            description="Gold vs US Dollar",
            path="Metals\\XAUUSD",
            base="XAU",
            quote="USD",
            digits=2,
            contract_size=Decimal(100),
            calc_mode=SYMBOL_CALC_MODE_CFD,
            volume_min=Decimal("0.01"),
            volume_max=Decimal(50),
            volume_step=Decimal("0.01"),
            stops_level=50,
            swap_long=Decimal("-55.0"),
            swap_short=Decimal("30.0"),
            start_price=4350.00,
            annual_vol=0.15,
            typical_spread=25,
            max_slippage=5,
        ),
    )
}

for _spec in SYMBOLS.values():
    # The money code converts only through USD; a cross pair would need a conversion symbol.
    assert "USD" in (_spec.base, _spec.quote), _spec.name
