"""The snapshot step, at the end of a cycle: the account and its positions as the broker has them now.

Why a module of its own: the snapshot is what the analytics' balance curve and the dashboards'
equity are built from, so what it holds and when it is stamped matter (see the comment in
Engine._cycle); the figures it reports to the observer are the ones the bot's status shows.
"""

from __future__ import annotations

from datetime import datetime

from db import AccountSnapshot, PositionSnapshot

from ..gateway import AccountState, Position
from .observer import CycleReport


class SnapshotStep:
    """Engine methods of the snapshot step (mixed into bot.engine.engine.Engine)."""

    def _snapshot(self, now: datetime, account: AccountState, positions: list[Position], report: CycleReport) -> None:
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
        counts = {symbol: 0 for symbol in self.specs}
        for p in positions:
            counts[p.symbol] = counts.get(p.symbol, 0) + 1
        report.open_positions = len(positions)
        report.equity, report.balance = account.equity, account.balance
        self.observer.account(account)
        self.observer.positions(counts)
