"""A hand-built MT5 account history and its Trade History Report figures, computed by hand.

Used by the figure tests (tests/test_mt5_report.py) and the report import tests
(tests/test_mt5_report_import.py).  The history has everything the MT5 convention treats
differently from ours: entry and exit commissions, swaps, partial exits, a withdrawal and a
later deposit, a commission charged as its own deal, credit, a breakeven exit, and two
positions still open at the end.  Every expected figure is worked out below, deal by deal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from db import DealRecord

ACCOUNT = "5001234"
BUY, SELL, BALANCE, CREDIT, COMMISSION = 0, 1, 2, 3, 7
IN, OUT = 0, 1

# (time, type, entry, position, symbol, volume, price, profit, commission, swap, comment)
# Balance after the deal on the right; "trough"/"peak" are the drawdown episode's.
HISTORY = [
    ("2025-01-02 08:00", BALANCE, IN, 0, "", "0", "0", "10000.00", "0", "0", "Deposit"),  # 10000.00 initial
    ("2025-01-02 09:00", BUY, IN, 101, "EURUSD", "1.00", "1.08500", "0", "-3.50", "0", ""),  # 9996.50
    ("2025-01-02 09:30", SELL, IN, 102, "XAUUSD", "0.50", "2650.00", "0", "-2.50", "0", ""),  # 9994.00 trough
    ("2025-01-02 12:00", SELL, OUT, 101, "EURUSD", "0.40", "1.09500", "40.00", "-1.40", "0", ""),  # 10032.60 +38.60 peak: ep 6.00
    ("2025-01-03 10:00", BUY, OUT, 102, "XAUUSD", "0.50", "2677.35", "-136.75", "-2.50", "-0.75", ""),  # 9892.60 -140.00
    ("2025-01-03 15:00", SELL, OUT, 101, "EURUSD", "0.60", "1.09600", "66.00", "-2.10", "-0.45", ""),  # 9956.05 +63.45
    ("2025-01-04 08:00", BALANCE, IN, 0, "", "0", "0", "-500.00", "0", "0", "Withdrawal"),  # 9456.05 ends ep 140.00
    ("2025-01-04 09:00", BUY, IN, 103, "USDJPY", "2.00", "157.200", "0", "-7.00", "0", ""),  # 9449.05
    ("2025-01-04 11:00", SELL, OUT, 103, "USDJPY", "2.00", "157.137", "-80.00", "-7.00", "1.20", ""),  # 9363.25 -85.80
    ("2025-01-05 09:00", SELL, IN, 104, "GBPUSD", "1.00", "1.25000", "0", "-3.50", "0", ""),  # 9359.75
    ("2025-01-05 10:00", BUY, OUT, 104, "GBPUSD", "1.00", "1.25030", "-30.00", "-3.50", "0", ""),  # 9326.25 -33.50
    ("2025-01-05 23:59", COMMISSION, IN, 0, "", "0", "0", "-5.00", "0", "0", "Monthly fee"),  # 9321.25
    ("2025-01-06 09:00", BUY, IN, 105, "BTCUSD", "0.10", "97000.00", "0", "-1.00", "0", ""),  # 9320.25 lowest, trough
    ("2025-01-06 16:00", SELL, OUT, 105, "BTCUSD", "0.10", "99500.00", "250.00", "-1.00", "-2.00", ""),  # 9567.25 +247.00: ep 135.80
    ("2025-01-07 08:00", CREDIT, IN, 0, "", "0", "0", "100.00", "0", "0", "Credit"),  # 9567.25 (credit is not balance)
    ("2025-01-07 09:00", BUY, IN, 106, "XAUUSD", "0.10", "2660.00", "0", "-0.50", "0", ""),  # 9566.75
    ("2025-01-07 10:00", SELL, OUT, 106, "XAUUSD", "0.10", "2660.05", "0.50", "-0.50", "0", ""),  # 9566.75 0.00 breakeven
    ("2025-01-08 09:00", SELL, IN, 107, "EURUSD", "1.00", "1.09000", "0", "-3.50", "0", ""),  # 9563.25
    ("2025-01-08 12:00", BUY, OUT, 107, "EURUSD", "0.50", "1.08960", "20.00", "-1.75", "0", ""),  # 9581.50 +18.25
    ("2025-01-09 12:00", BUY, OUT, 107, "EURUSD", "0.30", "1.08950", "15.00", "-1.05", "-0.20", ""),  # 9595.25 +13.75
    ("2025-01-10 08:00", BALANCE, IN, 0, "", "0", "0", "1000.00", "0", "0", "Deposit"),  # 10595.25
    ("2025-01-10 09:00", BUY, IN, 108, "GBPUSD", "0.20", "1.24000", "0", "-0.70", "0", ""),  # 10594.55 (107, 108 open)
]

# Worked out by hand from the table above:
#   gross profit = 38.60 + 63.45 + 247.00 + 18.25 + 13.75 = 381.05 (the five winning exits)
#   gross loss = losing exits (-140.00 - 85.80 - 33.50 = -259.30) + entry commissions
#     (-3.50 - 2.50 - 7.00 - 3.50 - 1.00 - 0.50 - 3.50 - 0.70 = -22.20) + the commission deal -5.00
#     = -286.50
#   net = 381.05 - 286.50 = 94.55 = balance change 10594.55 - (10000 - 500 + 1000)
#   drawdown episodes (peak -> trough): 10000.00 -> 9994.00 (6.00); 10032.60 -> 9892.60 (140.00,
#     1.395 %; ended by the withdrawal); 9456.05 -> 9320.25 (135.80, 1.436 %); then none above 4.00.
#     maximal = 140.00 (1.40 %), relative = 1.44 % (135.80): two different episodes.
#   absolute = 10000.00 - 9320.25 = 679.75
#   trades: 9 exits; short (buy exits) 4, 2 won; long (sell exits) 5, 3 won (the 0.00 exit is neither)
#   runs of wins: [38.60] [63.45] [247.00] [18.25 13.75]; of losses: [-140.00] [-85.80 -33.50]
EXPECTED_MT5 = {
    "deals": 22,
    "initial_deposit": D("10000.00"),
    "deposits": D("11000.00"),
    "withdrawals": D("-500.00"),
    "credit": D("100.00"),
    "balance": D("10594.55"),
    "total_net_profit": D("94.55"),
    "gross_profit": D("381.05"),
    "gross_loss": D("-286.50"),
    "profit_factor": D("1.33"),  # 381.05 / 286.50 = 1.3300
    "expected_payoff": D("10.51"),  # 94.55 / 9 = 10.5056
    "recovery_factor": D("0.68"),  # 94.55 / 140.00 = 0.6754
    "balance_drawdown_absolute": D("679.75"),
    "balance_drawdown_maximal": D("140.00"),
    "balance_drawdown_maximal_percent": D("1.40"),  # 140.00 / 10032.60
    "balance_drawdown_relative_percent": D("1.44"),  # 135.80 / 9456.05
    "balance_drawdown_relative": D("135.80"),
    "total_trades": 9,
    "short_trades": 4,
    "short_won_percent": D("50.00"),
    "long_trades": 5,
    "long_won_percent": D("60.00"),
    "profit_trades": 5,
    "profit_trades_percent": D("55.56"),
    "loss_trades": 3,
    "loss_trades_percent": D("33.33"),
    "largest_profit_trade": D("247.00"),
    "largest_loss_trade": D("-140.00"),
    "average_profit_trade": D("76.21"),  # 381.05 / 5
    "average_loss_trade": D("-86.43"),  # -259.30 / 3 = -86.4333
    "max_consecutive_wins": 2,
    "max_consecutive_wins_money": D("32.00"),
    "max_consecutive_losses": 2,
    "max_consecutive_losses_money": D("-119.30"),
    "maximal_consecutive_profit": D("247.00"),
    "maximal_consecutive_profit_count": 1,
    "maximal_consecutive_loss": D("-140.00"),
    "maximal_consecutive_loss_count": 1,
    "average_consecutive_wins": D("1.25"),  # 5 wins in 4 runs
    "average_consecutive_losses": D("1.50"),  # 3 losses in 2 runs
}

# Our per-position convention over the same deals: positions 101-106 closed at their whole net
# (98.55, -142.50, -92.80, -37.00, 246.00, -0.50), 107 and 108 still open.
EXPECTED_POSITIONS = {
    "trades": 6,
    "open_positions": 2,
    "total_net_profit": D("71.75"),
    "gross_profit": D("344.55"),
    "gross_loss": D("-272.80"),
    "profit_factor": D("1.26"),  # 344.55 / 272.80 = 1.2630
    "expected_payoff": D("11.96"),  # 71.75 / 6 = 11.958
}


def deals(account: str = ACCOUNT) -> list[DealRecord]:
    """The history as the store's deal records (tickets 9001..., orders = position ids, as MT5 does)."""
    records = []
    for n, (when, kind, entry, position, symbol, volume, price, profit, commission, swap, comment) in enumerate(
        HISTORY
    ):
        records.append(
            DealRecord(
                account=account,
                ticket=9001 + n,
                order_ticket=position if entry == IN and position else (7001 + n if position else 0),
                position_id=position,
                symbol=symbol,
                type=kind,
                entry=entry,
                volume=D(volume),
                price=D(price),
                profit=D(profit),
                commission=D(commission),
                swap=D(swap),
                magic=0,
                comment=comment,
                reason=0,
                time=datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=UTC),
            )
        )
    return records
