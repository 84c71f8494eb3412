"""The bot raises and resolves its own alerts in a real Alertmanager (Debian's binary)."""

from __future__ import annotations

import time

from test_telemetry_alerts import active_alerts, alertmanager, wait_for  # noqa: F401 - fixture

from bot.app import BotApp
from bot.config import Settings
from mt5bridge.sim import SimTerminal


def _cycles(app, n, pause=0.0):
    for _ in range(n):
        app.engine.run_cycle()
        app.pacer.wait()
        time.sleep(pause)


def test_terminal_unreachable_and_cycle_error_alerts(alertmanager, tmp_path):  # noqa: F811
    settings = Settings.from_env(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/a.db", "ALERTMANAGER_URL": alertmanager,
         "TERMINAL_ALERT_SECONDS": "1", "LOG_LEVEL": "WARNING", "RECONNECT_MAX_SECONDS": "1"},
        dotenv_path=None,
    )
    sim = SimTerminal(seed=8, stepped=True)
    app = BotApp(settings, sim=sim, stepped=True)
    try:
        app.connect()
        app.start_telemetry(serve=False)
        _cycles(app, 3)
        assert not active_alerts(alertmanager, "BotTerminalUnreachable")

        sim.fault_disconnect(3600)
        _cycles(app, 8, pause=0.2)  # > TERMINAL_ALERT_SECONDS of wall time without the terminal
        firing = wait_for(lambda: active_alerts(alertmanager, "BotTerminalUnreachable"), timeout=10)
        assert firing and firing[0]["labels"]["account"] == app.account
        assert firing[0]["labels"]["severity"] == "critical"

        sim.advance(3700)
        deadline = time.monotonic() + 20
        while not app.gateway.connected and time.monotonic() < deadline:
            _cycles(app, 1, pause=0.2)
        _cycles(app, 2)
        assert wait_for(lambda: not active_alerts(alertmanager, "BotTerminalUnreachable"), timeout=10)

        # A bug in the cycle itself (a strategy's own exception disables only that strategy, see
        # tests/test_strategy_plugins.py): here sizing raises.
        original = app.engine._sizing_account
        app.engine._sizing_account = lambda: (_ for _ in ()).throw(RuntimeError("cycle bug"))
        _cycles(app, 1)
        cycle_alert = wait_for(lambda: active_alerts(alertmanager, "BotCycleError"), timeout=10)
        assert cycle_alert and "cycle bug" in cycle_alert[0]["annotations"]["description"]
        app.engine._sizing_account = original
        _cycles(app, 2)
        assert wait_for(lambda: not active_alerts(alertmanager, "BotCycleError"), timeout=10)
    finally:
        app.close()
