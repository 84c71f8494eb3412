"""The bot on every netting profile (ecn-netting today; selected by margin mode): trades equal the broker's positions history, a partial close
and a reversal (INOUT) forced through the simulator, and a forced stop-out recorded and counted.

The broker's side is computed here independently of bot.engine.trades_from_deals, from the
simulator's own deal history: per position identifier, a trade starts at the IN deal that opens
it and at every INOUT deal that flips the netted volume's sign.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sim_profile_helpers import broker_name, broker_positions_history, is_netting, market_deal, profiles_where
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from db.scoreboard import scoreboard
from mt5bridge import constants as mt5
from mt5bridge.plain import to_plain
from mt5bridge.sim import SimTerminal

EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
CENT = Decimal("0.01")


def _settings(tmp_path, symbols: str, **extra: str) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/netting.db", "SYMBOLS": symbols,
           "TIMEFRAME": "M1", "CYCLE_SECONDS": "30", "LOG_LEVEL": "WARNING", "METRICS_PORT": "0",
           "RISK_PER_TRADE": "0.1", **extra}  # 30:1 leverage: 1% risk per trade would not fit the margin
    return Settings.from_env(env, dotenv_path=None)


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture(params=profiles_where(is_netting))
def bot(tmp_path, request):
    captured = Captured()
    root = logging.getLogger()
    old = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    sim = SimTerminal(seed=21, stepped=True, profile=request.param)
    symbols = ",".join(broker_name(request.param, f) for f in ("EURUSD", "GBPUSD", "USDJPY"))
    app = BotApp(_settings(tmp_path, symbols), sim=sim, stepped=True)
    sim.other = broker_name(request.param, "EURGBP")  # a symbol of the broker's the bot does not trade
    app.connect()
    app.start_telemetry(serve=False)
    try:
        yield app, sim, captured
    finally:
        app.close()
        root.removeHandler(captured)
        root.setLevel(old)


def _send(sim, magic, symbol, side, volume, position=None):
    result = market_deal(sim, symbol, side, volume, magic=magic, position=position, comment="forced by test")
    assert result.retcode == mt5.TRADE_RETCODE_DONE, result
    return result


def _position(sim, symbol):
    (position,) = sim.positions_get(symbol=symbol)
    return position


def _broker_history(sim, magic):
    """Per position identifier: (trades, volume in, net profit), the reversals, and the deals themselves."""
    history, reversals = broker_positions_history(sim, magic)
    deals = sorted(to_plain(sim.history_deals_get(EPOCH, FAR)), key=lambda d: (d["time_msc"], d["ticket"]))
    return history, reversals, deals


def _stored_trades(app) -> list:
    with app.database.engine.connect() as conn:
        return list(conn.execute(text("SELECT ticket, volume, profit, is_closed, strategy_name FROM trades")))


def _cycles(app, n):
    for _ in range(n):
        report = app.engine.run_cycle()
        assert report.error is None, report.error
        app.pacer.wait()


def test_trades_equal_the_brokers_positions_history_with_partial_close_and_reversal(bot):
    app, sim, captured = bot
    magic, other = app.settings.magic, sim.other
    _cycles(app, 40)
    assert any("netting account: one position per symbol; ma_crossover trades every symbol" in m
               for m in captured.messages())
    _send(sim, magic, other, "BUY", 0.10)  # a position of ours the strategies do not own
    _cycles(app, 40)
    _send(sim, magic, other, "SELL", 0.04, position=_position(sim, other).ticket)  # partial close
    _cycles(app, 40)
    _send(sim, magic, other, "SELL", 0.16)  # no position=: nets to an INOUT reversal, SELL 0.10
    reversed_ = _position(sim, other)
    assert reversed_.type == mt5.POSITION_TYPE_SELL and reversed_.volume == pytest.approx(0.10)
    assert reversed_.ticket != reversed_.identifier  # the reversed position carries the INOUT order's ticket
    _cycles(app, 40)
    _send(sim, magic, other, "BUY", 0.10, position=reversed_.ticket)
    _cycles(app, 300)

    history, reversals, deals = _broker_history(sim, magic)
    open_ids = {p.identifier for p in sim.positions_get()}
    closed = {pid: h for pid, h in history.items() if pid not in open_ids}
    assert any(d["entry"] == mt5.DEAL_ENTRY_INOUT for d in deals)
    assert len(closed) >= 4, "the run closed too few positions to compare"

    stored: dict[int, dict] = defaultdict(lambda: {"count": 0, "volume": Decimal(0), "net": Decimal(0)})
    for ticket, volume, profit, is_closed, _ in _stored_trades(app):
        position_id = reversals.get(ticket, ticket)
        if position_id in closed:
            assert is_closed, f"trade {ticket} of closed position {position_id} still open in the store"
            s = stored[position_id]
            s["count"] += 1
            s["volume"] += Decimal(str(volume))
            s["net"] += Decimal(str(profit))
    for position_id, h in closed.items():
        s = stored[position_id]
        assert (s["count"], s["volume"], s["net"].quantize(CENT)) == (h["count"], h["volume"], h["net"].quantize(CENT)), \
            f"position {position_id}: store {s} vs broker {h}"
    assert history[reversals[reversed_.ticket]]["count"] == 2  # the reversal is two trades

    with app.database.engine.connect() as conn:
        strategies = {r[0] for r in conn.execute(text("SELECT DISTINCT strategy FROM orders"))}
        closes = conn.execute(text("SELECT count(*) FROM orders WHERE purpose = 'close' AND status = 'filled'")).scalar()
        other_signals = conn.execute(text("SELECT count(*) FROM signals WHERE strategy = 'rsi_reversion'")).scalar()
    assert strategies == {"ma_crossover"}  # one strategy per symbol on a netting account
    assert other_signals > 0  # the other strategy still evaluates and records its signals
    assert closes > 0  # closes with position= on a netting account are accepted by the netting rules


def test_stop_out_is_recorded_counted_and_named(bot):
    app, sim, captured = bot
    magic, other = app.settings.magic, sim.other
    _cycles(app, 3)
    per_lot = sim.order_calc_margin(mt5.ORDER_TYPE_BUY, other, 1.0, sim.symbol_info_tick(other).ask)
    step = sim.symbol_info(other).volume_step
    lots = round(round(sim.account_info().equity / 1.1 / per_lot / step) * step, 8)  # a margin level of ~110 %
    _send(sim, magic, other, "BUY", lots)
    _cycles(app, 2)
    bid = sim.symbol_info_tick(other).bid
    sim.set_price(other, round(bid - 0.0300, 5))
    _cycles(app, 2)

    so_deals = [d for d in to_plain(sim.history_deals_get(EPOCH, FAR)) if d["reason"] == mt5.DEAL_REASON_SO]
    assert so_deals, "the forced price drop did not stop the account out"
    counted = app.safety.stop_outs
    for symbol in {d["symbol"] for d in so_deals}:
        assert counted.labels(app.account, symbol)._value.get() == sum(1 for d in so_deals if d["symbol"] == symbol)
    with app.database.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM deals WHERE reason = :so"), {"so": mt5.DEAL_REASON_SO}).scalar()
    assert stored == len(so_deals)
    # The stopped-out trades carry the reason, and the exporter's scoreboard counts them per account.
    with app.database.engine.connect() as conn:
        reasons = dict(conn.execute(text("SELECT ticket, close_reason FROM trades WHERE is_closed")).all())
    stopped = {d["position_id"] for d in so_deals}
    assert stopped and all(reasons[p] == "stop_out" for p in stopped)
    (board,) = [b for b in scoreboard(app.database, datetime.now(UTC)) if b.account == app.account]
    assert board.stop_outs == sum(1 for r in reasons.values() if r == "stop_out") == len(stopped)
    closed_lines = [r for r in captured.records if r.getMessage() == "trade closed (stop_out)"]
    assert closed_lines and all(r.levelno == logging.WARNING and r.close_reason == "stop_out" for r in closed_lines)
    assert sum(1 for m in captured.messages() if m.startswith("stop-out: the broker closed")) == len(so_deals)
    _cycles(app, 2)  # said once: later cycles add nothing
    assert sum(1 for m in captured.messages() if m.startswith("stop-out: the broker closed")) == len(so_deals)
