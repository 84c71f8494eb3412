"""Sizing refuses an account state that moved impossibly: new orders halt, exits go on.

Why: position size is a share of equity, so an equity reading ten times too high sends ten times
the volume. Equity moves between two cycles through the floating profit of open positions and
through deals (a close, a deposit), and deals move the balance too. So a move of equity larger
than `max_jump` (MAX_EQUITY_JUMP, a share of the last plausible equity) plus the balance change
of the deals in between is not believed; with no deal in between the balance cannot have moved,
so then only the share is allowed.

What happens then (decided here, documented in the README):
- new orders halt with reason `equity_jump` (`account_invalid` when the account record itself
  was refused by the gateway); closing orders are still sent, the strategy's exits need no size;
- the last plausible state stays the reference; the refused state is not snapshotted;
- trading resumes by itself as soon as the state is plausible again: equity back within the
  allowance of the reference (deals since then included), or the new level holding steady
  (within the share) for `CONFIRM_CYCLES` cycles, so a true move the broker reports without a
  deal never halts the bot for good.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from ..gateway import AccountState, BadBrokerData, Gateway

log = logging.getLogger("bot.engine")

#: Cycles a new equity level must hold (within the share) before it is believed without a deal.
CONFIRM_CYCLES = 10


class EquityGuard:
    def __init__(self, max_jump: Decimal, confirm_cycles: int = CONFIRM_CYCLES):
        self.max_jump = Decimal(max_jump)
        self.confirm_cycles = confirm_cycles
        self.reference: Decimal | None = None  # the last plausible equity ...
        self._reference_balance = Decimal(0)  # ... and its balance
        self._deals_seen: int | None = None
        self._candidate: Decimal | None = None
        self._held = 0
        self.refusal: str | None = None  # why new orders are halted now, None while they may be sent

    def sizing_account(self, gateway: Gateway, observer: Any) -> AccountState | None:
        """Read the account; the state to size new orders on, or None while they are halted (said once)."""
        try:
            account = gateway.account()
        except BadBrokerData:  # quarantined and said by the gateway's guard
            account = None
        refusal = self.check(account, gateway.deals_seen)
        if refusal != self.refusal:
            self.refusal = refusal
            if refusal is None:
                log.info("new orders resume: the account state is plausible again",
                         extra={"equity": str(self.reference)})
            else:
                log.warning("new orders halted (%s): exits go on", refusal,
                            extra={"reason": refusal, "equity": str(account.equity) if account else None,
                                   "reference_equity": str(self.reference)})
            observer.new_orders_halted(refusal, "equity")
        return None if refusal else account

    def snapshot_account(self, gateway: Gateway) -> AccountState | None:
        """A fresh account reading for the cycle's snapshot, or None if it is not to be believed.

        Judged against the same reference as sizing, but it changes nothing: the guard counts
        sizing reads (one a cycle), so a second read per cycle must not advance `CONFIRM_CYCLES`.
        """
        if self.refusal is not None:
            return None
        try:
            account = gateway.account()
        except BadBrokerData:  # quarantined and said by the gateway's guard
            return None
        if self.reference is None:
            return account
        return account if self._plausible(account, gateway.deals_seen != self._deals_seen) else None

    def check(self, account: AccountState | None, deals_seen: int) -> str | None:
        """None when new orders may be sized on `account`; else why not."""
        if account is None:
            return "account_invalid"
        dealt = deals_seen != self._deals_seen  # any deal since the reference state
        if self.reference is None or self._plausible(account, dealt):
            return self._accept(account, deals_seen)
        if self._candidate is not None and abs(account.equity - self._candidate) <= abs(self._candidate) * self.max_jump:
            self._held += 1
        else:
            self._candidate, self._held = account.equity, 1
        if self._held >= self.confirm_cycles:
            return self._accept(account, deals_seen)
        return "equity_jump"

    def _plausible(self, account: AccountState, dealt: bool) -> bool:
        if self.reference <= 0:
            return True  # no share of nothing: a blown or empty account is not judged
        allowed = self.reference * self.max_jump
        if dealt:
            allowed += abs(account.balance - self._reference_balance)
        return abs(account.equity - self.reference) <= allowed

    def _accept(self, account: AccountState, deals_seen: int) -> None:
        self.reference, self._reference_balance, self._deals_seen = account.equity, account.balance, deals_seen
        self._candidate, self._held = None, 0
        return None
