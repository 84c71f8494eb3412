"""The whole bot on a strict broker: broker symbol names, Market Watch, server clock, -8, skipped orders.

On the default simulator the strict behaviours come from `strict_broker.StrictBroker` (suffixed
names, FOK-only Instant forex, gold outside Market Watch, server clock GMT+2); on every broker
profile, once they exist, the same run goes against the profile itself.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text
from strict_broker import StrictBroker
from test_mt5_conformance import broker_profiles, make_terminal

import mt5bridge.sim.mt5module as stand_in
from bot.app import BotApp
from bot.config import ConfigError, Settings
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def settings(tmp_path, **extra: str) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SYMBOLS": "EURUSD,XAUUSD", "CYCLE_SECONDS": "30",
           "LOG_LEVEL": "WARNING", "METRICS_PORT": "0", **extra}
    return Settings.from_env(env, dotenv_path=None)


@pytest.fixture
def strict_app(tmp_path, monkeypatch):
    """A BotApp whose in-process terminal is the default sim played as a strict broker."""
    real = stand_in.Mt5Module
    brokers: list[StrictBroker] = []

    def strict_module(terminal):
        if not brokers:
            brokers.append(StrictBroker(real(terminal)))
        return brokers[0]

    monkeypatch.setattr(stand_in, "Mt5Module", strict_module)

    def build(**extra):
        sim = SimTerminal(seed=11, stepped=True, **extra.pop("sim", {}))
        app = BotApp(settings(tmp_path, **extra), sim=sim, stepped=True)
        return app, sim, lambda: brokers[0]

    return build


def rows(app: BotApp, sql: str) -> list:
    with app.database.engine.connect() as conn:
        return list(conn.execute(text(sql)))


def as_utc(value) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_a_strict_broker_run_stores_broker_names_and_true_utc(strict_app):
    app, sim, broker = strict_app()
    started = sim.now()
    app.connect()
    app.start_telemetry(serve=False)
    for cycle in range(400):
        app.engine.run_cycle()
        if cycle == 200:  # the terminal restarts: Market Watch is forgotten, the session re-opened
            broker().selected.clear()
            sim.fault_disconnect(60)
        app.pacer.wait()
    try:
        assert app.engine.symbol_map == {"EURUSD": "EURUSD.m", "XAUUSD": "XAUUSD.m"}
        assert broker().select_calls.count("XAUUSD.m") >= 2, "selected at start and again after the reconnect"
        fillings = Counter(f for s, f in broker().fillings if s == "EURUSD.m")
        assert set(fillings) <= {mt5.ORDER_FILLING_FOK}
        orders = rows(app, "select symbol, status, retcode from orders")
        assert orders and {o.symbol for o in orders} <= {"EURUSD.m", "XAUUSD.m"}
        assert not [o for o in orders if o.retcode == mt5.TRADE_RETCODE_INVALID_FILL]
        assert Counter(o.status for o in orders)["filled"] > 0
        # Deals: the sim's own (UTC) times, although the broker reported them two hours ahead.
        truth = {d.ticket: datetime.fromtimestamp(d.time, UTC) for d in sim.history_deals_get(EPOCH, FAR) if d.symbol}
        stored = rows(app, "select ticket, symbol, time from deals")
        assert stored and {d.ticket for d in stored} == set(truth)
        for deal in stored:
            assert as_utc(deal.time) == truth[deal.ticket], deal.ticket
            assert deal.symbol.endswith(".m")
        for trade in rows(app, "select ticket, entry_time from trades"):
            assert started <= as_utc(trade.entry_time) <= sim.now()
        last = rows(app, "select max(time) as latest from account_snapshots")[0].latest
        assert abs((as_utc(last) - sim.now()).total_seconds()) <= 31  # the last cycle's, one step ago
        assert app.gateway.clock.offset == 7200
        clock = app.status()["broker_clock"]
        server_date = (sim.now() + timedelta(hours=2)).date()  # the broker day at the server's midnight
        assert clock == {"offset_seconds": 7200, "broker_day_starts_utc": "22:00", "broker_day": server_date.isoformat(),
                         "broker_day_start": (datetime.combine(server_date, time(), UTC) - timedelta(hours=2)).isoformat(),
                         "broker_day_label": f"broker day {server_date} (server GMT+2, starts "
                                             f"{datetime.combine(server_date, time()) - timedelta(hours=2):%Y-%m-%d} 22:00 UTC)"}
        # The store knows the offset too: its reports cut days where the bot does.
        assert [r.offset_seconds for r in rows(app, "select offset_seconds from broker_offsets")] == [7200]
    finally:
        app.close()


def test_api_trading_disabled_halts_orders_with_a_message_and_resumes(strict_app):
    """-8 with terminal_info() saying why (tradeapi_disabled): preflight's api_trading check halts every
    order with its sentence before any order_send; the gateway's own -8 halt is the next test's case."""
    app, sim, broker = strict_app()
    app.connect()
    app.start_telemetry(serve=False)
    broker().trading_disabled = True
    for _ in range(200):
        app.engine.run_cycle()
        if app.engine.preflight.results.get("api_trading"):
            break
        app.pacer.wait()
    reason = app.engine.preflight.results.get("api_trading")
    assert reason and "Python" in reason, reason
    ready, _details = app.readiness()
    assert not ready
    sends = len(broker().fillings)
    for _ in range(5):
        app.pacer.wait()
        app.engine.run_cycle()
    assert len(broker().fillings) == sends, "no order is sent while halted"
    statuses = {r.status for r in rows(app, "select status from orders")}
    assert "unknown" not in statuses
    broker().trading_disabled = False
    app.engine.preflight.recheck_now()
    app.pacer.wait()
    app.engine.run_cycle()
    assert app.engine.preflight.results.get("api_trading") is None and app.engine.preflight.ok
    app.close()


def test_an_unexplained_minus_8_is_not_retried_every_cycle(strict_app):
    """-8 while the terminal's switches all say yes: one try per HALT_RETRY, not one per cycle."""
    app, sim, broker = strict_app()
    app.connect()
    app.start_telemetry(serve=False)
    broker().trading_disabled, broker().explain_disabled = True, False
    for _ in range(200):
        app.engine.run_cycle()
        if app.engine.orders_halted_reason:
            break
        app.pacer.wait()
    assert app.engine.orders_halted_reason
    halted_at, sends = sim.now(), len(broker().fillings)
    while sim.now() - halted_at < app.engine.HALT_RETRY - timedelta(seconds=60):
        app.pacer.wait()
        app.engine.run_cycle()
        assert app.engine.orders_halted_reason, "resumed before HALT_RETRY although nothing changed"
    assert len(broker().fillings) == sends
    resumed = False
    for _ in range(4):
        app.pacer.wait()
        app.engine.run_cycle()
        resumed |= app.engine.orders_halted_reason is None or len(broker().fillings) > sends
    assert resumed, "tried again once HALT_RETRY passed"
    app.close()


def test_an_order_below_the_minimum_lot_is_skipped_counted_and_never_sent(strict_app):
    app, sim, broker = strict_app(sim={"balance": 20})
    app.connect()
    app.start_telemetry(serve=False)
    for _ in range(300):
        app.engine.run_cycle()
        app.pacer.wait()
    try:
        skipped = sum(app.metrics.registry.get_sample_value(
            "tradewatch_orders_skipped_total", {"account": app.account, "symbol": s, "reason": "volume_below_min"})
            or 0 for s in ("EURUSD.m", "XAUUSD.m"))
        assert skipped > 0
        assert not rows(app, "select * from orders where purpose = 'open'")
        assert not [f for f in broker().fillings], "nothing reached the broker"
    finally:
        app.close()


def test_an_ambiguous_symbol_stops_at_start_naming_the_candidates(strict_app):
    app, sim, broker = strict_app(SYMBOLS="EURUSD")
    app.gateway.connect()
    real_get = broker().module.symbols_get
    first = real_get()[0]
    broker().symbols_get = lambda *a, **k: tuple(broker()._symbol(s) for s in real_get()) + (
        type(first)(**dict(first._asdict(), name="EURUSD.pro")),)
    with pytest.raises(ConfigError) as ambiguous:
        app.engine.start()
    assert "EURUSD.m" in str(ambiguous.value) and "EURUSD.pro" in str(ambiguous.value)
    assert "\n" not in str(ambiguous.value)
    app.close()


def test_symbol_suffix_setting_picks_among_candidates(strict_app):
    app, sim, broker = strict_app(SYMBOLS="EURUSD", SYMBOL_SUFFIX=".m")
    app.gateway.connect()
    real_get = broker().module.symbols_get
    first = real_get()[0]
    broker().symbols_get = lambda *a, **k: tuple(broker()._symbol(s) for s in real_get()) + (
        type(first)(**dict(first._asdict(), name="EURUSD.pro")),)
    app.engine.start()
    assert app.engine.symbol_map == {"EURUSD": "EURUSD.m"}
    app.close()


@pytest.mark.parametrize("profile", broker_profiles(), ids=lambda p: p or "default")
def test_a_run_on_each_profile_refuses_no_order_the_bot_could_have_known(profile, tmp_path):
    """On each broker profile: names resolved, no 10030, every stored deal time = the broker's in UTC."""
    sim = make_terminal(profile)
    app = BotApp(settings(tmp_path, SYMBOLS="EURUSD,USDJPY"), sim=sim, stepped=True)
    try:
        app.connect()
        app.start_telemetry(serve=False)
        for _ in range(300):
            app.engine.run_cycle()
            app.pacer.wait()
        assert set(app.engine.symbol_map) == {"EURUSD", "USDJPY"}
        orders = rows(app, "select status, retcode from orders")
        assert not [o for o in orders if o.retcode == mt5.TRADE_RETCODE_INVALID_FILL]
        assert Counter(o.status for o in orders)["filled"] > 0
        offset = app.gateway.clock.offset
        assert offset is not None
        truth = {d.ticket: d.time - offset for d in sim.history_deals_get(EPOCH - timedelta(days=1), FAR) if d.symbol}
        stored = rows(app, "select ticket, time from deals")
        assert stored
        for deal in stored:
            assert as_utc(deal.time).timestamp() == truth[deal.ticket]
    finally:
        app.close()
