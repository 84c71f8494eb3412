"""An account's summary in either convention: ours (one trade per position) or MT5's report.

Why one entry point: the exporter's `convention` parameter picks one of two answers, and both
must cover the same selection of days.  The per-position summary is the sum of the per-strategy
lines of db.analytics (every closed trade has exactly one strategy, '' for none) with its
drawdown; the MT5 one comes from the deals (db.mt5report).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from db import analytics, mt5report
from db.analytics import Selection
from db.database import Database
from db.ledger import CENT

CONVENTIONS = ("position", "mt5")


@dataclass(frozen=True, slots=True)
class PositionSummary:
    """The account's closed positions, our way: a position is one trade at its whole net."""

    trades: int
    winners: int
    losers: int
    breakevens: int
    win_rate: float
    total_net_profit: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: float | None
    expected_payoff: Decimal
    largest_win: Decimal | None
    largest_loss: Decimal | None
    max_drawdown: Decimal
    max_drawdown_ratio: float | None


def position_summary(database: Database, selection: Selection) -> PositionSummary:
    lines = analytics.strategy_performance(database, selection)
    drawdown = analytics.drawdown(database, selection)
    trades = sum(line.trades for line in lines)
    winners = sum(line.winners for line in lines)
    losers = sum(line.losers for line in lines)
    net = sum((line.total_profit for line in lines), Decimal("0.00"))
    wins = sum((line.gross_profit for line in lines), Decimal("0.00"))
    losses = sum((line.gross_loss for line in lines), Decimal("0.00"))
    largest_win = max((line.largest_win for line in lines if line.largest_win is not None), default=None)
    largest_loss = min((line.largest_loss for line in lines if line.largest_loss is not None), default=None)
    return PositionSummary(
        trades=trades,
        winners=winners,
        losers=losers,
        breakevens=trades - winners - losers,
        win_rate=winners / trades if trades else 0.0,
        total_net_profit=net,
        gross_profit=wins,
        gross_loss=losses,
        profit_factor=float(wins / -losses) if losses else None,
        expected_payoff=(net / trades).quantize(CENT, rounding=ROUND_HALF_UP) if trades else Decimal("0.00"),
        largest_win=largest_win,
        largest_loss=largest_loss,
        max_drawdown=drawdown.max_drawdown,
        max_drawdown_ratio=drawdown.max_drawdown_ratio,
    )


def summary(database: Database, selection: Selection, convention: str):
    """PositionSummary or mt5report.Mt5Figures of the selection (MT5's covers the whole account's deals)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    if convention == "position":
        return position_summary(database, selection)
    return mt5report.account_figures(database, selection.account, selection.start, selection.end)


@dataclass(frozen=True, slots=True)
class Mt5Drawdown:
    """The report's balance drawdowns (db.mt5report): on the balance after every deal."""

    initial_deposit: Decimal
    balance: Decimal
    balance_drawdown_absolute: Decimal
    balance_drawdown_maximal: Decimal
    balance_drawdown_maximal_percent: Decimal
    balance_drawdown_relative_percent: Decimal
    balance_drawdown_relative: Decimal


def mt5_drawdown(database: Database, selection: Selection) -> Mt5Drawdown:
    figures = mt5report.account_figures(database, selection.account, selection.start, selection.end)
    return Mt5Drawdown(**{name: getattr(figures, name) for name in Mt5Drawdown.__dataclass_fields__})
