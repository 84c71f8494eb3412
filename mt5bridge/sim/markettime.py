"""Market time acting on the books: SL/TP triggers, stop-outs and rollover swaps, in time order.

A mixin of ``Broker``. The scan covers every tick since the last one processed, so the result is
the same however often the terminal is polled; times are server time.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from mt5bridge.constants import (
    DEAL_REASON_SL,
    DEAL_REASON_SO,
    DEAL_REASON_TP,
    ORDER_FILLING_FOK,
    ORDER_REASON_SL,
    ORDER_REASON_SO,
    ORDER_REASON_TP,
    ORDER_TIME_GTC,
)

from . import money, stopout
from .booking import Origin, is_long
from .tradingtime import (
    DAY_SECONDS,
    is_week_open,
    rollover_epoch,
    tick_epoch,
    trading_day,
    weekday_of_trading_day,
)

log = logging.getLogger("mt5bridge.sim.broker")


@dataclass(frozen=True)
class _Trigger:
    k: int
    ticket: int
    level: int  # the SL/TP that was hit
    price: int  # the fill: the level, or the worse price after a gap
    reason: int


class MarketTime:
    """Needs ``books``, ``quotes``, ``converter``, ``ledger``, ``account_spec``, ``account()``,
    ``valuation()``, ``synced_k``, ``rolled_day``, ``margin_call`` and ``_margin_checked``."""

    # ----------------------------------------------------------------- market time
    def advance_to(self, now: float, now_k: int) -> None:
        """Process SL/TP triggers, stop-outs and rollovers, in time order, up to server time ``now``."""
        while True:
            next_day = trading_day(self.synced_k + 1)
            if self.rolled_day < next_day - 1:
                if rollover_epoch(next_day - 1) > now:
                    break
                self._rollover(next_day - 1)
                continue
            if self.synced_k >= now_k:
                break
            last = min(now_k, next_day * DAY_SECONDS + DAY_SECONDS - 1)
            self._scan(self.synced_k + 1, last)
            self.synced_k = last
        self.update_margin_call(now_k)

    def recheck(self, symbol: str, k: int) -> None:
        """Check SL/TP of ``symbol`` and the stop-out at tick ``k`` after its quote jumped (a pin)."""
        self._close_triggered(self._triggers(k, k, symbol=symbol, gapped=True))
        if stopout.below(self, k):
            self._stop_out(k)
        self._margin_checked = None  # the price moved without the clock
        self.update_margin_call(k)

    def _scan(self, first: int, last: int) -> None:
        """SL/TP triggers and stop-outs within ticks ``first..last`` (one trading day), in time order."""
        so_from = first
        while first <= last:
            triggers = self._triggers(first, last)
            trigger_k = triggers[0].k if triggers else None
            so_k = self._stopout_candidate(so_from, last if trigger_k is None else trigger_k)
            if so_k is not None and (trigger_k is None or so_k < trigger_k):
                if stopout.below(self, so_k):
                    self._stop_out(so_k)
                so_from, first = so_k + 1, so_k
                continue
            if trigger_k is None:
                return
            self._close_triggered([t for t in triggers if t.k == trigger_k])
            so_from, first = max(so_from, trigger_k), trigger_k + 1

    def _stopout_candidate(self, first: int, last: int) -> int | None:
        if first > last or self.account_spec.stop_out <= 0 or not self.books.positions:
            return None
        levels = stopout.level_path(self, first, last)
        if levels is None:
            return None
        threshold = self.account_spec.stop_out
        hits = levels < threshold + 1e-6 * max(1.0, threshold)  # exact check follows
        return first + int(np.argmax(hits)) if hits.any() else None

    def _stop_out(self, k: int) -> None:
        while self.books.positions and stopout.below(self, k):
            state = self.account(k)
            position = stopout.worst_first(self, k)[0]
            _, price = self.valuation(position, k)
            comment = f"[so {state.margin_level:.2f}%/{state.equity:.2f}/{state.margin:.2f}]"
            log.warning(
                "stop-out: margin level %s%% below %s%%, %s position %d closed",
                state.margin_level, self.account_spec.stop_out, position.symbol, position.ticket,
            )  # fmt: skip
            origin = Origin(
                k, tick_epoch(k) * 1000, position.magic, comment, DEAL_REASON_SO, ORDER_REASON_SO,
                ORDER_FILLING_FOK, ORDER_TIME_GTC, price,
            )  # fmt: skip
            self.ledger.close(position, position.volume, price, origin)
            self.dirty = True

    def update_margin_call(self, k: int) -> None:
        """Raise or clear the margin call for the account at tick ``k``, once per (tick, books) state."""
        key = (k, len(self.books.deals), len(self.books.positions))  # margin moves with prices or deals
        if key == self._margin_checked:
            return
        self._margin_checked = key
        if not self.books.positions:
            self.margin_call = False
            return
        state = self.account(k)
        flagged = state.margin > 0 and state.margin_level < Decimal(str(self.account_spec.margin_call))
        if flagged != self.margin_call:
            self.margin_call = flagged
            if flagged:
                log.warning("margin call: margin level %s%% below %s%%", state.margin_level, self.account_spec.margin_call)
            else:
                log.info("margin call cleared: margin level %s%%", state.margin_level)

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
            long = is_long(position)
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
            if gapped or pinned or is_week_open(k) or self.quotes.reopens(position.symbol, k):
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
            origin = Origin(
                trigger.k, tick_epoch(trigger.k) * 1000, position.magic, f"[{tag} {spec.to_price(trigger.level)}]",
                trigger.reason, order_reason, ORDER_FILLING_FOK, ORDER_TIME_GTC, trigger.price,
            )  # fmt: skip
            self.ledger.close(position, position.volume, trigger.price, origin)
            self.dirty = True

    def _rollover(self, day: int) -> None:
        """Charge the swap for holding positions over the rollover that ends trading ``day``.

        The rollover is at server midnight; the symbol's triple-swap day (MT5 counts Sunday as
        0) charges three days, for the weekend.
        """
        mt5_weekday = weekday_of_trading_day(day) + 1
        last_tick = day * DAY_SECONDS + DAY_SECONDS - 1
        for position in self.books.positions.values():
            spec = self.quotes.spec(position.symbol)
            days = 3 if mt5_weekday == spec.swap_rollover3days else 1
            bid, ask = self.quotes.quote(position.symbol, last_tick)
            price = spec.to_price(bid if is_long(position) else ask)
            rate = self.converter.profit_rate(spec, last_tick, price)
            position.swap += money.swap_charge(spec, is_long(position), position.volume, days, rate)
            self.dirty = True
        self.rolled_day = day
