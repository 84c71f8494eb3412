"""The report's Results block beside our figures: which value is which, and whether they agree.

Why by position from the end: the block's labels are translated, its order is not, and the
account-state lines before it (balance, margin...) differ between terminal builds; the
Results block (RESULTS, in the terminal's order) is the report's last 25 label/value pairs.

A value is compared at the precision the report prints it: "1.33" against our 1.3300 rounded
to two places, "1" (average consecutive wins) against ours rounded to a whole number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from db.mt5report import Mt5Figures, PositionFigures
from db.report_grid import ReportError

# (English label, the Mt5Figures fields its numbers are, in print order; None: printed, not computed)
RESULTS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("Total Net Profit", ("total_net_profit",)),
    ("Gross Profit", ("gross_profit",)),
    ("Gross Loss", ("gross_loss",)),
    ("Profit Factor", ("profit_factor",)),
    ("Expected Payoff", ("expected_payoff",)),
    ("Recovery Factor", ("recovery_factor",)),
    ("Sharpe Ratio", None),
    ("Balance Drawdown Absolute", ("balance_drawdown_absolute",)),
    ("Balance Drawdown Maximal", ("balance_drawdown_maximal", "balance_drawdown_maximal_percent")),
    ("Balance Drawdown Relative", ("balance_drawdown_relative_percent", "balance_drawdown_relative")),
    ("Total Trades", ("total_trades",)),
    ("Short Trades (won %)", ("short_trades", "short_won_percent")),
    ("Long Trades (won %)", ("long_trades", "long_won_percent")),
    ("Profit Trades (% of total)", ("profit_trades", "profit_trades_percent")),
    ("Loss Trades (% of total)", ("loss_trades", "loss_trades_percent")),
    ("Largest profit trade", ("largest_profit_trade",)),
    ("Largest loss trade", ("largest_loss_trade",)),
    ("Average profit trade", ("average_profit_trade",)),
    ("Average loss trade", ("average_loss_trade",)),
    ("Maximum consecutive wins ($)", ("max_consecutive_wins", "max_consecutive_wins_money")),
    ("Maximum consecutive losses ($)", ("max_consecutive_losses", "max_consecutive_losses_money")),
    ("Maximal consecutive profit (count)", ("maximal_consecutive_profit", "maximal_consecutive_profit_count")),
    ("Maximal consecutive loss (count)", ("maximal_consecutive_loss", "maximal_consecutive_loss_count")),
    ("Average consecutive wins", ("average_consecutive_wins",)),
    ("Average consecutive losses", ("average_consecutive_losses",)),
)
# Our per-position figure printed beside a Results line, where the convention has one.
POSITION_FIELD = {
    "total_net_profit": "total_net_profit", "gross_profit": "gross_profit", "gross_loss": "gross_loss",
    "profit_factor": "profit_factor", "expected_payoff": "expected_payoff", "total_trades": "trades",
}
_NUMBERS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")


@dataclass(frozen=True, slots=True)
class Line:
    label: str  # English, whatever the report's language
    report: str  # as printed
    mt5: str  # ours in the MT5 convention, printed like the report
    position: str  # ours per position ('' where that convention has no such figure)
    equal: bool | None  # None: not compared (Sharpe ratio)


def report_numbers(value: str) -> list[Decimal]:
    """The numbers of a printed value: '1 145.00 (10.41%)' -> [1145.00, 10.41]."""
    return [Decimal(n) for n in _NUMBERS.findall(value.translate(_SPACES))]


def _at(value: Decimal | int | None, like: Decimal) -> Decimal:
    """Ours at the precision of the report's number."""
    places = Decimal(1).scaleb(like.as_tuple().exponent)
    return Decimal(0 if value is None else value).quantize(places, rounding=ROUND_HALF_UP)


def compare(summary: list[tuple[str, str]], mt5: Mt5Figures, positions: PositionFigures) -> list[Line]:
    """One line per Results entry, ours beside the report's; ReportError without a Results block."""
    if len(summary) < len(RESULTS):
        raise ReportError(f"no summary block found after the Deals table ({len(summary)} label/value pairs, "
                          f"the Results block has {len(RESULTS)})")
    lines = []
    for (label, names), (_, printed) in zip(RESULTS, summary[-len(RESULTS):], strict=True):
        if names is None:
            lines.append(Line(label, printed, "", "", None))
            continue
        numbers = report_numbers(printed)
        if len(numbers) != len(names):
            raise ReportError(f"summary value {printed[:40]!r} for {label!r} should hold {len(names)} number(s)")
        ours = [_at(getattr(mt5, name), number) for name, number in zip(names, numbers, strict=True)]
        position = getattr(positions, POSITION_FIELD[names[0]]) if names[0] in POSITION_FIELD else ""
        lines.append(Line(label, printed, _shown(ours, names), "" if position is None else str(position),
                          ours == numbers))
    return lines


def _shown(values: list[Decimal], names: tuple[str, ...]) -> str:
    texts = [f"{value}%" if name.endswith("percent") else str(value) for value, name in zip(values, names, strict=True)]
    return texts[0] if len(texts) == 1 else f"{texts[0]} ({texts[1]})"


def render(lines: list[Line]) -> str:
    """The comparison as a fixed-width table, one figure a line, a mark where they differ."""
    out = [f"{'figure':<36} {'report':>22} {'ours, MT5 convention':>22} {'ours, per position':>20}"]
    for line in lines:
        mark = "" if line.equal in (True, None) else "   <- differs"
        out.append(f"{line.label:<36} {line.report:>22} {line.mt5 or '-':>22} {line.position or '-':>20}{mark}")
    return "\n".join(out)
