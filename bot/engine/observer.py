"""What the engine tells the outside world: the observer protocol and the report of one cycle.

Why a module of its own: telemetry (bot.telemetry) and the bot's status implement or read these,
and must not import the cycle's machinery to do so.  Both stay importable from bot.engine.engine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ..gateway import AccountState
from .execution import ExecutionQuality


class EngineObserver:
    """What the engine reports as it goes. The default does nothing; telemetry overrides it.

    A cycle's signals, its account state and its position counts are not reported one call each:
    they are in the report `cycle_finished` gets (`signal_keys`, `account`, `position_counts`). Why:
    each observer call is a Python frame on the trading thread that lands on cold caches, the
    telemetry cost issue 16 bounds to 1 % of a cycle; the report collects them with C-level appends.
    """

    def cycle_finished(self, report: CycleReport) -> None: ...

    def store_unit_closing(self) -> None:
        """The cycle's store unit is about to commit: telemetry's due store writes join its one commit."""

    def order(self, symbol: str, strategy: str, side: str, outcome: str) -> None: ...

    def order_replayed(self) -> None: ...

    def order_expired(self, reason: str) -> None: ...

    def trading_halted(self, reason: str | None) -> None:
        """Reconciliation failed (reason) or succeeded again (None)."""

    def broker_record_rejected(self, kind: str, reason: str) -> None:
        """The gateway refused a broker record (reported once per record, see bot.gateway.guard)."""

    def deal_conflict(self) -> None:
        """A deal ticket came back with other content."""

    def symbol_skipped(self, symbol: str, reason: str) -> None:
        """A symbol sat out this cycle: its quote, bars or positions were refused."""

    def new_orders_halted(self, reason: str | None, source: str = "equity") -> None:
        """A source of new-order halts (the equity guard, the prop rules) halts them (reason) or no longer (None).

        Per source, because two can halt at once: one lifting its halt must not hide the other's."""

    def order_skipped(self, symbol: str, strategy: str, reason: str) -> None:
        """A decided order could not be expressed on the symbol's grid and was not sent."""

    def orders_halted(self, reason: str | None) -> None:
        """The terminal refuses algorithmic trading (reason), or accepts it again (None)."""

    def execution(self, symbol: str, outcome: str, quality: ExecutionQuality) -> None:
        """A sent order's execution figures (bot.engine.execution), with its outcome."""

    def strategy_failed(self, strategy: str, reason: str) -> None:
        """A strategy raised: it is disabled for the rest of the run (see strategy_runner.py)."""

    def prop_rules(self, statuses: list) -> None:
        """The prop-firm rules judged this cycle (bot.engine.proprules.RuleStatus)."""


@dataclass
class CycleReport:
    cycle_id: str
    number: int
    started_at: datetime | None = None
    duration_seconds: float = 0.0
    signals: Counter = field(default_factory=Counter)
    orders: Counter = field(default_factory=Counter)
    trades_opened: int = 0
    trades_closed: int = 0
    unknown_resolved: int = 0
    replayed: int = 0
    expired: int = 0
    open_positions: int = 0
    equity: Decimal | None = None
    balance: Decimal | None = None
    error: str | None = None
    error_expected: bool = False  # a gateway failure (terminal away), not a bug
    #: Database commits made while this cycle ran (group commit: 1, plus 1 per order sent; a spool
    #: drain adds one per chunk). Read from the store's `commits` counter; 0 if the store has none.
    store_commits: int = 0
    #: (symbol, strategy, action) of each signal decided, in order (EngineObserver's doc: why here).
    signal_keys: list[tuple[str, str, str]] = field(default_factory=list)
    #: The account as this cycle read it, and open positions per traded symbol (0s included); None
    #: when the cycle did not get that far.
    account: AccountState | None = None
    position_counts: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
