"""Balance, equity and margin level as the account gauges export them, set or held.

Two ways in: `set` (explicit figures, converted and checked at once) and `hold` (the cycle's
bot.gateway.AccountState itself, converted when a gauge is read, on the reader's thread). Why the
second: the loop reports the account every cycle and /metrics is read every 15 s, so converting each
cycle's figures on the loop was work nobody read (issue 16: "telemetry CPU cost <= 1 % of a cycle");
holding is one attribute store. The gateway has checked a held state's figures; one that still cannot
be exported leaves the last figures and a WARNING line (once, until an account exports again).
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal
from typing import Any

from bot.telemetry.values import number

log = logging.getLogger("bot.telemetry.metrics")


class AccountFigures:
    """(balance, equity, margin level ratio) for the three account gauges."""

    def __init__(self) -> None:
        self._figures = (0.0, 0.0, math.nan)
        self._inputs: tuple | None = None  # the (balance, equity, margin level) the figures were made from
        self._held: Any = None  # the newest held AccountState (None: the figures are the newest)
        self._converted: Any = None  # the held state the figures were last made from
        self._refused: str | None = None  # why the last held state could not be exported

    def set(self, balance: float | Decimal, equity: float | Decimal, margin_level_percent: float | Decimal | None) -> None:
        """Balance, equity and margin level (MT5 percent; exported as a ratio).

        MT5 reports margin level 0 (or the gateway None) when no margin is used: that is
        exported as NaN, so "margin level below X" alerts don't fire on a flat account.
        """
        inputs = (balance, equity, margin_level_percent)
        self._held = None  # these are the newest figures now
        if inputs == self._inputs:  # a flat account's figures seldom move
            return
        self._figures = ratios(balance, equity, margin_level_percent)
        self._inputs = inputs

    def hold(self, state: Any) -> None:
        """The account as the cycle saw it (balance, equity, margin_level attributes), exported when read.

        Each gauge converts what is held when it is read: a cycle ending between the reads of two of
        the three shows in the later ones only."""
        self._held = state

    def now(self) -> tuple[float, float, float]:
        """The figures to export (what a gauge reads): the held state's, converted if it is new."""
        held = self._held
        if held is not None and held is not self._converted:
            inputs = (held.balance, held.equity, held.margin_level)
            try:
                if inputs != self._inputs:
                    self._figures = ratios(*inputs)
                    self._inputs = inputs
            except (TypeError, ValueError, ArithmeticError) as exc:  # ArithmeticError: a signaling NaN
                if self._refused is None:
                    log.warning("account figures not exported, the gauges keep the last ones: %s", exc)
                self._refused = str(exc)
            else:
                self._refused = None
            self._converted = held
        return self._figures


def ratios(balance: float | Decimal, equity: float | Decimal,
           margin_level_percent: float | Decimal | None) -> tuple[float, float, float]:
    """(balance, equity, margin level / 100) as finite floats (NaN margin level: no margin used)."""
    if type(balance) is Decimal and type(equity) is Decimal and balance.is_finite() and equity.is_finite():
        balance_f, equity_f = float(balance), float(equity)  # what the gateway reports: no frame per figure
    else:
        balance_f, equity_f = number("balance", balance), number("equity", equity)
    if margin_level_percent is None:
        ratio = math.nan
    else:
        percent = float(margin_level_percent) if type(margin_level_percent) is Decimal and \
            margin_level_percent.is_finite() else number("margin level", margin_level_percent)
        ratio = math.nan if percent == 0 and equity_f > 0 else percent / 100
    return balance_f, equity_f, ratio
