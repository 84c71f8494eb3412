"""The snapshot step, at the end of a cycle: the account and its positions as the broker has them now.

Why a module of its own: the snapshot is what the analytics' balance curve and the dashboards'
equity are built from, so what it holds and when it is stamped matter (see the comment in
Engine._cycle); the figures it reports to the observer are the ones the bot's status shows.

When a snapshot is stored (the rule): the first one of a run; then whenever the balance or the
set of our open positions (ticket, direction, volume, stop loss, take profit) differs from the
last one stored; else once SNAPSHOT_INTERVAL of broker time has passed since it (or the broker's
clock went back).  Only floating figures (equity, profit, margin, current prices) can be older
than the interval, never a balance or a position change.  Why: a fast cycle (every few seconds)
wrote two rows and a commit per cycle that said nothing new, most of the cost of a cycle without
a bar.  What reads the rows stays right:
- the exporter's newest-snapshot figures and AccountSnapshotStale (age > 600 s): at most
  SNAPSHOT_INTERVAL old while the bot cycles; DailyLossLimit's balance is never stale;
- the rollups' initial balance (the newest snapshot before the first exit) and the daily
  report's end balance: every balance change has its snapshot, stamped after its deal;
- the history guard (newest deal or snapshot vs the broker's clock): only ever less strict.
A cycle at least SNAPSHOT_INTERVAL apart (the default CYCLE_SECONDS is 30) still stores one
every cycle.  The observer (the bot's own /metrics: equity, margin level) is told every cycle.

What is read (`_end_snapshot`): a stored snapshot's account figures are read after the cycle's
last order and stamped with the broker time read right after them: a snapshot stamped earlier
(the cycle's start) could hold the balance of a deal made later in the cycle, and the analytics'
initial balance (the newest snapshot before the first exit) would then include that trade's
profit.  So a cycle that sent an order reads the account again at its end; a cycle that sent
nothing uses the account it sized on (read this cycle, after the positions), and reads only the
broker time for a snapshot it stores, nothing at all otherwise.  The positions are the cycle's
own read (at its start, again after each send): no third read of the same list.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from db import AccountSnapshot, PositionSnapshot

from ..gateway import AccountState, Position
from .observer import CycleReport

#: Longest a stored snapshot goes without a successor while nothing but floating figures changed.
SNAPSHOT_INTERVAL = timedelta(seconds=20)


def snapshot_key(account: AccountState, positions: list[Position]) -> tuple:
    """What makes a snapshot news: the balance and our open positions, not their floating profit."""
    return account.balance, frozenset((p.ticket, p.direction, p.volume, p.sl, p.tp) for p in positions)


class SnapshotStep:
    """Engine methods of the snapshot step (mixed into bot.engine.engine.Engine)."""

    #: (time, snapshot_key) of the last snapshot this run stored.
    _snapshot_stored: tuple[datetime, tuple] | None = None

    def _snapshot_due(self, now: datetime, key: tuple) -> bool:
        if self._snapshot_stored is None:
            return True
        at, stored = self._snapshot_stored
        return key != stored or not timedelta(0) <= now - at < SNAPSHOT_INTERVAL

    def _end_snapshot(self, now: datetime, sized: AccountState | None, positions: list[Position],
                      report: CycleReport) -> AccountState | None:
        """The cycle's last step; returns the account state it ends with (None: refused, not snapshotted).

        `now`: the cycle's start; `sized`: the account state read for sizing this cycle (None while
        the equity guard refuses it); `positions`: ours, current.
        """
        quiet = not report.orders and not report.replayed  # nothing left the process this cycle
        if quiet and sized is not None:
            key = snapshot_key(sized, positions)
            if self._snapshot_due(now, key):  # the broker time is read only for a snapshot stored
                self._store_snapshot(self._seen_broker_now(), sized, positions, key)
            self._tell(sized, positions, report)
            return sized
        account = self.equity_guard.snapshot_account(self.gateway)
        if account is not None:  # a refused or implausible account state is never snapshotted
            self._snapshot(self._broker_now(), account, positions, report)  # after sends: the time now
        return account

    def _seen_broker_now(self) -> datetime:
        """The broker's time as the gateway last saw it in this cycle's quotes (no call), else read now.

        Only for a quiet cycle's snapshot (nothing sent: its figures are the sizing read's, from before
        the loop's quotes). Why: asking the terminal again for a quote only to read its time was a
        round trip a cycle over the bridge (issue 16). A cycle that sent orders reads the time after
        them: a broker takes time to execute, and the snapshot holds the account after the deals
        (tests/test_snapshot_time.py).
        """
        seen = getattr(self.gateway, "broker_time", None)
        return seen if isinstance(seen, datetime) else self._broker_now()

    def _snapshot(self, now: datetime, account: AccountState, positions: list[Position], report: CycleReport) -> None:
        key = snapshot_key(account, positions)
        if self._snapshot_due(now, key):
            self._store_snapshot(now, account, positions, key)
        self._tell(account, positions, report)

    def _tell(self, account: AccountState, positions: list[Position], report: CycleReport) -> None:
        """The cycle's figures to its report (every cycle, stored or not), which the observer gets at its end."""
        counts = {symbol: 0 for symbol in self.specs}
        for p in positions:
            counts[p.symbol] = counts.get(p.symbol, 0) + 1
        report.open_positions = len(positions)
        report.equity, report.balance = account.equity, account.balance
        report.account, report.position_counts = account, counts

    def _store_snapshot(self, now: datetime, account: AccountState, positions: list[Position], key: tuple) -> None:
        """Store the snapshot and remember it (`key`: its snapshot_key) for `_snapshot_due`."""
        self.repo.record_account_snapshot(
            AccountSnapshot(
                account=self.account_id,
                time=now,
                balance=account.balance,
                equity=account.equity,
                profit=account.profit,
                margin=account.margin,
                free_margin=account.free_margin,
                margin_level=account.margin_level,
                open_positions=len(positions),
            )
        )
        if positions:
            self.repo.record_position_snapshots(
                self.account_id,
                now,
                [
                    PositionSnapshot(
                        ticket=p.ticket, symbol=p.symbol, direction=p.direction, volume=p.volume,
                        price_open=p.price_open, price_current=p.price_current, sl=p.sl, tp=p.tp,
                        profit=p.profit, swap=p.swap,
                    )
                    for p in positions
                ],
            )
        self._snapshot_stored = (now, key)  # (time, snapshot_key) of the last snapshot stored
