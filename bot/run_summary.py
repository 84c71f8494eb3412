"""The short summary the bot says when it stops: cycles, orders by outcome, trades, P&L.

Why: whoever ran `make run` for ten minutes wants to know what happened without reading a
thousand lines. Built from the engine's cycle reports only; P&L is the change in equity (and in
balance: realised) between the first and the last cycle that read the account.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class RunSummary:
    cycles: int = 0
    failed: int = 0
    orders: Counter = field(default_factory=Counter)
    opened: int = 0
    closed: int = 0
    first_equity: Decimal | None = None
    first_balance: Decimal | None = None
    last_equity: Decimal | None = None
    last_balance: Decimal | None = None

    def add(self, report: Any) -> None:
        self.cycles += 1
        self.failed += 0 if report.ok else 1
        self.orders.update({k: v for k, v in report.orders.items() if k != "queued"})
        self.opened += report.trades_opened
        self.closed += report.trades_closed
        if report.equity is not None:
            if self.first_equity is None:
                self.first_equity, self.first_balance = report.equity, report.balance
            self.last_equity, self.last_balance = report.equity, report.balance

    def pnl(self) -> tuple[Decimal | None, Decimal | None]:
        if self.first_equity is None or self.last_equity is None:
            return None, None
        realised = None if self.first_balance is None or self.last_balance is None else self.last_balance - self.first_balance
        return self.last_equity - self.first_equity, realised

    def line(self) -> str:
        orders = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.orders.items())) or "none"
        equity, realised = self.pnl()
        money = "P&L n/a (no account read)" if equity is None else \
            f"P&L {equity:+} (realised {realised:+}; equity {self.first_equity} -> {self.last_equity})"
        return (f"run summary: {self.cycles} cycles ({self.failed} failed); orders: {orders}; "
                f"trades {self.opened} opened, {self.closed} closed; {money}")

    def fields(self) -> dict[str, Any]:
        equity, realised = self.pnl()
        return {"cycles": self.cycles, "cycles_failed": self.failed, "orders": dict(self.orders),
                "trades_opened": self.opened, "trades_closed": self.closed,
                "pnl": None if equity is None else str(equity), "pnl_realised": None if realised is None else str(realised)}
