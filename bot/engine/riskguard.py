"""The account risk guard: limits on losses and exposure that halt or shrink new entries.

Why apart from the failure breakers (bot/resilience) and the equity guard (equity.py): those stop
orders because something is broken (a terminal away, implausible account data); this one stops
them because the account is fine but a trader's limit says enough. Exits are never judged here:
only orders that open exposure (`purpose == "open"`).

Two tables drive it (`HALTS`, `ORDER_LIMITS`, in risk_tables.py); each row is one limit, its reason word (the
`reason` label of `tradewatch_risk_halted` / `tradewatch_risk_orders_adjusted_total`) and the
function that applies it:
- a halt, once hit, latches: new entries stop until the next broker day or an operator resume.
  Resume (and the day roll) rebase what was hit, the day's opening equity and the equity peak, on
  the equity now; otherwise a drawdown would re-latch the next cycle. The operator's pause and
  halts raised by other parts (`halt(reason)`, e.g. prop-firm rules) clear only when told.
- an order limit gives the volume it allows (the order shrunk to the volume step) or none (the
  order is skipped with the limit's reason, never sent). The last one asks the terminal itself
  (`order_check`): an order the broker would refuse for money does not leave the process.

State (day, opening equity, peak, latched halts, pause) is kept in a small JSON file beside the
store (riskstate.py), so a restart does not forget a bad day.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from db.brokerday import BrokerDay

from ..gateway import (
    AccountState,
    BrokerUnavailable,
    ConnectionLost,
    Gateway,
    GatewayError,
    OrderRequest,
    broker_day_of,
)
from ..gateway.types import SymbolSpec
from . import riskstate
from .risk_tables import HALTS, OPERATOR_PAUSE, ORDER_LIMITS

log = logging.getLogger("bot.engine.risk")

SAVE_EVERY_SECONDS = 30.0  # the equity peak is saved at most this often (every other change at once)


@dataclass(frozen=True)
class RiskLimits:
    """The limits, in the units of their settings (README "Account risk guard")."""

    max_margin_usage: Decimal  # percent of equity the used margin may reach after an order
    margin_check: bool  # ask the terminal (order_check) before every entry
    daily_loss: Decimal  # loss since the broker day began ...
    daily_loss_percent: bool  # ... as a percent of the day's opening equity (else money)
    max_drawdown: Decimal  # percent below the equity peak
    max_open_positions: int  # this bot's open positions, all symbols
    max_total_risk: Decimal  # percent of equity lost if every open stop and the new one were hit

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        loss = settings.daily_loss_limit
        return cls(settings.max_margin_usage, settings.margin_check, loss.amount, loss.percent, settings.max_drawdown,
                   settings.max_open_positions, settings.max_total_risk)


class Entry(NamedTuple):
    """A new entry as the engine decided it."""

    spec: SymbolSpec
    side: str
    volume: Decimal
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None


class RiskGuard:
    """Judges every new entry against the limits; keeps the halts, the pause and their reasons."""

    def __init__(self, limits: RiskLimits, gateway: Gateway, specs: dict[str, SymbolSpec], magic: int,
                 deviation: int = 0, state_file: str | None = None):
        self.limits = limits
        self.gateway = gateway
        self.specs = specs
        self.magic = magic
        self.deviation = deviation
        self.day: date | None = None
        self.broker_day: BrokerDay | None = None  # the day `day` is, with the offset that cut it
        self.day_start_equity: Decimal | None = None
        self.peak_equity: Decimal | None = None
        self.latched: dict[str, str] = {}  # reason -> since (UTC ISO), including the pause and external halts
        self.account: AccountState | None = None  # the last account state judged plausible (equity guard)
        self.refusals: Counter[tuple[str, str]] = Counter()  # (reason, resized|skipped) -> orders
        self._said: set[tuple[date | None, str, str]] = set()
        self._lock = threading.RLock()  # the control endpoint pauses and resumes from its own threads
        self._state_file: str | None = None
        self._pending: riskstate.RiskState | None = None  # read from the file, not yet applied
        self._saved_at = 0.0
        if state_file:
            self.use_state_file(state_file)

    def use_state_file(self, path: str) -> None:
        """Keep the state in `path` from now on, starting from what it holds (a restart remembers the day)."""
        with self._lock:
            self._state_file = path
            self._load()

    # -- state the engine feeds ------------------------------------------------------------

    def observe(self, now: datetime, account: AccountState | None) -> None:
        """Once a cycle with the plausible account state (None: the equity guard refused it)."""
        if account is None:
            return
        with self._lock:
            if self._pending is not None:
                self._apply_saved(account)
            self.account = account
            changed = False
            self.broker_day = broker_day_of(self.gateway, now)  # cut at the server's midnight
            if self.day != self.broker_day.date:  # a new broker day: the day's halts and references start again
                self.day, self.day_start_equity, changed = self.broker_day.date, account.equity, True
                self._clear([r for r, _, _ in HALTS if r in self.latched], "a new broker day began", account)
            if self.peak_equity is None or account.equity > self.peak_equity:
                self.peak_equity = account.equity
                self._save(force=False)
            for reason, hit, what in HALTS:
                if reason not in self.latched and hit(self, account):
                    self.latched[reason] = now.isoformat()
                    changed = True
                    log.warning("new entries halted (%s): %s; exits go on", reason, what,
                                extra={"reason": reason, "equity": str(account.equity),
                                       "day_start_equity": str(self.day_start_equity),
                                       "peak_equity": str(self.peak_equity)})
            if changed:
                self._save()

    @property
    def halted_reason(self) -> str | None:
        with self._lock:
            return next(iter(self.latched), None)

    # -- the order path --------------------------------------------------------------------

    def vet(self, entry: Entry) -> Decimal | None:
        """The volume a new entry may go with (maybe smaller), or None: skipped, never sent."""
        reason = self.halted_reason
        if reason is not None:
            return self._refuse(reason, "skipped", entry, entry.volume)
        if self.account is None:
            return entry.volume  # nothing known yet to judge on: the equity guard holds sizing until then
        positions = [p for p in self.gateway.positions() if p.magic == self.magic]
        account = self._current(self.account)
        volume, first_reason = entry.volume, None
        for reason, allowed in ORDER_LIMITS:
            allowed_volume = min(volume, allowed(self, entry._replace(volume=volume), account, positions))
            if allowed_volume < entry.spec.volume_min:
                return self._refuse(reason, "skipped", entry, volume)
            if allowed_volume < volume:
                first_reason = first_reason or reason
                volume = allowed_volume
        if first_reason is not None:
            self._count(first_reason, "resized", entry, volume)
        return volume

    def _current(self, judged: AccountState) -> AccountState:
        """The cycle's plausible state with the margin as it is now: entries earlier in the same cycle
        took margin the cycle's first reading does not show (equity stays the judged one)."""
        try:
            now = self.gateway.account()
        except (ConnectionLost, BrokerUnavailable):
            raise
        except GatewayError:  # refused (quarantined and said by the gateway's guard): the cycle's reading
            return judged
        margin = max(now.margin, judged.margin)
        return replace(judged, margin=margin, free_margin=min(now.free_margin, judged.equity - margin))

    def margin_for(self, entry: Entry, volume: Decimal) -> Decimal | None:
        """The terminal's margin for `volume` lots (None: the terminal cannot say; counted)."""
        try:
            return self.gateway.order_calc_margin(entry.side, entry.spec.name, volume, entry.price)
        except (ConnectionLost, BrokerUnavailable):
            raise  # the terminal is away: the cycle fails as for any broker call
        except GatewayError as exc:
            self._count("check_unavailable", "unchecked", entry, volume, detail=str(exc))
            return None

    def check(self, entry: Entry, volume: Decimal):
        """The terminal's order_check for `volume` lots (None: it cannot answer; counted)."""
        request = OrderRequest(symbol=entry.spec.name, side=entry.side, volume=volume, price=entry.price,
                               sl=entry.sl, tp=entry.tp, deviation=self.deviation, magic=self.magic, comment="check")
        try:
            return self.gateway.order_check(request)
        except (ConnectionLost, BrokerUnavailable):
            raise
        except GatewayError as exc:
            self._count("check_unavailable", "unchecked", entry, volume, detail=str(exc))
            return None

    def _refuse(self, reason: str, action: str, entry: Entry, volume: Decimal) -> None:
        self._count(reason, action, entry, volume)
        return None

    def _count(self, reason: str, action: str, entry: Entry, volume: Decimal, detail: str | None = None) -> None:
        with self._lock:  # /status and /metrics read the counts from other threads
            self.refusals[(reason, action)] += 1
            if (self.day, reason, action) in self._said:
                return
            self._said = {said for said in self._said if said[0] == self.day} | {(self.day, reason, action)}
        # said once per broker day and kind; counted every time (tradewatch_risk_orders_adjusted_total)
        log.warning("new entry %s by the risk guard (%s): %s %s %s", action, reason, entry.side, entry.volume,
                    entry.spec.name, extra={"reason": reason, "action": action, "symbol": entry.spec.name,
                                            "requested_volume": str(entry.volume), "volume": str(volume),
                                            "detail": detail})

    # -- the operator and other parts ---------------------------------------------------------

    def pause(self) -> bool:
        """Stop new entries until resume(); True if it was not paused already."""
        return self.halt(OPERATOR_PAUSE)

    def halt(self, reason: str) -> bool:
        """Halt new entries for `reason` (e.g. a prop-firm rule) until resume() or clear(reason)."""
        with self._lock:
            if reason in self.latched:
                return False
            self.latched[reason] = datetime.now(UTC).isoformat()
            log.warning("new entries halted (%s); exits go on", reason, extra={"reason": reason})
            self._save()
            return True

    def clear(self, reason: str) -> bool:
        with self._lock:
            return self._clear([reason] if reason in self.latched else [], "cleared", self.account)

    def resume(self) -> list[str]:
        """The operator's resume: every halt is lifted, the loss references start from equity now."""
        with self._lock:
            lifted = list(self.latched)
            self._clear(lifted, "the operator resumed", self.account)
            if self.account is not None:
                self.day_start_equity = self.peak_equity = self.account.equity
            self._save()
            return lifted

    def _clear(self, reasons: list[str], why: str, account: AccountState | None) -> bool:
        for reason in reasons:
            del self.latched[reason]
            if reason == "max_drawdown" and account is not None:
                self.peak_equity = account.equity  # else the same drawdown latches again next cycle
            log.info("new entries resume (%s): %s", reason, why, extra={"reason": reason})
        return bool(reasons)

    # -- what /status, /readyz and /metrics show --------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            account = self.account
            return {
                "halted": dict(self.latched),
                "paused": OPERATOR_PAUSE in self.latched,
                "broker_day": self.day.isoformat() if self.day else None,
                "broker_day_starts": self.broker_day.start.isoformat() if self.broker_day else None,
                "day_start_equity": _text(self.day_start_equity),
                "peak_equity": _text(self.peak_equity),
                "daily_loss_ratio": _ratio(self.daily_loss_ratio()),
                "drawdown_ratio": _ratio(self.drawdown_ratio()),
                "margin_usage_ratio": _ratio(account.margin / account.equity if account and account.equity > 0 else None),
                "orders": {f"{action}:{reason}": n for (reason, action), n in sorted(self.counts().items())},
                "limits": {"MAX_MARGIN_USAGE": str(self.limits.max_margin_usage),
                           "DAILY_LOSS_LIMIT": f"{self.limits.daily_loss}{'%' if self.limits.daily_loss_percent else ''}",
                           "MAX_DRAWDOWN": str(self.limits.max_drawdown),
                           "MAX_OPEN_POSITIONS": self.limits.max_open_positions,
                           "MAX_TOTAL_RISK": str(self.limits.max_total_risk),
                           "MARGIN_CHECK": self.limits.margin_check},
            }

    def counts(self) -> dict[tuple[str, str], int]:
        """A copy of the resized/skipped/unchecked counts, safe to read from another thread."""
        with self._lock:
            return dict(self.refusals)

    def daily_loss_ratio(self) -> Decimal | None:
        if self.account is None or not self.day_start_equity or self.day_start_equity <= 0:
            return None
        return (self.day_start_equity - self.account.equity) / self.day_start_equity

    def drawdown_ratio(self) -> Decimal | None:
        if self.account is None or not self.peak_equity or self.peak_equity <= 0:
            return None
        return (self.peak_equity - self.account.equity) / self.peak_equity

    # -- the state file --------------------------------------------------------------------------

    def _load(self) -> None:
        """Read the file now; its state applies at the first account reading, if it is the same account's."""
        self._pending = riskstate.load(self._state_file)
        if self._pending is not None and self._pending.latched:
            self.latched = dict(self._pending.latched)  # halted from the first cycle, before any entry
            log.warning("new entries still halted after the restart (%s)", ", ".join(self.latched),
                        extra={"reasons": list(self.latched)})

    def _apply_saved(self, account: AccountState) -> None:
        saved, self._pending = self._pending, None
        if saved is None:
            return
        if saved.account is not None and saved.account != str(account.login):
            self.latched = {}
            log.info("risk guard state of account %s not applied to account %s", saved.account, account.login)
            return
        self.day, self.day_start_equity, self.peak_equity = saved.day, saved.day_start_equity, saved.peak_equity
        self.latched = dict(saved.latched)

    def _save(self, force: bool = True) -> None:
        if not self._state_file or (not force and time.monotonic() - self._saved_at < SAVE_EVERY_SECONDS):
            return
        self._saved_at = time.monotonic()
        login = None if self.account is None else str(self.account.login)
        riskstate.save(self._state_file, riskstate.RiskState(login, self.day, self.day_start_equity, self.peak_equity,
                                                             dict(self.latched)))

    def close(self) -> None:
        with self._lock:
            self._save()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _ratio(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value), 6)
