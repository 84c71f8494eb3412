"""Watch-only accounts (TRADING=off): everything recorded, nothing ever sent; on every shipped broker
profile (its symbol names, filling, margin mode). The issue's figure, 0 orders over 10 000 cycles,
is the sum over the profiles: CYCLES each."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sim_profile_helpers import broker_name, is_netting, market_deal, shipped_profiles

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

PROFILES = shipped_profiles()
CYCLES = 10_000 // len(PROFILES)
EVERY = CYCLES // 10  # a manual or EA position opened and closed ten times per run
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _settings(tmp_path, symbol="EURUSD", **extra) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/watch.db", "SYMBOLS": symbol, "TIMEFRAME": "M1",
           "LOG_LEVEL": "WARNING", "METRICS_PORT": "0", "TRADING": "off", "HISTORY_IMPORT": "off", **extra}
    return Settings.from_env(env, dotenv_path=None)


def _manual(sim, symbol, side, magic=0, position=None, volume=0.1):
    result = market_deal(sim, symbol, side, volume, magic=magic, position=position)
    return result.order if result.retcode == mt5.TRADE_RETCODE_DONE else None


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


@pytest.mark.parametrize("profile", PROFILES)
def test_the_gateway_refuses_orders_of_a_watch_only_account(tmp_path, profile):
    symbol = broker_name(profile, "EURUSD")
    sim = SimTerminal(seed=2, stepped=True, profile=profile)
    gateway = make_gateway(_settings(tmp_path, symbol), sim)
    gateway.connect()
    seen = []
    gateway.set_observer(lambda call, seconds, error: seen.append((call, error.kind if error else None)))
    quote = gateway.quote(symbol)
    with pytest.raises(WatchOnlyRefused, match="watch-only"):
        gateway.order_send(OrderRequest(symbol, "BUY", Decimal("0.10"), quote.ask, None, None, 20, 7, "tw-x"))
    assert ("order_send", "watch_only") in seen  # tradewatch_broker_errors_total{kind="watch_only"}
    assert sim.history_orders_get(EPOCH, FAR) == ()  # nothing reached the terminal


@pytest.mark.parametrize("profile", PROFILES)
def test_10000_cycles_send_no_order_and_record_manual_trades(tmp_path, profile):
    symbol = broker_name(profile, "EURUSD")
    settings = _settings(tmp_path, symbol, STRATEGIES="ma_crossover,rsi_reversion")
    sim = SimTerminal(seed=4, stepped=True, profile=profile)
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
        # (closed before the next opens: on a netting account two opens on one symbol would net into one)
        if cycle % EVERY == EVERY // 10 and not sim.positions_get(symbol=symbol):
            ticket = _manual(sim, symbol, "BUY", magic=0 if cycle % (2 * EVERY) == EVERY // 10 else 4242)
            if ticket:
                opened.append(ticket)
        if cycle % EVERY == EVERY // 2 and opened and opened[-1] in {p.ticket for p in sim.positions_get()}:
            _manual(sim, symbol, "SELL", magic=0, position=opened[-1])
        if cycle == CYCLES // 2:
            sim.deposit(1000)
        failed += not engine.run_cycle().ok
    seconds = time.perf_counter() - began
    print(f"\nFIGURE watch-only ({profile}): {CYCLES} cycles in {seconds:.1f} s, orders sent {sends.calls}, "  # noqa: T201
          f"manual/EA positions {len(opened)}")  # the figure
    assert sends.calls == 0
    assert asked == []  # no strategy was asked
    bot_orders = [o for o in sim.history_orders_get(EPOCH, FAR) if o.magic == settings.magic]
    assert bot_orders == []
    assert len(opened) >= 7
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


@pytest.mark.parametrize("profile", PROFILES)
def test_a_watch_only_investor_login_passes_preflight_and_learns_the_margin_mode(tmp_path, profile):
    """An observer often logs in with the investor password, AutoTrading off: that is no failure for it
    (no BrokerPreflightFailed), but the netting attribution still needs the margin mode."""
    settings = _settings(tmp_path, broker_name(profile, "EURUSD"))
    sim = SimTerminal(seed=5, stepped=True, profile=profile)
    sim.set_trading_state(account_trading=False, algo_trading=False)
    gateway = make_gateway(settings, sim)
    database = init_db(settings.database_url)
    engine = Engine(settings, gateway, Repository(database), load_strategies(settings.strategies))
    for _ in range(3):
        sim.advance(30)
        assert engine.run_cycle().ok
    assert engine.preflight.ok, engine.preflight.as_status()
    assert set(engine.preflight.as_status()) == set(WATCH_CHECKS)
    netting = is_netting(profile)
    assert engine.preflight.margin_mode == ("netting" if netting else "hedging")
    assert engine.attribution.netting == netting
    trading_settings = _settings(tmp_path, broker_name(profile, "EURUSD"), TRADING="on", DATABASE_URL=f"sqlite:///{tmp_path}/trading.db")
    trading = Engine(trading_settings, make_gateway(trading_settings, sim),
                     Repository(init_db(trading_settings.database_url)), [])
    sim.advance(30)
    trading.run_cycle()
    assert not trading.preflight.ok  # the same login would halt a trading bot: the checks differ by mode
    database.dispose()
