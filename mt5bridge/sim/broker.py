"""The simulated trade server: executes requests against the books and lets market time act on them.

Time acts on the books in strict sim-time order, lazily, whenever the terminal is called:
stop-loss / take-profit triggers and stop-outs are found on the seeded tick path (one tick per
second) and rollover swaps are charged at server midnight. Because the scan covers every tick
since the last one processed, the result is the same however often the terminal is polled.
All times here are *server* time (the profile's clock), as MT5 reports them.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from mt5bridge.constants import (
    DEAL_REASON_EXPERT,
    ORDER_REASON_EXPERT,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_FROZEN,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_POSITION_CLOSED,
)

from . import execution, money, netting
from .book import Books, Position
from .booking import Fill, Ledger, Origin, is_long
from .conversion import Converter
from .markettime import MarketTime
from .orderrequest import OrderRequest, Rejected
from .profile import AccountSpec
from .quotes import Quotes
from .sessions import is_open
from .symbols import SymbolSpec
from .tradingtime import (
    is_weekend,
)

log = logging.getLogger(__name__)

__all__ = ["AccountState", "Broker", "Fill"]


@dataclass(frozen=True)
class AccountState:
    balance: Decimal
    profit: Decimal  # floating profit including swaps, so equity = balance + profit
    equity: Decimal
    margin: Decimal
    margin_free: Decimal
    margin_level: Decimal  # percent; 0 when there is no margin


_ZERO = Decimal(0)
#: What an open position adds to the account state (its floating profit, swap and margin) depends on.
_POSITION_INPUTS = attrgetter("symbol", "type", "volume", "price_open", "swap")


@dataclass(frozen=True)
class _Plan:
    """A request that passed every check, with the price it would fill at."""

    price: int
    margin: Decimal
    position: Position | None  # an explicit close (``position=`` ticket)


class Broker(MarketTime):
    """Executes requests against ``Books`` (market events: ``MarketTime``); callers hold the terminal lock."""

    def __init__(
        self,
        books: Books,
        quotes: Quotes,
        account: AccountSpec,
        seed: int,
        synced_k: int,
        rolled_day: int,
        leverage: int | None = None,
    ):
        self.books = books
        self.quotes = quotes
        self.account_spec = account
        self.leverage = leverage or account.leverage
        self.converter = Converter(account.currency, quotes.specs, quotes)
        self.ledger = Ledger(books, quotes, self.converter)
        self.synced_k = synced_k  # last tick whose SL/TP triggers and stop-outs have been processed
        self.rolled_day = rolled_day  # last trading day whose closing rollover has been charged
        self.dirty = False  # books changed since the owner last saved them
        self.margin_call = False  # margin level below the profile's margin-call level
        self._margin_checked: tuple[int, int, int] | None = None
        self._account_inputs: tuple | None = None  # what _account_state was worked out from (see account)
        self._account_state: AccountState | None = None
        self._seed = seed

    # ----------------------------------------------------------------- valuation
    def valuation(self, position: Position, k: int) -> tuple[Decimal, int]:
        """(floating profit in account currency, current closing price in points) of ``position``."""
        bid, ask = self.quotes.quote(position.symbol, k)
        current = bid if is_long(position) else ask
        return self.ledger.profit(position, position.volume, current, k), current

    def margin_for(self, spec: SymbolSpec, volume: Decimal, price: int, k: int) -> Decimal:
        """Margin (unrounded, account currency) for ``volume`` lots at ``price`` points."""
        at = spec.to_price(price)
        return money.margin(spec, volume, at, self.leverage, self.converter.margin_rate(spec, k, at))

    def margin(self, k: int, extra_margin: Decimal = Decimal(0)) -> Decimal:
        """The account's margin at tick ``k`` (cents), ``extra_margin`` included: ``account(k).margin``
        without valuing the positions (the stop-out scan needs only this)."""
        margin = extra_margin
        for position in self.books.positions.values():
            margin += self.margin_for(self.quotes.spec(position.symbol), position.volume, position.price_open, k)
        return money.cents(margin)

    def account(self, k: int, extra_margin: Decimal = _ZERO, extra_balance: Decimal = _ZERO) -> AccountState:
        """The account at tick ``k``, with ``extra_margin`` and ``extra_balance`` (an order's, to check it).

        Without extras the state is kept for the inputs it was worked out from (the tick, the
        balance, the pinned quotes, each open position's symbol, side, volume, price and swap):
        the margin-call check of a step and the account_info after it ask for the same state
        (issue 16). Anything else it reads is fixed for the broker's life (specs, price paths,
        leverage), so the state kept is the one a fresh computation gives."""
        if extra_margin is not _ZERO or extra_balance is not _ZERO:
            return self._account(k, extra_margin, extra_balance)
        books = self.books
        # The balance by its digits and exponent: it is the one input the state shows as it is
        # (10000 and 10000.00 are equal, but not the same balance to report).
        balance = books.balance.as_tuple()
        inputs = (k, balance, self.quotes.pinned(), tuple(map(_POSITION_INPUTS, books.positions.values())))
        if inputs != self._account_inputs:
            self._account_state, self._account_inputs = self._account(k, _ZERO, _ZERO), inputs
        return self._account_state

    def _account(self, k: int, extra_margin: Decimal, extra_balance: Decimal) -> AccountState:
        floating = Decimal(0)
        for position in self.books.positions.values():
            floating += self.valuation(position, k)[0] + position.swap
        margin = self.margin(k, extra_margin)
        balance = self.books.balance + extra_balance
        equity = balance + floating
        level = money.cents(equity / margin * 100) if margin else Decimal(0)
        return AccountState(balance, floating, equity, margin, equity - margin, level)

    # ----------------------------------------------------------------- trading
    def check(self, request: OrderRequest, now: float, k: int) -> tuple[AccountState, Decimal]:
        """Validate like ``execute`` without changing anything: (account after, margin required)."""
        if request.action == TRADE_ACTION_SLTP:
            self._validate_modify(request, now, k)
            return self.account(k), Decimal(0)
        plan = self._plan(request, now, k, attempt=None)
        commission = money.commission(request.spec, request.volume)
        return self.account(k, plan.margin, commission), money.cents(plan.margin)

    def execute(self, request: OrderRequest, now: float, k: int, attempt: int = 0) -> Fill:
        """Execute a validated request or raise Rejected. ``attempt`` seeds slippage and requotes."""
        if request.action == TRADE_ACTION_SLTP:
            position = self._validate_modify(request, now, k)
            position.sl, position.tp = request.sl, request.tp
            position.time_update_msc = int(now * 1000)
            self.dirty = True
            return Fill(0, 0, Decimal(0), 0)
        plan = self._plan(request, now, k, attempt=attempt)
        self.dirty = True
        opening = plan.position is None
        origin = Origin(
            k, int(now * 1000), request.magic, request.comment, DEAL_REASON_EXPERT, ORDER_REASON_EXPERT,
            request.type_filling, request.type_time, request.price or plan.price,
            request.sl if opening else 0, request.tp if opening else 0,
        )  # fmt: skip
        if plan.position is not None:
            return self.ledger.close(plan.position, request.volume, plan.price, origin)
        if self.account_spec.netting:
            return netting.apply(self.ledger, request.symbol, request.is_buy, request.volume, plan.price, origin)
        return self.ledger.open(request.symbol, request.is_buy, request.volume, plan.price, origin)

    def _plan(self, request: OrderRequest, now: float, k: int, attempt: int | None) -> _Plan:
        spec = request.spec
        position = None
        if request.position:
            position = self._position_for(request)
            if request.is_buy == is_long(position):
                raise Rejected(TRADE_RETCODE_INVALID, "A close must be opposite to the position")
            if request.volume > position.volume:
                raise Rejected(TRADE_RETCODE_INVALID_CLOSE_VOLUME, "Close volume exceeds the position volume")
        self._check_open(spec, now)
        bid, ask = self.quotes.quote(request.symbol, k)
        net = netting.position_of(self.books, request.symbol) if self.account_spec.netting else None
        kind = netting.outcome(net, request.is_buy, request.volume) if position is None else netting.REDUCE
        closing = position if position is not None else (net if kind != netting.OPEN else None)
        if closing is not None and kind != netting.ADD:
            self._check_freeze(spec, closing, bid, ask)
        if kind != netting.REDUCE:
            self._validate_stops(spec, request.is_buy, request.sl, request.tp, bid, ask)
        draw = None if attempt is None else execution.requote_draw(self._seed, attempt)
        market, refusal = execution.market_price(
            spec, request.is_buy, request.price, request.deviation, bid, ask, draw
        )
        if refusal is not None:
            raise Rejected(market, refusal)
        price = market
        if attempt is not None:
            slip = execution.slippage(spec, request.deviation, self._seed, self.books.next_order)
            price = market + slip if request.is_buy else market - slip
            price = execution.within_deviation(spec, request.price, request.deviation, price)
        if kind == netting.REDUCE:
            return _Plan(price, Decimal(0), position)
        required = self.margin_for(spec, request.volume, price, k)
        if kind == netting.REVERSE:
            required = self.margin_for(spec, request.volume - net.volume, price, k) - self.margin_for(
                spec, net.volume, net.price_open, k
            )
        after = self.account(k, required, money.commission(spec, request.volume))
        if after.margin_free < 0:
            raise Rejected(TRADE_RETCODE_NO_MONEY, "No money")
        return _Plan(price, required, None)

    @staticmethod
    def _check_open(spec: SymbolSpec, now: float) -> None:
        if is_weekend(now) or not is_open(spec.trade_sessions, now):
            raise Rejected(TRADE_RETCODE_MARKET_CLOSED, "Market closed")

    def _position_for(self, request: OrderRequest) -> Position:
        position = self.books.positions.get(request.position)
        if position is None:
            raise Rejected(TRADE_RETCODE_POSITION_CLOSED, f"Position {request.position} not found")
        if position.symbol != request.symbol:
            raise Rejected(TRADE_RETCODE_INVALID, f"Position {request.position} is not {request.symbol}")
        return position

    def _validate_modify(self, request: OrderRequest, now: float, k: int) -> Position:
        position = self._position_for(request)
        self._check_open(request.spec, now)
        if (position.sl, position.tp) == (request.sl, request.tp):
            raise Rejected(TRADE_RETCODE_NO_CHANGES, "No changes")
        bid, ask = self.quotes.quote(request.symbol, k)
        self._check_freeze(request.spec, position, bid, ask)
        self._validate_stops(request.spec, is_long(position), request.sl, request.tp, bid, ask)
        return position

    @staticmethod
    def _check_freeze(spec: SymbolSpec, position: Position, bid: int, ask: int) -> None:
        """No change or close of a position whose SL/TP is within ``freeze_level`` of the market.

        Measured from the price the SL/TP triggers on: Bid for a long, Ask for a short.
        """
        freeze = spec.freeze_level
        if not freeze or not (position.sl or position.tp):
            return
        if is_long(position):
            frozen = (position.sl and bid - position.sl < freeze) or (position.tp and position.tp - bid < freeze)
        else:
            frozen = (position.sl and position.sl - ask < freeze) or (position.tp and ask - position.tp < freeze)
        if frozen:
            raise Rejected(TRADE_RETCODE_FROZEN, "Frozen: SL/TP within the freeze level of the market")

    @staticmethod
    def _validate_stops(spec: SymbolSpec, long: bool, sl: int, tp: int, bid: int, ask: int) -> None:
        """SL/TP must be on the right side of the closing price (Bid for a buy, Ask for a sell)
        and at least stops_level points away from it."""
        level = max(spec.stops_level, 1)
        if long:
            bad = (sl and bid - sl < level) or (tp and tp - bid < level)
        else:
            bad = (sl and sl - ask < level) or (tp and ask - tp < level)
        if bad:
            raise Rejected(TRADE_RETCODE_INVALID_STOPS, "Invalid stops")
