"""What an account may do beyond the trading loop: watch only, prop-firm rules, first-start history.

Kept out of engine.py (a few hook lines call it):
- TRADING=off: no strategy is asked and nothing is sized; the gateway refuses any order anyway
  (`WatchOnlyRefused`), so a watch-only bot can never send one, whatever calls order_send.
- RULES_FILE: the prop-firm rules (bot.engine.proprules) are judged every cycle on the account
  state; a breach or near-breach of a loss rule halts new entries (exits go on) through the
  new-orders halt, reason "prop_rule" (tradewatch_new_orders_halted{reason="prop_rule"}).
- HISTORY_IMPORT=on: at the first start for an account (no import cursor yet), the whole deal
  history is imported (bot.account_history) before the first cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ..gateway import broker_day_of
from .proprules import PropRules, load_rules

log = logging.getLogger("bot.engine.policy")

HALT_REASON = "prop_rule"


class AccountPolicy:
    def __init__(self, settings: Any):
        self.settings = settings
        self.trading = bool(getattr(settings, "trading", True))
        self.rules = load_rules(settings.rules_file) if getattr(settings, "rules_file", "") else None
        self.prop: PropRules | None = None
        self.database: Any = None  # set by the app: where the first-start history import writes
        self._halted = False
        self._failing = False

    def started(self, engine: Any) -> None:
        if not self.trading:
            log.warning("watch-only account (TRADING=off): deals, positions and snapshots are recorded, "
                        "no order is ever sent", extra={"account": engine.account_id})
        if self.rules is not None:
            self.prop = PropRules(self.rules, engine.repo, engine.account_id, engine.observer,
                                  day_of=lambda moment: broker_day_of(engine.gateway, moment))
        if self.database is not None and getattr(self.settings, "history_import", False):
            self._first_start_import(engine)

    def gate(self, account: Any, engine: Any, now: datetime) -> Any:
        """The account state new entries are sized on, or None while a prop rule halts them."""
        if account is None or self.prop is None:
            return account
        self._evaluate(account, engine, now)
        halted = self.prop.halt is not None
        if halted != self._halted:
            self._halted = halted
            engine.observer.new_orders_halted(HALT_REASON if halted else None, "prop_rules")
        return None if halted else account

    def watch(self, account: Any, engine: Any, now: datetime) -> None:
        """A watch-only bot (no sizing) still judges the rules every cycle, on the snapshot's state."""
        if self.prop is not None and account is not None and not self.trading:
            self._evaluate(account, engine, now)

    def _evaluate(self, account: Any, engine: Any, now: datetime) -> None:
        """Judge the rules; a store that cannot answer keeps the last judgement (said once per streak)."""
        self.prop.observer = engine.observer
        try:
            self.prop.evaluate(account, now)
            self._failing = False
        except Exception as exc:  # noqa: BLE001 - the rules must never stop the cycle
            if not self._failing:
                log.warning("prop rules not judged this cycle (the last judgement stands): %s", exc)
            self._failing = True

    def _first_start_import(self, engine: Any) -> None:
        from ..account_history import Cursor, HistoryImport, cursor_file

        path = cursor_file(self.database.url, engine.account_id)
        cursor = Cursor(path)
        if cursor.load() is not None:
            return  # imported before: the live books keep it whole from here
        digits = {name: spec.digits for name, spec in engine.specs.items()}
        try:
            now = engine._broker_now()
            result = HistoryImport(engine.gateway, self.database, engine.account_id, self.settings.magic, digits,
                                   cursor=cursor).run(now)
            log.info("first start: account history imported (%d deals stored)", result.deals_stored,
                     extra={"account": engine.account_id})
        except Exception as exc:  # noqa: BLE001 - history is for the books, never a reason not to start
            log.warning("first start: account history not imported (tried again next start): %s", exc,
                        extra={"account": engine.account_id})
