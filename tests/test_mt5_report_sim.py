"""MT5-convention figures and the report round trip on a history made by the simulated terminal.

The simulator charges commission on every deal (entry and exit) and keeps its own balance;
the history here has partial exits, several symbols, a deposit and a position still open.
The independent checks: total net profit equals the simulator's own balance change, and the
gross loss holds every entry commission.  Then the history is written as the terminal's
report (HTML and xlsx), imported back unchanged, and verified.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from db import DealRecord
from db.mt5report import mt5_figures
from mt5bridge import constants as mt5
from mt5bridge.sim.terminal import SimTerminal
from tests.mt5_report_writer import money, report_rows, write_html, write_xlsx
from tests.test_mt5_report_import import run, stored

LOGIN = 5001234
DEPOSIT = D("10000.00")


def _cents(value: float) -> D:
    return D(repr(value)).quantize(D("0.01"))


def simulated_history() -> tuple[list[DealRecord], D]:
    """(deals with the opening deposit first, the simulator's final balance)."""
    sim = SimTerminal(seed=11, stepped=True, login=LOGIN, balance=int(DEPOSIT),
                      start=datetime(2025, 3, 3, 8, tzinfo=UTC))
    assert sim.initialize()
    start = sim.now()

    def send(symbol: str, side: int, volume: float, position: int | None = None) -> None:
        tick = sim.symbol_info_tick(symbol)
        request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "type": side,
                   "price": tick.ask if side == mt5.ORDER_TYPE_BUY else tick.bid, "deviation": 100, "magic": 7,
                   "type_filling": mt5.ORDER_FILLING_IOC}
        if position is not None:
            request["position"] = position
        result = sim.order_send(request)
        assert result is not None and result.retcode == mt5.TRADE_RETCODE_DONE, (result, sim.last_error())
        sim.advance(1800)

    def ticket(symbol: str) -> int:
        return max(p.ticket for p in sim.positions_get(symbol=symbol))

    plan = [("EURUSD", mt5.ORDER_TYPE_BUY, (0.4, 0.6)), ("XAUUSD", mt5.ORDER_TYPE_SELL, (0.3,)),
            ("EURUSD", mt5.ORDER_TYPE_SELL, (0.5, 0.3, 0.2)), ("XAUUSD", mt5.ORDER_TYPE_BUY, (0.1, 0.2))]
    for symbol, side, exits in plan:
        send(symbol, side, round(sum(exits), 2))
        position = ticket(symbol)
        for volume in exits:
            sim.advance(3 * 3600)
            send(symbol, 1 - side, volume, position)
    send("EURUSD", mt5.ORDER_TYPE_BUY, 0.7)  # left open: its entry commission is part of the balance
    deals = [DealRecord(account=str(LOGIN), ticket=1, order_ticket=0, position_id=0, symbol="", type=2, entry=0,
                        volume=D(0), price=D(0), profit=DEPOSIT, commission=D(0), swap=D(0), magic=0,
                        comment="Deposit", reason=0, time=start - timedelta(hours=1))]
    for deal in sim.history_deals_get(start - timedelta(days=1), sim.now() + timedelta(days=1)):
        deals.append(DealRecord(
            account=str(LOGIN), ticket=deal.ticket, order_ticket=deal.order, position_id=deal.position_id,
            symbol=deal.symbol, type=deal.type, entry=deal.entry, volume=D(repr(deal.volume)),
            price=D(repr(deal.price)), profit=_cents(deal.profit), commission=_cents(deal.commission),
            swap=_cents(deal.swap), magic=0, comment=deal.comment, reason=0,
            time=datetime.fromtimestamp(deal.time, UTC)))
    balance = _cents(sim.account_info().balance)
    sim.shutdown()
    return deals, balance


@pytest.fixture(scope="module")
def history():
    return simulated_history()


def test_mt5_net_profit_is_the_simulators_balance_change(history):
    deals, balance = history
    figures = mt5_figures(deals)
    exits = [d for d in deals if d.type in (0, 1) and d.entry != 0]
    entries = [d for d in deals if d.type in (0, 1) and d.entry == 0]
    assert len(exits) == 8 and len(entries) == 5, "partial exits are trades of their own"
    assert figures.total_net_profit == balance - DEPOSIT == figures.balance - DEPOSIT
    assert figures.total_trades == len(exits)
    assert figures.gross_profit + figures.gross_loss == figures.total_net_profit
    results = [d.profit + d.commission + d.swap for d in exits]
    assert figures.gross_loss - sum(r for r in results if r < 0) == sum(d.commission + d.swap for d in entries)
    assert all(d.commission < 0 for d in deals if d.type in (0, 1)), "commission on entry and on exit"
    assert figures.short_trades == sum(1 for d in exits if d.type == 0)


def _printed(figures) -> list[str]:
    f = figures
    pf = "0.00" if f.profit_factor is None else str(f.profit_factor)
    rf = "0.00" if f.recovery_factor is None else str(f.recovery_factor)
    return [money(f.total_net_profit), money(f.gross_profit), money(f.gross_loss), pf, money(f.expected_payoff), rf,
            "0.00", money(f.balance_drawdown_absolute),
            f"{money(f.balance_drawdown_maximal)} ({f.balance_drawdown_maximal_percent}%)",
            f"{f.balance_drawdown_relative_percent}% ({money(f.balance_drawdown_relative)})", str(f.total_trades),
            f"{f.short_trades} ({f.short_won_percent}%)", f"{f.long_trades} ({f.long_won_percent}%)",
            f"{f.profit_trades} ({f.profit_trades_percent}%)", f"{f.loss_trades} ({f.loss_trades_percent}%)",
            money(f.largest_profit_trade), money(f.largest_loss_trade), money(f.average_profit_trade),
            money(f.average_loss_trade), f"{f.max_consecutive_wins} ({money(f.max_consecutive_wins_money)})",
            f"{f.max_consecutive_losses} ({money(f.max_consecutive_losses_money)})",
            f"{money(f.maximal_consecutive_profit)} ({f.maximal_consecutive_profit_count})",
            f"{money(f.maximal_consecutive_loss)} ({f.maximal_consecutive_loss_count})",
            str(f.average_consecutive_wins), str(f.average_consecutive_losses)]


@pytest.mark.parametrize("language, fmt", [("en", "xlsx"), ("ru", "html")])
def test_the_simulators_history_round_trips_through_a_report(tmp_path, history, capsys, language, fmt):
    deals, _ = history
    rows = report_rows(deals, _printed(mt5_figures(deals)), language, login=str(LOGIN))
    path = (write_html if fmt == "html" else write_xlsx)(tmp_path / f"sim.{fmt}", rows)
    url = f"sqlite:///{tmp_path}/store.db"
    assert run(url, "import-mt5-report", str(path)) == 0
    assert stored(url, str(LOGIN)) == sorted(deals, key=lambda d: d.ticket)
    assert run(url, "verify-report", str(path)) == 0
    assert "24/24 report figures equal ours" in capsys.readouterr().out
