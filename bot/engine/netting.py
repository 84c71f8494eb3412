"""What the account's margin mode means for the engine: one position per symbol on netting accounts.

MT5 reports ``account_info().margin_mode``: RETAIL_NETTING (0) and EXCHANGE (1) hold at most one
position per symbol (every deal nets into it), RETAIL_HEDGING (2) holds any number.

Strategy attribution on a netting account (the decision, said at start in one line): each
symbol is traded by ONE strategy, the first one in ``STRATEGIES`` order; the others still
evaluate and record their signals on it, but send no order there. Why: two strategies on one
netted position would silently net out (one's BUY closing the other's SELL), and the trade
records could no longer say whose profit it was. The first in the configured order is a rule a
trader can read from the configuration and change by reordering it.

Closes keep ``position=<ticket>`` on netting accounts too: MT5 allows it there, and the server
then treats the request as a close of that position only (an opposite order of at most its
volume: the sim's netting rules, ``mt5bridge/sim/netting.py``, refuse a larger one). Why not a
plain opposite deal: if the position was already closed (SL, stop-out) by the time the close
arrives, a plain opposite deal would OPEN a new position the other way; with ``position=`` the
broker refuses it (10036 position closed) and nothing unintended is opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mt5bridge import constants as mt5

log = logging.getLogger("bot.engine")

MARGIN_MODES = {
    mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING: "netting",
    mt5.ACCOUNT_MARGIN_MODE_EXCHANGE: "exchange",
    mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: "hedging",
}
ONE_POSITION_PER_SYMBOL = frozenset({"netting", "exchange"})


def margin_mode_name(mode: object) -> str | None:
    """The name of a margin mode, None when it is not one the bot supports."""
    try:
        return MARGIN_MODES.get(int(mode))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Attribution:
    """Which strategy may send orders on which symbol."""

    mode: str
    owners: dict[str, str]  # symbol -> the one strategy trading it (netting/exchange only)

    @classmethod
    def for_account(cls, mode: str, symbols, strategies) -> Attribution:
        names = [getattr(s, "name", s) for s in strategies]
        owners = {symbol: names[0] for symbol in symbols} if mode in ONE_POSITION_PER_SYMBOL and names else {}
        return cls(mode, owners)

    @property
    def netting(self) -> bool:
        return self.mode in ONE_POSITION_PER_SYMBOL

    def allows(self, symbol: str, strategy: str) -> bool:
        return not self.netting or self.owners.get(symbol, strategy) == strategy

    def position_cap(self, configured: int) -> int:
        """Open positions allowed per symbol: one on a netting account (a second order would net into it)."""
        return 1 if self.netting else configured

    def announce(self) -> None:
        """The one start-up line that says how strategies share symbols on this account."""
        if self.netting and self.owners:
            owner = next(iter(self.owners.values()))
            log.info("%s account: one position per symbol; %s trades every symbol, other strategies record "
                     "signals only (reorder STRATEGIES to change)", self.mode, owner,
                     extra={"margin_mode": self.mode, "owners": self.owners})
        else:
            log.info("%s account: every strategy trades every symbol", self.mode, extra={"margin_mode": self.mode})
