"""MT5_MODE=native, run for real: the bot imports `MetaTrader5` and trades through it.

Here `MetaTrader5` is the stand-in with the real package's calling conventions
(mt5bridge.sim.mt5module, attached to a simulated terminal), put in sys.modules under the package's
name. On Linux the configuration check refuses native mode (confcheck.native_terminal: Windows and
an importable package); the test gives that check the platform "win32" and nothing else - the
package must still be importable, and users get the unchanged check.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from test_mt5_conformance import broker_profiles, make_terminal

import bot.gateway.clock
import confcheck
import mt5bridge.sim.mt5module as stand_in
from bot.app import BotApp
from bot.config import ConfigError, Settings

CYCLES = 400
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def native_settings(tmp_path, symbols: str) -> Settings:
    return Settings.from_env({"MT5_MODE": "native", "DATABASE_URL": f"sqlite:///{tmp_path}/native.db",
                              "SYMBOLS": symbols, "CYCLE_SECONDS": "30", "LOG_LEVEL": "WARNING",
                              "METRICS_PORT": "0"}, dotenv_path=None)


@pytest.fixture
def as_windows(monkeypatch):
    """The platform check answers as on Windows; the package check stays the real one."""
    real = confcheck.native_terminal
    monkeypatch.setattr(confcheck, "native_terminal", lambda platform=None: real("win32"))


def test_native_mode_is_refused_on_linux_and_without_the_package(tmp_path, monkeypatch, as_windows):
    monkeypatch.delitem(sys.modules, "MetaTrader5", raising=False)
    with pytest.raises(ConfigError) as missing:
        native_settings(tmp_path, "EURUSD")
    assert "MetaTrader5 package" in str(missing.value)
    monkeypatch.undo()
    if sys.platform != "win32":
        with pytest.raises(ConfigError) as linux:
            native_settings(tmp_path, "EURUSD")
        assert "needs Windows" in str(linux.value)


@pytest.mark.parametrize("profile", broker_profiles(), ids=lambda p: p or "default")
def test_a_native_mode_run_stores_orders_deals_and_trades(profile, tmp_path, monkeypatch, as_windows):
    terminal = make_terminal(profile)
    stand_in.attach(terminal)
    monkeypatch.setitem(sys.modules, "MetaTrader5", stand_in)
    # The real package has no sim clock hook: the machine's clock is read, and this simulated
    # terminal is stepped, so the machine's clock is the simulator's here.
    monkeypatch.setattr(bot.gateway.clock, "wall_time", lambda: terminal.now().timestamp())
    settings = native_settings(tmp_path, "EURUSD,USDJPY")
    app = BotApp(settings, sim=terminal, stepped=True)  # `sim` only paces the stepped clock
    assert app.gateway.name == "native"
    app.run(cycles=CYCLES, serve=False)
    app = BotApp(settings, sim=terminal, stepped=True)  # reopen the store (run() closed it)
    try:
        with app.database.engine.connect() as conn:
            orders = Counter(r.status for r in conn.execute(text("select status from orders")))
            deals = conn.execute(text("select count(*) from deals")).scalar()
            trades = conn.execute(text("select count(*) from trades")).scalar()
        assert terminal.initialize()  # the run shut its terminal session down on exit
        broker_deals = [d for d in terminal.history_deals_get(EPOCH, FAR) if d.symbol]
        assert orders["filled"] > 0 and orders["pending"] == 0
        assert deals == len(broker_deals) > 0
        assert trades > 0
    finally:
        app.close()
