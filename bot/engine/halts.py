"""The terminal's "algorithmic trading disabled" (-8) halt, and when orders may resume.

Why a module of its own: a -8 from order_send means a person (or the terminal's settings)
switched automated trading off; sending again every cycle would spam the broker and the log,
so orders stop until the terminal's switches say otherwise (see `_check_trading_enabled`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..gateway import GatewayError

log = logging.getLogger("bot.engine")


class HaltStep:
    """Engine methods of the -8 halt (mixed into bot.engine.engine.Engine)."""

    #: A -8 the terminal's switches do not explain is tried again after this long (broker time).
    HALT_RETRY = timedelta(minutes=5)

    def _halt_orders(self, reason: str) -> None:
        if self.orders_halted_reason is None:
            self.orders_halted_reason = reason
            try:
                state = self.gateway.terminal()  # what the switches said when the -8 came
            except GatewayError:
                state = None
            self._halted_at = (None, state)
            self.observer.orders_halted(reason)

    def _check_trading_enabled(self, now: datetime) -> None:
        """While halted for -8: resume once the terminal allows algorithmic trading again.

        It must look allowed and either have changed since the halt (a person fixed it) or the
        halt be HALT_RETRY old: a -8 the switches do not explain is not retried every cycle.
        """
        state = self.gateway.terminal()
        since, before = self._halted_at
        if since is None:
            before = state if before is None else before
            self._halted_at = (now, before)
            since = now
        allowed = state.trade_allowed and not state.tradeapi_disabled
        if allowed and (state != before or now - since >= self.HALT_RETRY):
            log.info("algorithmic trading allowed in the terminal: orders resume")
            self.orders_halted_reason = None
            self.observer.orders_halted(None)
