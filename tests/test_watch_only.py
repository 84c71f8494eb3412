"""Watch-only accounts (TRADING=off): everything recorded, nothing ever sent."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.config import ConfigError, Settings
from bot.engine import Engine
from bot.engine.preflight import WATCH_CHECKS
from bot.engine.strategies import load_strategies
from bot.gateway import OrderRequest
from bot.gateway.errors import WatchOnlyRefused
from bot.gateway.factory import make_gateway
from db import Repository, init_db
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

CYCLES = 10_000
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _settings(tmp_path, **extra) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/watch.db", "SYMBOLS": "EURUSD", "TIMEFRAME": "M1",
           "LOG_LEVEL": "WARNING", "METRICS_PORT": "0", "TRADING": "off", "HISTORY_IMPORT": "off", **extra}
    return Settings.from_env(env, dotenv_path=None)


def _manual(sim, side, magic=0, position=None, volume=0.1):
    tick = sim.symbol_info_tick("EURUSD")
    request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume,
               "type": mt5.ORDER_TYPE_BUY if side == "BUY" else mt5.ORDER_TYPE_SELL,
               "price": tick.ask if side == "BUY" else tick.bid, "deviation": 50, "magic": magic,
               "type_filling": mt5.ORDER_FILLING_IOC, "type_time": mt5.ORDER_TIME_GTC}
    if position is not None:
        request["position"] = position
    result = sim.order_send(request)
    return result.order if result is not None and result.retcode == mt5.TRADE_RETCODE_DONE else None


class SendCounter:
    def __init__(self, gateway):
        self.calls = 0
        self._send = gateway.order_send
        gateway.order_send = self

    def __call__(self, request):
        self.calls += 1
        return self._send(request)


def test_trading_setting_is_validated(tmp_path):
    assert _settings(tmp_path).trading is False
    assert _settings(tmp_path, TRADING="on").trading is True
    with pytest.raises(ConfigError, match="TRADING"):
        _settings(tmp_path, TRADING="sometimes")


def test_the_gateway_refuses_orders_of_a_watch_only_account(tmp_path):
    sim = SimTerminal(seed=2, stepped=True)
    gateway = make_gateway(_settings(tmp_path), sim)
    gateway.connect()
    seen = []
    gateway.set_observer(lambda call, seconds, error: seen.append((call, error.kind if error else None)))
    quote = gateway.quote("EURUSD")
    with pytest.raises(WatchOnlyRefused, match="watch-only"):
        gateway.order_send(OrderRequest("EURUSD", "BUY", Decimal("0.10"), quote.ask, None, None, 20, 7, "tw-x"))
    assert ("order_send", "watch_only") in seen  # tradewatch_broker_errors_total{kind="watch_only"}
    assert sim.history_orders_get(EPOCH, FAR) == ()  # nothing reached the terminal


def test_10000_cycles_send_no_order_and_record_manual_trades(tmp_path):
    settings = _settings(tmp_path, STRATEGIES="ma_crossover,rsi_reversion")
    sim = SimTerminal(seed=4, stepped=True)
    gateway = make_gateway(settings, sim)
    database = init_db(settings.database_url)
    repo = Repository(database)
    engine = Engine(settings, gateway, repo, load_strategies(settings.strategies))
    sends = SendCounter(gateway)
    asked = []  # every strategy evaluation or bars read for one: none in watch-only
    evaluate, closed_bars = engine.runner.evaluate, engine.runner.closed_bars
    engine.runner.evaluate = lambda *a, **k: asked.append("evaluate") or evaluate(*a, **k)
    engine.runner.closed_bars = lambda *a, **k: asked.append("bars") or closed_bars(*a, **k)
    opened: list[int] = []
    began = time.perf_counter()
    failed = 0
    for cycle in range(CYCLES):
        sim.advance(30)
        if cycle % 1000 == 100:
            ticket = _manual(sim, "BUY", magic=0 if cycle % 2000 == 100 else 4242)
            if ticket:
                opened.append(ticket)
        if cycle % 1000 == 400 and opened and opened[-1] in {p.ticket for p in sim.positions_get()}:
            _manual(sim, "SELL", magic=0, position=opened[-1])
        if cycle == 5000:
            sim.deposit(1000)
        failed += not engine.run_cycle().ok
    seconds = time.perf_counter() - began
    print(f"\nFIGURE watch-only: {CYCLES} cycles in {seconds:.1f} s, orders sent {sends.calls}, "  # noqa: T201
          f"manual/EA positions {len(opened)}")  # the figure
    assert sends.calls == 0
    assert asked == []  # no strategy was asked
    bot_orders = [o for o in sim.history_orders_get(EPOCH, FAR) if o.magic == settings.magic]
    assert bot_orders == []
    assert len(opened) >= 8
    account = engine.account_id
    stored = {t.ticket: t for t in repo.open_trades(account)}
    with database.session() as session:
        from sqlalchemy import text

        trades = {r.ticket: r for r in session.execute(text(
            "select ticket, strategy_name, is_closed from trades where account = :a"), {"a": account})}
        deal_types = [r.type for r in session.execute(text("select type from deals where account = :a"),
                                                      {"a": account})]
    assert set(opened) <= set(trades), "every manual and EA position is recorded"
    assert {trades[t].strategy_name for t in opened} == {"manual", "ea:4242"}
    broker_open = {p.ticket for p in sim.positions_get()}
    assert {t for t in stored} == broker_open
    assert deal_types.count(mt5.DEAL_TYPE_BALANCE) == 1
    assert failed < CYCLES // 10  # the sim's weekend closes quotes; cycles go on
    database.dispose()


def test_a_watch_only_investor_login_passes_preflight_and_learns_the_margin_mode(tmp_path):
    """An observer often logs in with the investor password, AutoTrading off: that is no failure for it
    (no BrokerPreflightFailed), but the netting attribution still needs the margin mode."""
    settings = _settings(tmp_path)
    sim = SimTerminal(seed=5, stepped=True, profile="ecn-netting")
    sim.set_trading_state(account_trading=False, algo_trading=False)
    gateway = make_gateway(settings, sim)
    database = init_db(settings.database_url)
    engine = Engine(settings, gateway, Repository(database), load_strategies(settings.strategies))
    for _ in range(3):
        sim.advance(30)
        assert engine.run_cycle().ok
    assert engine.preflight.ok, engine.preflight.as_status()
    assert set(engine.preflight.as_status()) == set(WATCH_CHECKS)
    assert engine.preflight.margin_mode == "netting" and engine.attribution.netting
    trading_settings = _settings(tmp_path, TRADING="on", DATABASE_URL=f"sqlite:///{tmp_path}/trading.db")
    trading = Engine(trading_settings, make_gateway(trading_settings, sim),
                     Repository(init_db(trading_settings.database_url)), [])
    sim.advance(30)
    trading.run_cycle()
    assert not trading.preflight.ok  # the same login would halt a trading bot: the checks differ by mode
    database.dispose()
