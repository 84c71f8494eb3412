"""The spooled store's calls, one per `db.Repository` method the bot uses: each a write that may be
spooled or a read the mirror may answer (bot.store.spool, `_write` / `_read`).

A mixin of `SpooledRepository`, kept apart from the two paths and the spool control so each
module holds one concept: here, what each call writes, reads and keeps in the mirror.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.store.errors import is_connectivity_error
from db.quarantine import QuarantineRecord
from db.records import (
    AccountSnapshot,
    DailyPerformance,
    DealRecord,
    OrderIntent,
    OrderOutcome,
    OrderRow,
    PositionSnapshot,
    SignalRecord,
    TradeClose,
    TradeOpen,
    TradeRow,
)
from db.validation import require_aware
from db.vocabulary import ACCOUNT_LEN, ORDER_STATUSES

_MISS = object()  # a mirror read that does not know (None can be a known answer)


class StoreCalls:
    """SpooledRepository methods, one per store call (mixed into SpooledRepository)."""

    # -- signals -----------------------------------------------------------------------------

    def record_signal(self, rec: SignalRecord, assign_id: int | None = None) -> int:
        """The signal's id; a negative provisional id while it is spooled (translated at flush)."""
        return self._write("record_signal", {"rec": rec, "assign_id": assign_id}, spooled_result=lambda seq: -seq)

    def record_signals(self, recs: list[SignalRecord]) -> list[int]:
        """A cycle's signals at once (db.Repository.record_signals): what `record_signal` on each gives.

        In a unit with the database answering they go in one statement and are kept as one
        `record_signal` call each with its id (`assign_id`), so a lost unit spools and replays
        them exactly as if they had been recorded one by one.  Anywhere else (outside a unit,
        spooling, the breaker open) they are recorded one by one.
        """
        with self._lock:
            if recs and self._in_unit() and self._schema_ready() and not self.spool.depth \
                    and self._unit_allows():
                try:
                    ids = self.repository.record_signals(recs)
                except Exception as exc:
                    if not is_connectivity_error(exc):
                        raise  # a refusal: only the batch's savepoint was rolled back
                    self._unit_lost(self._unit_calls, exc, True)
                else:
                    self._unit_calls.extend(("record_signal", {"rec": rec, "assign_id": int(signal_id)})
                                            for rec, signal_id in zip(recs, ids, strict=True))
                    return ids
            return [self.record_signal(rec) for rec in recs]

    def mark_signal_executed(self, signal_id: int) -> None:
        if isinstance(signal_id, bool) or not isinstance(signal_id, int):
            raise TypeError(f"signal_id must be an int, got {type(signal_id).__name__}")
        self._write("mark_signal_executed", {"signal_id": signal_id})

    # -- orders ------------------------------------------------------------------------------

    def record_order_intent(self, intent: OrderIntent) -> None:
        self._write(
            "record_order_intent", {"intent": intent},
            on_direct=lambda _r, args: self._refresh_order(args["intent"].client_order_id),
            on_spooled=lambda seq, args: self._mirror.wrote_intent(args["intent"], -seq),
        )

    def record_order_outcome(self, outcome: OrderOutcome) -> None:
        self._write(
            "record_order_outcome", {"outcome": outcome},
            on_direct=lambda _r, args: self._mirror.wrote_outcome(args["outcome"]),
            on_spooled=lambda _seq, args: self._mirror.wrote_outcome(args["outcome"]),
        )

    def get_order(self, client_order_id: str) -> OrderRow | None:
        return self._read(
            "get_order", {"client_order_id": client_order_id},
            learn=lambda row: self._mirror.saw_order(row, client_order_id),
            known=lambda: self._mirror.order_known(client_order_id) or _MISS,
        )

    def orders_by_status(self, account: str, status: str) -> list[OrderRow]:
        if status not in ORDER_STATUSES:
            raise ValueError(f"order status must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
        return self._read(
            "orders_by_status", {"account": account, "status": status},
            learn=lambda rows: self._mirror.saw_orders_by_status(account, status, rows),
            known=lambda: _or_miss(self._mirror.orders_by_status_known(account, status)),
        )

    # -- deals -------------------------------------------------------------------------------

    def record_deal(self, rec: DealRecord) -> bool:
        """True if the deal was new (always True when spooled: the flush upserts)."""
        return self._write(
            "record_deal", {"rec": rec},
            on_direct=lambda _r, args: self._mirror.wrote_deal(args["rec"]),
            on_spooled=lambda _seq, args: self._mirror.wrote_deal(args["rec"]),
            spooled_result=lambda _seq: True,
        )

    def known_deal_tickets(self, account: str, since: datetime | None = None) -> set[int]:
        if since is not None:
            require_aware("since", since)
        return self._read(
            "known_deal_tickets", {"account": account, "since": since},
            learn=lambda tickets: self._mirror.saw_deal_tickets(account, since, tickets),
            known=lambda: _or_miss(self._mirror.deal_tickets_known(account, since)),
        )

    def positions_without_trade(self, account: str, since: datetime) -> list[int]:
        require_aware("since", since)  # never answered from the mirror: the books ask again next cycle
        return self._read("positions_without_trade", {"account": account, "since": since})

    def last_deal_time(self, account: str) -> datetime | None:
        return self._read(
            "last_deal_time", {"account": account},
            learn=lambda value: self._mirror.saw_last_deal_time(account, value),
            known=lambda: _known_pair(self._mirror.last_deal_time_known(account)),
        )

    # -- trades ------------------------------------------------------------------------------

    def open_trade(self, t: TradeOpen) -> bool:
        """True if the trade was new (always True when spooled)."""
        return self._write(
            "open_trade", {"t": t},
            on_direct=lambda _r, args: self._refresh_trade(args["t"].account, args["t"].ticket),
            on_spooled=lambda seq, args: self._mirror.wrote_open(args["t"], -seq, None),
            spooled_result=lambda _seq: True,
        )

    def close_trade(self, c: TradeClose) -> bool:
        """True if this call closed the trade (always True when spooled)."""
        return self._write(
            "close_trade", {"c": c},
            on_direct=lambda _r, args: self._mirror.wrote_close(args["c"]),
            on_spooled=lambda _seq, args: self._mirror.wrote_close(args["c"]),
            spooled_result=lambda _seq: True,
        )

    def get_trade(self, account: str, ticket: int) -> TradeRow | None:
        return self._read(
            "get_trade", {"account": account, "ticket": ticket},
            learn=lambda row: self._mirror.saw_trade(account, ticket, row),
            known=lambda: self._mirror.trade_known(account, ticket) or _MISS,
        )

    def open_trades(self, account: str) -> list[TradeRow]:
        return self._read(
            "open_trades", {"account": account},
            learn=lambda rows: self._mirror.saw_open_trades(account, rows),
            known=lambda: _or_miss(self._mirror.open_trades_known(account)),
        )

    def trades_by_correlation(self, correlation_id: str) -> list[TradeRow]:
        return self._read("trades_by_correlation", {"correlation_id": correlation_id})

    def closed_trades_between(self, account: str, start: datetime, end: datetime) -> list[TradeRow]:
        require_aware("start", start)
        require_aware("end", end)
        return self._read("closed_trades_between", {"account": account, "start": start, "end": end})

    # -- snapshots and daily results ---------------------------------------------------------

    def record_position_snapshots(self, account: str, time: datetime, positions: list[PositionSnapshot]) -> None:
        if not isinstance(account, str) or not 0 < len(account) <= ACCOUNT_LEN:
            raise ValueError(f"account must be a non-empty string of at most {ACCOUNT_LEN} characters")
        require_aware("time", time)
        if not positions:
            return
        self._write("record_position_snapshots", {"account": account, "time": time, "positions": list(positions)})

    def record_account_snapshot(self, s: AccountSnapshot) -> None:
        self._write(
            "record_account_snapshot", {"s": s},
            on_direct=lambda _r, args: self._mirror.wrote_snapshot(args["s"]),
            on_spooled=lambda _seq, args: self._mirror.wrote_snapshot(args["s"]),
        )

    def last_account_snapshot(self, account: str) -> AccountSnapshot | None:
        return self._read(
            "last_account_snapshot", {"account": account},
            learn=lambda value: self._mirror.saw_last_snapshot(account, value),
            known=lambda: _known_pair(self._mirror.last_snapshot_known(account)),
        )

    def upsert_daily_performance(self, d: DailyPerformance) -> None:
        self._write("upsert_daily_performance", {"d": d})

    # -- quarantined broker records -------------------------------------------------------------

    def record_quarantine(self, rec: QuarantineRecord) -> bool:
        """Spooled like every write while the database is away; the flush's insert is idempotent."""
        return self._write("record_quarantine", {"rec": rec}, spooled_result=lambda _seq: True)

    def quarantined(self, account: str, since: datetime | None = None, limit: int = 1000) -> list[QuarantineRecord]:
        return self._read("quarantined", {"account": account, "since": since, "limit": limit})


def _or_miss(value: Any) -> Any:
    return _MISS if value is None else value


def _known_pair(pair: tuple[bool, Any]) -> Any:
    known, value = pair
    return value if known else _MISS
