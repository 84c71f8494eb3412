"""The broker's history read through the gateway: deals (trade deals, balance operations) and orders.

A mixin of `bot.gateway.mt5api.Mt5ApiGateway` (whose calls, guard, clock and deal cache it uses),
kept apart so that module stays the call machinery and the live reads.
"""

from __future__ import annotations

from datetime import datetime

from . import clock as broker_clock
from . import convert
from .enums import NON_TRADE_DEAL_TYPES
from .types import Deal, HistoryOrder


class HistoryReads:
    """Gateway methods reading the account's history (mixed into Mt5ApiGateway)."""

    def _trade_deals(self, rows: list, balance: bool = False) -> tuple[list[Deal], bool]:
        """The trade deals among history rows the guard accepts, and whether any was refused.

        Balance operations (a non-trade deal type) are not trades: skipped, not refused, unless
        `balance` asks for them (judged by their own schema: symbol "", volume 0 are theirs).
        A row met before with the same content is taken from the deal cache (bot.gateway.dealcache).
        """
        out, refused, cache = [], False, self._deal_cache
        for r in rows:
            content = stamp = None
            if isinstance(r, dict):
                self.guard.note_deal(r.get("ticket"))
                operation = r.get("type") in NON_TRADE_DEAL_TYPES
                if operation and not balance:
                    continue
                content = cache.content(r)
                if content is not None:
                    stamp = self._deal_stamp(r, operation)
                    known = cache.get(r, content, stamp)
                    if known is not None:
                        out.append(known)
                        continue
                if operation:
                    if self.guard.judge("balance_deal", r, convert.ticket_key(r)) is None:
                        deal = convert.deal(r, 2, self._to_utc)
                        cache.put(content, stamp, deal)
                        out.append(deal)
                    continue
            if self.guard.judge("deal", r, convert.ticket_key(r)) is not None:
                refused = True
                continue
            deal = convert.deal(r, self._digits_of(r["symbol"]), self._to_utc)
            cache.put(content, stamp, deal)
            out.append(deal)
        return out, refused

    def _deal_stamp(self, row: dict, operation: bool) -> tuple[int, int] | None:
        """What a cached Deal of `row` depends on besides the row: its digits and the server offset then.

        Asked only of a row whose content was accepted before (or just now), so its fields are sound.
        """
        try:
            digits = 2 if operation else self._digits[row["symbol"]]
            return digits, self.clock.offset_at_server(row["time"])
        except (KeyError, TypeError, ValueError, broker_clock.ClockUnknown):
            return None

    def deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        rows = self._call("history_deals_get", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return self._trade_deals(rows)[0]

    def account_deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        """Every deal of the window the guard accepts, balance operations included (whole-account history)."""
        rows = self._call("history_deals_get", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return self._trade_deals(rows, balance=True)[0]

    def deals_total(self, date_from: datetime, date_to: datetime) -> int | None:
        """history_deals_total of the window: a probe that moves no records (bot.engine.books)."""
        count = self._call("history_deals_total", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None

    def deals_for_position(self, position_id: int) -> list[Deal]:
        """A position's deals; none at all when one was refused: a trade is never built from part of them."""
        deals, refused = self._trade_deals(self._call("history_deals_get", position=position_id))
        return [] if refused else deals

    def history_orders(self, date_from: datetime, date_to: datetime) -> list[HistoryOrder]:
        return self._orders(self._call("history_orders_get", self.clock.to_server(date_from),
                                       self.clock.to_server(date_to)))

    def open_orders(self) -> list[HistoryOrder]:
        return self._orders(self._call("orders_get"))

    def _orders(self, rows: list[dict]) -> list[HistoryOrder]:
        return [convert.history_order(r, self._digits_of(r["symbol"]), self._to_utc) for r in rows
                if self.guard.judge("order", r, convert.ticket_key(r)) is None]
