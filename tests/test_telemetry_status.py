"""/status of the bot shows what /metrics already shows Prometheus, and never a secret; the
telemetry server binds 127.0.0.1 unless told otherwise (compose: METRICS_HOST=0.0.0.0)."""

from __future__ import annotations

import json
import urllib.request

from bot.app import BotApp
from bot.config import Settings
from mt5bridge.sim import SimTerminal

SECRETS = {"MT5_PASSWORD": "Pw-status-9f3k2-secret", "MT5_BRIDGE_TOKEN": "tok-status-77ab1c-secret"}
STATUS_KEYS = {"version", "uptime_seconds", "account", "mode", "symbols", "strategies", "cycles", "last_cycle",
               "open_positions", "equity", "process", "broker_symbols", "broker_clock", "preflight", "margin_mode",
               "risk_guard"}


STATUS_KEYS |= {"strategies_disabled"}  # issue 14: a strategy an exception disabled, and why


def test_status_shows_no_secret_and_nothing_beyond_its_documented_fields(tmp_path, monkeypatch):
    password_file = tmp_path / "db_password"
    password_file.write_text("db-file-secret-123\n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(password_file))
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "METRICS_PORT": "0",
                                  "SYMBOLS": "EURUSD", "LOG_LEVEL": "WARNING", **SECRETS}, dotenv_path=None)
    assert settings.metrics_host == "127.0.0.1"
    assert "db-file-secret-123" in settings.secrets()  # masked in every log line too
    app = BotApp(settings, sim=SimTerminal(seed=5, stepped=True), stepped=True)
    try:
        app.connect()
        app.start_telemetry(serve=True)
        for _ in range(30):
            app.engine.run_cycle()
            app.pacer.wait()
        assert app.server.host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{app.server.port}/status", timeout=5) as response:
            text = response.read().decode()
        status = json.loads(text)
        assert set(status) == STATUS_KEYS
        assert status["cycles"] >= 30 and status["account"]
        assert status["broker_symbols"] == {"EURUSD": "EURUSD"}
        clock = status["broker_clock"]
        assert {k: clock[k] for k in ("offset_seconds", "broker_day_starts_utc")} == {"offset_seconds": 0,
                                                                                      "broker_day_starts_utc": "00:00"}
        assert clock["broker_day_start"] == f"{clock['broker_day']}T00:00:00+00:00"
        assert clock["broker_day_label"].startswith(f"broker day {clock['broker_day']} (server GMT+0, starts ")
        for value in [*SECRETS.values(), "db-file-secret-123"]:
            assert value not in text
    finally:
        app.close()
