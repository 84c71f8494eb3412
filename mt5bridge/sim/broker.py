"""The simulated trade server: executes requests against the books and lets market time act on them.

Time acts on the books in strict sim-time order, lazily, whenever the terminal is called:
stop-loss / take-profit triggers are found on the seeded tick path (one tick per second) and
rollover swaps are charged at the end of each trading day. Because the scan covers every tick
since the last one processed, the result is the same however often the terminal is polled.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from mt5bridge.constants import (
    DEAL_ENTRY_IN,
    DEAL_ENTRY_OUT,
    DEAL_REASON_EXPERT,
    DEAL_REASON_SL,
    DEAL_REASON_TP,
    DEAL_TYPE_BUY,
    DEAL_TYPE_SELL,
    ORDER_FILLING_FOK,
    ORDER_REASON_EXPERT,
    ORDER_REASON_SL,
    ORDER_REASON_TP,
    ORDER_STATE_FILLED,
    ORDER_TIME_GTC,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    POSITION_REASON_EXPERT,
    POSITION_TYPE_BUY,
    TRADE_ACTION_SLTP,
    TRADE_RETCODE_INVALID,
    TRADE_RETCODE_INVALID_CLOSE_VOLUME,
    TRADE_RETCODE_INVALID_STOPS,
    TRADE_RETCODE_MARKET_CLOSED,
    TRADE_RETCODE_NO_CHANGES,
    TRADE_RETCODE_NO_MONEY,
    TRADE_RETCODE_POSITION_CLOSED,
    TRADE_RETCODE_REQUOTE,
)

from . import money
from .book import Books, Deal, HistoryOrder, Position
from .levels import STREAM_SLIPPAGE, rng_for
from .orderrequest import OrderRequest, Rejected
from .quotes import Quotes
from .symbols import SymbolSpec
from .tradingtime import (
    DAY_SECONDS,
    WEDNESDAY,
    is_week_open,
    is_weekend,
    rollover_epoch,
    tick_epoch,
    trading_day,
    weekday_of_trading_day,
)

log = logging.getLogger(__name__)

SLIPPAGE_NONE_SHARE = 0.6  # most market fills are at the quoted price
SLIPPAGE_ADVERSE_SHARE = 0.25  # the rest split between worse and better prices


@dataclass(frozen=True)
class AccountState:
    balance: Decimal
    profit: Decimal  # floating profit including swaps, so equity = balance + profit
    equity: Decimal
    margin: Decimal
    margin_free: Decimal
    margin_level: Decimal  # percent; 0 when there is no margin


@dataclass(frozen=True)
class Fill:
    order: int
    deal: int
    volume: Decimal
    price: int


@dataclass(frozen=True)
class _Plan:
    """A request that passed every check, with the price it would fill at."""

    price: int
    margin: Decimal
    position: Position | None


@dataclass(frozen=True)
class _Trigger:
    k: int
    ticket: int
    level: int  # the SL/TP that was hit
    price: int  # the fill: the level, or the worse price after a gap
    reason: int


def _is_long(position: Position) -> bool:
    return position.type == POSITION_TYPE_BUY


class Broker:
    """Executes requests and market events against ``Books``; callers hold the terminal lock."""

    def __init__(
        self, books: Books, quotes: Quotes, leverage: int, seed: int, synced_k: int, rolled_day: int
    ):
        self.books = books
        self.quotes = quotes
        self.leverage = leverage
        self.synced_k = synced_k  # last tick whose SL/TP triggers have been processed
        self.rolled_day = rolled_day  # last trading day whose closing rollover has been charged
        self.dirty = False  # books changed since the owner last saved them
        self._seed = seed

    # ----------------------------------------------------------------- market time
    def advance_to(self, now: float, now_k: int) -> None:
        """Process SL/TP triggers and rollovers, in time order, up to ``now``."""
        while True:
            next_day = trading_day(self.synced_k + 1)
            if self.rolled_day < next_day - 1:
                if rollover_epoch(next_day - 1) > now:
                    return
                self._rollover(next_day - 1)
                continue
            if self.synced_k >= now_k:
                return
            last = min(now_k, next_day * DAY_SECONDS + DAY_SECONDS - 1)
            self._close_triggered(self._triggers(self.synced_k + 1, last))
            self.synced_k = last

    def recheck(self, symbol: str, k: int) -> None:
        """Check SL/TP of ``symbol`` at tick ``k`` after its quote jumped (a pin set or cleared)."""
        self._close_triggered(self._triggers(k, k, symbol=symbol, gapped=True))

    def _triggers(
        self, first: int, last: int, symbol: str | None = None, gapped: bool = False
    ) -> list[_Trigger]:
        found = []
        for position in self.books.positions.values():
            if not (position.sl or position.tp) or (symbol is not None and position.symbol != symbol):
                continue
            pinned = self.quotes.is_pinned(position.symbol)
            end = first if pinned else last  # a pinned quote is the same on every tick
            bid, ask = self.quotes.window(position.symbol, first, end)
            long = _is_long(position)
            watched = bid if long else ask
            sl_hit = np.zeros(watched.shape, bool)
            tp_hit = np.zeros(watched.shape, bool)
            if position.sl:
                sl_hit = watched <= position.sl if long else watched >= position.sl
            if position.tp:
                tp_hit = watched >= position.tp if long else watched <= position.tp
            hits = sl_hit | tp_hit
            if not hits.any():
                continue
            index = int(np.argmax(hits))
            k = first + index
            reason, level = (DEAL_REASON_SL, position.sl) if sl_hit[index] else (DEAL_REASON_TP, position.tp)
            price = level
            if gapped or pinned or is_week_open(k):
                # A jump past the level fills at the worse of the two prices for the client.
                seen = int(watched[index])
                price = min(level, seen) if long else max(level, seen)
            found.append(_Trigger(k, position.ticket, level, price, reason))
        return sorted(found, key=lambda t: (t.k, t.ticket))

    def _close_triggered(self, triggers: list[_Trigger]) -> None:
        for trigger in triggers:
            position = self.books.positions[trigger.ticket]
            spec = self.quotes.spec(position.symbol)
            tag = "sl" if trigger.reason == DEAL_REASON_SL else "tp"
            order_reason = ORDER_REASON_SL if trigger.reason == DEAL_REASON_SL else ORDER_REASON_TP
            log.info(
                "%s %s position %d closed at %s",
                position.symbol,
                tag.upper(),
                position.ticket,
                spec.to_price(trigger.price),
            )
            self._close(
                position,
                position.volume,
                trigger.price,
                time_msc=tick_epoch(trigger.k) * 1000,
                magic=position.magic,
                comment=f"[{tag} {spec.to_price(trigger.level)}]",
                deal_reason=trigger.reason,
                order_reason=order_reason,
                request_price=trigger.price,
                filling=ORDER_FILLING_FOK,
                type_time=ORDER_TIME_GTC,
            )

    def _rollover(self, day: int) -> None:
        """Charge the swap for holding positions over the rollover that ends trading ``day``."""
        days = 3 if weekday_of_trading_day(day) == WEDNESDAY else 1
        last_tick = day * DAY_SECONDS + DAY_SECONDS - 1
        for position in self.books.positions.values():
            spec = self.quotes.spec(position.symbol)
            bid, ask = self.quotes.quote(position.symbol, last_tick)
            price = spec.to_price(bid if _is_long(position) else ask)
            position.swap += money.swap_charge(spec, _is_long(position), position.volume, price, days)
            self.dirty = True
        self.rolled_day = day

    # ----------------------------------------------------------------- valuation
    def valuation(self, position: Position, k: int) -> tuple[Decimal, int]:
        """(floating profit in cents, current closing price in points) of ``position``."""
        spec = self.quotes.spec(position.symbol)
        bid, ask = self.quotes.quote(position.symbol, k)
        current = bid if _is_long(position) else ask
        profit = money.profit(
            spec,
            _is_long(position),
            position.volume,
            spec.to_price(position.price_open),
            spec.to_price(current),
        )
        return profit, current

    def account(
        self, k: int, extra_margin: Decimal = Decimal(0), extra_balance: Decimal = Decimal(0)
    ) -> AccountState:
        floating = Decimal(0)
        margin = extra_margin
        for position in self.books.positions.values():
            spec = self.quotes.spec(position.symbol)
            floating += self.valuation(position, k)[0] + position.swap
            margin += money.margin(spec, position.volume, spec.to_price(position.price_open), self.leverage)
        margin = money.cents(margin)
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
        plan = self._plan(request, now, k, slippage=False)
        commission = money.commission(request.volume)
        return self.account(k, plan.margin, commission), money.cents(plan.margin)

    def execute(self, request: OrderRequest, now: float, k: int) -> Fill:
        """Execute a validated request or raise Rejected."""
        if request.action == TRADE_ACTION_SLTP:
            position = self._validate_modify(request, now, k)
            position.sl, position.tp = request.sl, request.tp
            position.time_update_msc = int(now * 1000)
            self.dirty = True
            return Fill(0, 0, Decimal(0), 0)
        plan = self._plan(request, now, k, slippage=True)
        if plan.position is not None:
            return self._close(
                plan.position,
                request.volume,
                plan.price,
                time_msc=int(now * 1000),
                magic=request.magic,
                comment=request.comment,
                deal_reason=DEAL_REASON_EXPERT,
                order_reason=ORDER_REASON_EXPERT,
                request_price=request.price or plan.price,
                filling=request.type_filling,
                type_time=request.type_time,
            )
        return self._open(request, plan.price, int(now * 1000))

    def _plan(self, request: OrderRequest, now: float, k: int, slippage: bool) -> _Plan:
        spec = request.spec
        position = None
        if request.position:
            position = self._position_for(request)
            if request.is_buy == _is_long(position):
                raise Rejected(TRADE_RETCODE_INVALID, "A close must be opposite to the position")
            if request.volume > position.volume:
                raise Rejected(TRADE_RETCODE_INVALID_CLOSE_VOLUME, "Close volume exceeds the position volume")
        if is_weekend(now):
            raise Rejected(TRADE_RETCODE_MARKET_CLOSED, "Market closed")
        bid, ask = self.quotes.quote(request.symbol, k)
        if position is None:
            self._validate_stops(spec, request.is_buy, request.sl, request.tp, bid, ask)
        market = ask if request.is_buy else bid
        if request.price and abs(request.price - market) > request.deviation:
            raise Rejected(TRADE_RETCODE_REQUOTE, "Requote")
        price = market
        if slippage:
            slip = self._slippage(spec, request.deviation)
            price = market + slip if request.is_buy else market - slip
        if position is not None:
            return _Plan(price, Decimal(0), position)
        required = money.margin(spec, request.volume, spec.to_price(price), self.leverage)
        after = self.account(k, required, money.commission(request.volume))
        if after.margin_free < 0:
            raise Rejected(TRADE_RETCODE_NO_MONEY, "No money")
        return _Plan(price, required, None)

    def _slippage(self, spec: SymbolSpec, deviation: int) -> int:
        """Seeded slippage in points (positive = worse for the client), never beyond ``deviation``."""
        cap = min(deviation, spec.max_slippage)
        if cap == 0:
            return 0
        rng = rng_for(self._seed, 0, STREAM_SLIPPAGE, self.books.next_order)
        draw = rng.random()
        size = int(rng.integers(1, cap + 1))
        if draw < SLIPPAGE_NONE_SHARE:
            return 0
        return size if draw < SLIPPAGE_NONE_SHARE + SLIPPAGE_ADVERSE_SHARE else -size

    def _position_for(self, request: OrderRequest) -> Position:
        position = self.books.positions.get(request.position)
        if position is None:
            raise Rejected(TRADE_RETCODE_POSITION_CLOSED, f"Position {request.position} not found")
        if position.symbol != request.symbol:
            raise Rejected(TRADE_RETCODE_INVALID, f"Position {request.position} is not {request.symbol}")
        return position

    def _validate_modify(self, request: OrderRequest, now: float, k: int) -> Position:
        position = self._position_for(request)
        if is_weekend(now):
            raise Rejected(TRADE_RETCODE_MARKET_CLOSED, "Market closed")
        if (position.sl, position.tp) == (request.sl, request.tp):
            raise Rejected(TRADE_RETCODE_NO_CHANGES, "No changes")
        bid, ask = self.quotes.quote(request.symbol, k)
        self._validate_stops(request.spec, _is_long(position), request.sl, request.tp, bid, ask)
        return position

    @staticmethod
    def _validate_stops(spec: SymbolSpec, long: bool, sl: int, tp: int, bid: int, ask: int) -> None:
        """SL/TP must be on the right side of the closing price and at least stops_level away."""
        level = max(spec.stops_level, 1)
        if long:
            bad = (sl and bid - sl < level) or (tp and tp - bid < level)
        else:
            bad = (sl and sl - ask < level) or (tp and ask - tp < level)
        if bad:
            raise Rejected(TRADE_RETCODE_INVALID_STOPS, "Invalid stops")

    def _open(self, request: OrderRequest, price: int, time_msc: int) -> Fill:
        books = self.books
        ticket, deal_ticket = books.take_order_ticket(), books.take_deal_ticket()
        commission = money.commission(request.volume)
        books.positions[ticket] = Position(
            ticket=ticket,
            symbol=request.symbol,
            type=request.type,
            volume=request.volume,
            price_open=price,
            sl=request.sl,
            tp=request.tp,
            time_msc=time_msc,
            time_update_msc=time_msc,
            magic=request.magic,
            comment=request.comment,
            reason=POSITION_REASON_EXPERT,
        )
        books.orders.append(
            HistoryOrder(
                ticket=ticket,
                symbol=request.symbol,
                type=request.type,
                type_filling=request.type_filling,
                type_time=request.type_time,
                state=ORDER_STATE_FILLED,
                magic=request.magic,
                position_id=ticket,
                reason=ORDER_REASON_EXPERT,
                volume=request.volume,
                price_open=request.price or price,
                price_current=price,
                sl=request.sl,
                tp=request.tp,
                time_setup_msc=time_msc,
                time_done_msc=time_msc,
                comment=request.comment,
            )
        )
        books.deals.append(
            Deal(
                ticket=deal_ticket,
                order=ticket,
                time_msc=time_msc,
                type=DEAL_TYPE_BUY if request.is_buy else DEAL_TYPE_SELL,
                entry=DEAL_ENTRY_IN,
                magic=request.magic,
                position_id=ticket,
                reason=DEAL_REASON_EXPERT,
                volume=request.volume,
                price=price,
                commission=commission,
                swap=Decimal(0),
                profit=Decimal(0),
                symbol=request.symbol,
                comment=request.comment,
            )
        )
        books.balance += commission
        self.dirty = True
        return Fill(ticket, deal_ticket, request.volume, price)

    def _close(
        self,
        position: Position,
        volume: Decimal,
        price: int,
        *,
        time_msc: int,
        magic: int,
        comment: str,
        deal_reason: int,
        order_reason: int,
        request_price: int,
        filling: int,
        type_time: int,
    ) -> Fill:
        books = self.books
        spec = self.quotes.spec(position.symbol)
        long = _is_long(position)
        ticket, deal_ticket = books.take_order_ticket(), books.take_deal_ticket()
        profit = money.profit(spec, long, volume, spec.to_price(position.price_open), spec.to_price(price))
        swap = (
            position.swap
            if volume == position.volume
            else money.cents(position.swap * volume / position.volume)
        )
        commission = money.commission(volume)
        close_type = ORDER_TYPE_SELL if long else ORDER_TYPE_BUY
        books.orders.append(
            HistoryOrder(
                ticket=ticket,
                symbol=position.symbol,
                type=close_type,
                type_filling=filling,
                type_time=type_time,
                state=ORDER_STATE_FILLED,
                magic=magic,
                position_id=position.ticket,
                reason=order_reason,
                volume=volume,
                price_open=request_price,
                price_current=price,
                sl=0,
                tp=0,
                time_setup_msc=time_msc,
                time_done_msc=time_msc,
                comment=comment,
            )
        )
        books.deals.append(
            Deal(
                ticket=deal_ticket,
                order=ticket,
                time_msc=time_msc,
                type=DEAL_TYPE_SELL if long else DEAL_TYPE_BUY,
                entry=DEAL_ENTRY_OUT,
                magic=magic,
                position_id=position.ticket,
                reason=deal_reason,
                volume=volume,
                price=price,
                commission=commission,
                swap=swap,
                profit=profit,
                symbol=position.symbol,
                comment=comment,
            )
        )
        books.balance += profit + commission + swap
        position.swap -= swap
        position.volume -= volume
        position.time_update_msc = time_msc
        if position.volume == 0:
            del books.positions[position.ticket]
        self.dirty = True
        return Fill(ticket, deal_ticket, volume, price)
