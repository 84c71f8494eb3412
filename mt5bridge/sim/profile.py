"""What a broker profile resolves to: the account's rules and the broker's symbol table."""

from dataclasses import dataclass

from mt5bridge.constants import ACCOUNT_MARGIN_MODE_EXCHANGE, ACCOUNT_MARGIN_MODE_RETAIL_NETTING

from .servertime import ServerTime
from .symbols import SymbolSpec


@dataclass(frozen=True)
class AccountSpec:
    name: str
    company: str
    server: str
    trade_mode: int
    margin_mode: int
    currency: str
    leverage: int
    margin_call: float  # percent
    stop_out: float  # percent; 0 = never
    server_time: ServerTime
    permissive_filling: bool  # the old simulator accepted IOC under Instant execution
    description: str = ""

    @property
    def netting(self) -> bool:
        """One position per symbol: retail netting, and exchange accounts alike."""
        return self.margin_mode in (ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_EXCHANGE)


@dataclass(frozen=True)
class Profile:
    name: str
    source: str  # the file it was read from
    account: AccountSpec
    symbols: dict[str, SymbolSpec]
