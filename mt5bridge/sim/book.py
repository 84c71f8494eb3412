"""The broker's books: account balance, open positions, history orders and deals.

Prices are stored as integer points and money as Decimal, so the books are exact and survive a
JSON round trip unchanged (the state file). Conversion to the MetaTrader5 result tuples happens
at the API edge, in ``views``.
"""

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal


@dataclass
class Position:
    ticket: int
    symbol: str
    type: int
    volume: Decimal
    price_open: int
    sl: int  # points, 0 = none
    tp: int
    time_msc: int
    time_update_msc: int
    magic: int
    comment: str
    reason: int
    swap: Decimal = Decimal(0)
    identifier: int = 0  # POSITION_IDENTIFIER; 0 = the ticket (a netting reversal changes only the ticket)

    @property
    def position_id(self) -> int:
        return self.identifier or self.ticket


@dataclass
class HistoryOrder:
    ticket: int
    symbol: str
    type: int
    type_filling: int
    type_time: int
    state: int
    magic: int
    position_id: int
    reason: int
    volume: Decimal
    price_open: int
    price_current: int
    sl: int
    tp: int
    time_setup_msc: int
    time_done_msc: int
    comment: str


@dataclass
class Deal:
    ticket: int
    order: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: Decimal
    price: int
    commission: Decimal
    swap: Decimal
    profit: Decimal
    symbol: str
    comment: str


_DECIMAL_FIELDS = {
    cls: {f.name for f in fields(cls) if f.type is Decimal} for cls in (Position, HistoryOrder, Deal)
}


def _dump(record) -> dict:
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(record).items()}


def _load(cls, data: dict):
    decimals = _DECIMAL_FIELDS[cls]
    return cls(**{k: Decimal(v) if k in decimals else v for k, v in data.items()})


@dataclass
class Books:
    """Everything the broker must remember; ticket counters are unique and increasing."""

    balance: Decimal
    positions: dict[int, Position] = field(default_factory=dict)
    orders: list[HistoryOrder] = field(default_factory=list)
    deals: list[Deal] = field(default_factory=list)
    next_order: int = 1_000_001
    next_deal: int = 2_000_001
    next_request: int = 1

    def take_order_ticket(self) -> int:
        self.next_order += 1
        return self.next_order - 1

    def take_deal_ticket(self) -> int:
        self.next_deal += 1
        return self.next_deal - 1

    def take_request_id(self) -> int:
        self.next_request += 1
        return self.next_request - 1

    def to_dict(self) -> dict:
        return {
            "balance": str(self.balance),
            "positions": [_dump(p) for p in self.positions.values()],
            "orders": [_dump(o) for o in self.orders],
            "deals": [_dump(d) for d in self.deals],
            "next_order": self.next_order,
            "next_deal": self.next_deal,
            "next_request": self.next_request,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Books":
        positions = [_load(Position, p) for p in data["positions"]]
        return cls(
            balance=Decimal(data["balance"]),
            positions={p.ticket: p for p in positions},
            orders=[_load(HistoryOrder, o) for o in data["orders"]],
            deals=[_load(Deal, d) for d in data["deals"]],
            next_order=int(data["next_order"]),
            next_deal=int(data["next_deal"]),
            next_request=int(data["next_request"]),
        )
