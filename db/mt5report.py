"""The figures of MetaTrader 5's Trade History Report, computed from an account's deals.

Why beside db.analytics: our analytics count a *position* as one trade, valued at its
whole net (all its deals' profit, commission and swap).  The terminal counts differently,
and a trader checks us against the terminal.  This module reproduces the terminal's
convention from the deals table, so both can be shown side by side (README, "MT5-report
figures").  It reads deals, never the trades table, and is pure Decimal arithmetic.

The MT5 convention, as its report defines it:
- a trade is an exit deal (DEAL_ENTRY_OUT, INOUT, OUT_BY): a partial close is a trade of its
  own; its result is its profit + its own commission + its own swap;
- entry deals belong to no trade: their commission (and swap, profit if any) goes into gross
  loss when negative (gross profit when positive); so do balance operations other than
  deposits/withdrawals and credit (db.mt5deals: OTHER): total net profit = gross profit +
  gross loss = the balance change, deals of still-open positions included;
- deposits and withdrawals (DEAL_TYPE_BALANCE) move the balance, never a figure; credit does
  not touch the balance;
- balance drawdown absolute = initial deposit - the lowest balance after any later deal (0 when
  it never fell below); maximal and relative drawdowns are read on the balance after every deal; a deposit or withdrawal ends the
  running drawdown and starts a new one from the new balance (as the terminal's tester does),
  so moving money never looks like a loss or a recovery;
- a win is a trade result > 0, a loss < 0; a breakeven trade (exactly 0.00) counts in total
  trades only and ends any run of wins or losses;
- short trades are exits of short positions (buy exit deals), long trades exits of long ones.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from db import brokerday
from db.database import Database
from db.models import DealModel
from db.mt5deals import BUY, CREDIT, EXITS, FUNDING, TRADE, kind_of
from db.reading import reading

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def _round(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _ratio(part: Decimal | int, whole: Decimal | int, step: Decimal = CENT) -> Decimal:
    """part / whole rounded to `step` (0 for an empty whole)."""
    return _round(Decimal(part) / Decimal(whole), step) if whole else _round(ZERO, step)


def _percent(part: Decimal | int, whole: Decimal | int, step: Decimal = CENT) -> Decimal:
    return _ratio(Decimal(part) * HUNDRED, whole, step)


@dataclass(frozen=True, slots=True)
class Mt5Figures:
    """One account's Trade History Report summary; money in the account currency, % as 12.34."""

    deals: int
    initial_deposit: Decimal
    deposits: Decimal  # sum of deposits (>= 0)
    withdrawals: Decimal  # sum of withdrawals (<= 0)
    credit: Decimal
    balance: Decimal  # after the last deal
    total_net_profit: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: Decimal | None  # None without any loss
    expected_payoff: Decimal
    recovery_factor: Decimal | None  # net profit / maximal balance drawdown; None without drawdown
    balance_drawdown_absolute: Decimal
    balance_drawdown_maximal: Decimal
    balance_drawdown_maximal_percent: Decimal
    balance_drawdown_relative_percent: Decimal
    balance_drawdown_relative: Decimal
    total_trades: int
    short_trades: int
    short_won_percent: Decimal
    long_trades: int
    long_won_percent: Decimal
    profit_trades: int
    profit_trades_percent: Decimal
    loss_trades: int
    loss_trades_percent: Decimal
    largest_profit_trade: Decimal
    largest_loss_trade: Decimal
    average_profit_trade: Decimal
    average_loss_trade: Decimal
    max_consecutive_wins: int
    max_consecutive_wins_money: Decimal
    max_consecutive_losses: int
    max_consecutive_losses_money: Decimal
    maximal_consecutive_profit: Decimal
    maximal_consecutive_profit_count: int
    maximal_consecutive_loss: Decimal
    maximal_consecutive_loss_count: int
    average_consecutive_wins: Decimal
    average_consecutive_losses: Decimal

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- the balance curve and its drawdowns ------------------------------------------------------


class _Drawdowns:
    """Peak-to-trough episodes of the balance after every deal; funding restarts the episode."""

    def __init__(self, balance: Decimal) -> None:
        self.peak = self.trough = balance
        self.maximal = ZERO
        self.maximal_ratio = Decimal(0)  # of the episode with the largest money drawdown
        self.relative_ratio = Decimal(0)  # the largest drawdown / its peak
        self.relative = ZERO  # that episode's money

    def after_trade(self, balance: Decimal) -> None:
        if balance > self.peak:
            self.restart(balance)
        elif balance < self.trough:
            self.trough = balance

    def restart(self, balance: Decimal) -> None:
        fall = self.peak - self.trough
        if fall > 0 and self.peak > 0:
            ratio = fall / self.peak
            if fall > self.maximal:
                self.maximal, self.maximal_ratio = fall, ratio
            if ratio > self.relative_ratio:
                self.relative_ratio, self.relative = ratio, fall
        self.peak = self.trough = balance


# -- runs of wins and losses ------------------------------------------------------------------


class _Runs:
    """Consecutive wins (sign +1) or losses (-1): longest run, richest run, average length."""

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.count, self.money = 0, ZERO
        self.runs, self.in_runs = 0, 0
        self.longest, self.longest_money = 0, ZERO
        self.richest, self.richest_count = ZERO, 0

    def add(self, result: Decimal) -> None:
        self.count += 1
        self.money += result

    def end(self) -> None:
        if not self.count:
            return
        bigger = (self.money > self.longest_money) if self.sign > 0 else (self.money < self.longest_money)
        if self.count > self.longest or (self.count == self.longest and bigger):
            self.longest, self.longest_money = self.count, self.money
        richer = (self.money > self.richest) if self.sign > 0 else (self.money < self.richest)
        if richer or (self.money == self.richest and self.count > self.richest_count):
            self.richest, self.richest_count = self.money, self.count
        self.runs += 1
        self.in_runs += self.count
        self.count, self.money = 0, ZERO


# -- the figures -------------------------------------------------------------------------------


def _amount(deal) -> Decimal:
    """What the deal did to the balance (its money fields are Decimal: records and NUMERIC columns)."""
    return deal.profit + deal.commission + deal.swap


def mt5_figures(deals: Iterable, opening_balance: Decimal = ZERO, step: Decimal = CENT) -> Mt5Figures:
    """The report's figures for deals given in the terminal's order (time, then ticket).

    `opening_balance` is the balance before the first deal (a report over a period); when it
    is 0 the initial deposit is the first deposit's amount.  Ratios, percentages and averages
    are rounded to `step` (the report prints two places; verify-report asks for more and
    rounds to whatever the report printed, so that nothing is rounded twice).
    """
    fold = Mt5Fold(opening_balance)
    for deal in deals:
        fold.add(deal)
    return fold.figures(step)


class Mt5Fold:
    """mt5_figures' walk through the deals, kept between calls: deals later in the terminal's order can be
    added to it and the figures asked again (db.mt5board: a changed account's new deals only, not its
    whole history again).  figures() leaves the walk as it was."""

    def __init__(self, opening_balance: Decimal = ZERO) -> None:
        self.balance, self.credit = Decimal(opening_balance), ZERO
        self.initial = self.balance if self.balance > 0 else None
        self.lowest = self.balance
        self.drawdowns = _Drawdowns(self.balance)
        self.wins, self.losses = _Runs(+1), _Runs(-1)
        self.gross_profit = self.gross_loss = self.deposits = self.withdrawals = ZERO
        # The exit deals' results: how many, and of the won and the lost ones count, sum and the largest
        # (what the summary needs of them: kept as running figures, not a list to go through on every ask).
        self.trades = 0
        self.won = [0, ZERO, None]  # count, sum (from ZERO, in order), largest
        self.lost = [0, ZERO, None]
        self.short = [0, 0]  # trades, won
        self.long = [0, 0]
        self.count = 0

    def add(self, deal) -> None:
        self.count += 1
        kind, amount = kind_of(deal.type), _amount(deal)
        if kind == CREDIT:
            self.credit += amount
            return
        self.balance += amount
        if self.initial is None and kind == FUNDING and amount > 0:
            self.initial = self.lowest = self.balance
        if self.initial is not None:
            self.lowest = min(self.lowest, self.balance)
        if kind == FUNDING:
            if amount > 0:
                self.deposits += amount
            else:
                self.withdrawals += amount
            self.drawdowns.restart(self.balance)
            return
        self.drawdowns.after_trade(self.balance)
        if kind != TRADE or deal.entry not in EXITS:  # an entry deal's costs, or another balance operation
            if amount > 0:
                self.gross_profit += amount
            else:
                self.gross_loss += amount
            return
        self.trades += 1
        if amount > 0:
            self.won[0] += 1
            self.won[1] += amount
            self.won[2] = amount if self.won[2] is None else max(self.won[2], amount)
        elif amount < 0:
            self.lost[0] += 1
            self.lost[1] += amount
            self.lost[2] = amount if self.lost[2] is None else min(self.lost[2], amount)
        side = self.short if deal.type == BUY else self.long  # a buy exit closes a short position
        side[0] += 1
        if amount > 0:
            side[1] += 1
            self.gross_profit += amount
            self.losses.end()
            self.wins.add(amount)
        elif amount < 0:
            self.gross_loss += amount
            self.wins.end()
            self.losses.add(amount)
        else:
            self.wins.end()
            self.losses.end()

    def figures(self, step: Decimal = CENT) -> Mt5Figures:
        """The figures as if the deals ended here (the open runs and the drawdown episode closed on copies)."""
        wins, losses, drawdowns = copy.copy(self.wins), copy.copy(self.losses), copy.copy(self.drawdowns)
        wins.end()
        losses.end()
        drawdowns.restart(self.balance)
        return _summary(self.count, self.trades, self.won, self.lost, self.initial, self.lowest, self.balance, self.credit,
                        self.deposits, self.withdrawals, self.gross_profit, self.gross_loss, drawdowns, wins,
                        losses, list(self.short), list(self.long), step)


def _summary(count, trades, won, lost, initial, lowest, balance, credit, deposits, withdrawals,
             gross_profit, gross_loss, drawdowns, wins, losses, short, long, step) -> Mt5Figures:
    net = gross_profit + gross_loss
    initial = ZERO if initial is None else initial
    return Mt5Figures(
        deals=count,
        initial_deposit=initial,
        deposits=deposits,
        withdrawals=withdrawals,
        credit=credit,
        balance=balance,
        total_net_profit=net,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=_ratio(gross_profit, -gross_loss, step) if gross_loss else None,
        expected_payoff=_ratio(net, trades, step),
        recovery_factor=_ratio(net, drawdowns.maximal, step) if drawdowns.maximal else None,
        balance_drawdown_absolute=max(ZERO, initial - lowest) if initial else ZERO,
        balance_drawdown_maximal=drawdowns.maximal,
        balance_drawdown_maximal_percent=_round(drawdowns.maximal_ratio * HUNDRED, step),
        balance_drawdown_relative_percent=_round(drawdowns.relative_ratio * HUNDRED, step),
        balance_drawdown_relative=drawdowns.relative,
        total_trades=trades,
        short_trades=short[0],
        short_won_percent=_percent(short[1], short[0], step),
        long_trades=long[0],
        long_won_percent=_percent(long[1], long[0], step),
        profit_trades=won[0],
        profit_trades_percent=_percent(won[0], trades, step),
        loss_trades=lost[0],
        loss_trades_percent=_percent(lost[0], trades, step),
        largest_profit_trade=ZERO if won[2] is None else won[2],
        largest_loss_trade=ZERO if lost[2] is None else lost[2],
        average_profit_trade=_ratio(won[1], won[0], step),
        average_loss_trade=_ratio(lost[1], lost[0], step),
        max_consecutive_wins=wins.longest,
        max_consecutive_wins_money=wins.longest_money,
        max_consecutive_losses=losses.longest,
        max_consecutive_losses_money=losses.longest_money,
        maximal_consecutive_profit=wins.richest,
        maximal_consecutive_profit_count=wins.richest_count,
        maximal_consecutive_loss=losses.richest,
        maximal_consecutive_loss_count=losses.richest_count,
        average_consecutive_wins=_ratio(wins.in_runs, wins.runs, step),
        average_consecutive_losses=_ratio(losses.in_runs, losses.runs, step),
    )


# -- the same history counted our way (one trade per position) ---------------------------------


@dataclass(frozen=True, slots=True)
class PositionFigures:
    """Our per-position convention over the same deals: a trade is a closed position at its full net."""

    trades: int
    open_positions: int
    total_net_profit: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: Decimal | None
    expected_payoff: Decimal

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def position_figures(deals: Iterable) -> PositionFigures:
    """Closed positions (their buy and sell volumes equal) valued at all their deals' net."""
    net: dict[int, Decimal] = {}
    volume: dict[int, Decimal] = {}
    for deal in deals:
        if kind_of(deal.type) != TRADE:
            continue
        signed = Decimal(deal.volume) if deal.type == BUY else -Decimal(deal.volume)
        net[deal.position_id] = net.get(deal.position_id, ZERO) + _amount(deal)
        volume[deal.position_id] = volume.get(deal.position_id, Decimal(0)) + signed
    closed = [net[pid] for pid in net if volume[pid] == 0]
    gross_profit = sum((r for r in closed if r > 0), ZERO)
    gross_loss = sum((r for r in closed if r < 0), ZERO)
    return PositionFigures(
        trades=len(closed),
        open_positions=len(net) - len(closed),
        total_net_profit=gross_profit + gross_loss,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=_ratio(gross_profit, -gross_loss) if gross_loss else None,
        expected_payoff=_ratio(gross_profit + gross_loss, len(closed)),
    )


# -- from the store ------------------------------------------------------------------------------


def account_deals(connection, account: str, since: datetime | None = None, until: datetime | None = None) -> Sequence:
    """The account's deals at or after `since` and before `until`, in the terminal's order (time, ticket)."""
    table = DealModel.__table__
    columns = [table.c[name] for name in ("time", "ticket", "type", "entry", "position_id", "volume", "profit",
                                          "commission", "swap")]
    query = select(*columns).where(table.c.account == account)
    if since is not None:
        query = query.where(table.c.time >= since)
    if until is not None:
        query = query.where(table.c.time < until)
    return connection.execute(query.order_by(table.c.time, table.c.ticket)).all()


def opening_balance(connection, account: str, since: datetime | None) -> Decimal:
    """The balance before `since`: every earlier balance-changing deal (credit excluded)."""
    if since is None:
        return ZERO
    table = DealModel.__table__
    rows = connection.execute(
        select(table.c.type, table.c.profit, table.c.commission, table.c.swap)
        .where(table.c.account == account, table.c.time < since)
    ).all()
    return sum((_amount(row) for row in rows if kind_of(row.type) != CREDIT), ZERO)


def figures_between(database: Database, account: str, since: datetime | None = None,
                    until: datetime | None = None, step: Decimal = CENT) -> tuple[Mt5Figures, PositionFigures]:
    """Both conventions over the account's stored deals in [since, until), from the balance before."""
    with reading(database) as connection:
        base = opening_balance(connection, account, since)
        deals = account_deals(connection, account, since, until)
    return mt5_figures(deals, base, step), position_figures(deals)


def account_figures(database: Database, account: str, start: date | None = None,
                    end: date | None = None) -> Mt5Figures:
    """The MT5-report figures of an account's stored deals (optionally over broker days, both included:
    cut at the trade server's midnight like the rollups, db.brokerday)."""
    since = until = None
    if start is not None or end is not None:
        with reading(database) as connection:
            offsets = brokerday.load(connection, account)
        since = None if start is None else offsets.day(start).start
        until = None if end is None else offsets.day(end).end
    return figures_between(database, account, since, until)[0]
