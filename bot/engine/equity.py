"""Sizing refuses an account state that moved impossibly: new orders halt, exits go on.

Why: position size is a share of equity, so an equity reading ten times too high sends ten times
the volume. Equity moves between two cycles through deals (a close, a deposit) and the floating
profit of open positions; a move of more than `max_jump` (MAX_EQUITY_JUMP, a share of the last
plausible equity) while no deal happened is not believed.

What happens then (decided here, documented in the README):
- new orders halt with reason `equity_jump` (`account_invalid` when the account record itself
  was refused by the gateway); closing orders are still sent, the strategy's exits need no size;
- the last plausible state stays the reference; the refused state is not snapshotted;
- trading resumes by itself as soon as the state is plausible again: equity back within the
  share of the reference, or a deal that explains the move (the new state becomes the reference),
  or the new level holding steady (within the share) for `CONFIRM_CYCLES` cycles, so a true move
  the broker reports without a deal never halts the bot for good.
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
        self.reference: Decimal | None = None
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
            observer.new_orders_halted(refusal)
        return None if refusal else account

    def check(self, account: AccountState | None, deals_seen: int) -> str | None:
        """None when new orders may be sized on `account`; else why not."""
        if account is None:
            return "account_invalid"
        equity = account.equity
        explained = self._deals_seen is not None and deals_seen != self._deals_seen
        self._deals_seen = deals_seen
        if self.reference is None or explained or self._near(equity, self.reference):
            return self._accept(equity)
        if self._candidate is not None and self._near(equity, self._candidate):
            self._held += 1
        else:
            self._candidate, self._held = equity, 1
        if self._held >= self.confirm_cycles:
            return self._accept(equity)
        return "equity_jump"

    def _near(self, equity: Decimal, reference: Decimal) -> bool:
        if reference <= 0:
            return True  # no share of nothing: a blown or empty account is not judged
        return abs(equity - reference) <= reference * self.max_jump

    def _accept(self, equity: Decimal) -> None:
        self.reference, self._candidate, self._held = equity, None, 0
        return None
