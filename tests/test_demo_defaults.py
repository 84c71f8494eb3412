"""The honest demo's defaults: SIM_START, LOG_FORMAT, `report daily` without --date."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import BotApp
from bot.config import ConfigError, Settings
from bot.gateway.factory import make_sim
from bot.telemetry.logging import setup_logging
from mt5bridge.sim.tradingtime import DEFAULT_START

ROOT = Path(__file__).resolve().parents[1]


def _settings(**env: str) -> Settings:
    return Settings.from_env({"METRICS_PORT": "0", "LOG_LEVEL": "WARNING", **env}, dotenv_path=None)


def test_sim_start_fixed_by_default_now_or_given():
    assert make_sim(_settings(), stepped=True).now() == DEFAULT_START  # what every test relies on: no date dependence
    wall = datetime.now(UTC)
    started = make_sim(_settings(SIM_START="now"), stepped=True).now()
    assert abs((started - wall).total_seconds()) < 60
    assert make_sim(_settings(SIM_START="2026-03-02T09:30"), stepped=True).now() == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"^SIM_START: must be now, an ISO date or time \(UTC\), or empty, got 'soon'$"):
        _settings(SIM_START="soon")


def _log_with(log_format: str, stream, secret: str = "hunter2-secret") -> str:
    setup_logging("INFO", service="bot", env="test", secrets=[secret], stream=stream, log_format=log_format)
    try:
        logging.getLogger("bot.engine").info("cycle 1 ok with %s", secret, extra={"symbol": "EURUSD", "cycle": 1})
    finally:
        setup_logging("INFO", stream=io.StringIO())
    return stream.getvalue()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_format_auto_is_json_off_a_terminal_and_console_on_one():
    line = json.loads(_log_with("auto", io.StringIO()))
    assert line["message"] == "cycle 1 ok with ***" and line["symbol"] == "EURUSD"
    console = _log_with("auto", _Tty())
    assert not console.startswith("{") and console.count("\n") == 1
    assert "INFO" in console and "\033[" in console  # coloured on a terminal
    assert "bot.engine" in console and "cycle 1 ok with ***" in console and "symbol=EURUSD cycle=1" in console
    assert "hunter2-secret" not in console
    plain = _log_with("console", io.StringIO())  # forced console into a file: no colour codes
    assert "\033[" not in plain and "symbol=EURUSD" in plain


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", "report", "daily", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def _rows(tmp_path: Path) -> list[tuple]:
    from db import Database

    database = Database(f"sqlite:///{tmp_path}/r.db")
    try:
        with database.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text("SELECT date, trades FROM daily_performance")).all()]
    finally:
        database.dispose()


def test_report_daily_defaults_to_the_last_day_with_data_and_invents_no_row(tmp_path):
    empty = _cli(tmp_path)
    assert empty.returncode == 1 and empty.stderr.startswith("no deals or account snapshots stored for account")
    assert _rows(tmp_path) == []
    settings = _settings(DATABASE_URL=f"sqlite:///{tmp_path}/r.db", CYCLE_SECONDS="60")
    app = BotApp(settings, stepped=True)  # the fixed start: Monday 2026-01-05, not today's wall date
    app.run(cycles=90, serve=False)
    report = _cli(tmp_path)
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].split() == ["date", "2026-01-05"]
    assert [r[0] for r in _rows(tmp_path)] in (["2026-01-05"], [date(2026, 1, 5)])
    nothing = _cli(tmp_path, "--date", "2030-01-01")
    assert nothing.returncode == 0 and "nothing stored" in nothing.stdout
    assert len(_rows(tmp_path)) == 1  # the empty day was shown, not stored
