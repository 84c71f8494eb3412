"""Operator control (bot/control/): ctl commands against a running, stepped bot.

The whole bot runs on the simulated terminal with a stepped clock; the commands are sent over
HTTP to its control endpoint from between two cycles (the pacer's step), as an operator's shell
would send them while the loop waits.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from bot.control.client import send
from bot.control.token import TokenFileError, ensure_token, matches, read_token
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parents[1]
PAUSE_AT, RESUME_AT, CYCLES = 400, 460, 700


def test_the_token_file_is_made_once_with_0600(tmp_path):
    path = tmp_path / "sub" / "control_token"
    token = ensure_token(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(str(path)) == token == read_token(str(path))  # never overwritten
    assert len(token) >= 32
    assert matches(token, token) and not matches(token, token[:-1] + "x") and not matches(token, None)
    path.chmod(0o644)
    with pytest.raises(TokenFileError, match="readable by other users"):
        read_token(str(path))


def _env(tmp_path, **extra) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/run.db", "LOG_LEVEL": "WARNING", "METRICS_PORT": "0",
            "CONTROL_PORT": "0", "CONTROL_TOKEN_FILE": str(tmp_path / "control_token"),
            # losses must not halt entries here: the pause alone is under test
            "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100", **extra}


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Operator:
    """Between cycles: pause at PAUSE_AT, look, close-all, reload, resume at RESUME_AT."""

    def __init__(self, app: BotApp, monkeypatch, env: dict[str, str]):
        self.app, self.monkeypatch, self.env = app, monkeypatch, env
        self.step = 0
        self.original_wait = app.pacer.wait
        self.opens: list[int] = []  # the cycle of every new entry submitted to the order flow
        self.seen: dict[str, object] = {}

    def watch_opens(self) -> None:
        flow = self.app.engine.flow
        submit = flow.submit

        def recording(order, *args, **kwargs):
            if order.purpose == "open":
                self.opens.append(self.app.engine.cycles)
            return submit(order, *args, **kwargs)

        flow.submit = recording

    def ctl(self, action: str, token: str | None = None, **options):
        url = f"http://127.0.0.1:{self.app.control.port}"
        return send(url, token or read_token(self.env["CONTROL_TOKEN_FILE"]), action, options)

    def wait(self) -> None:
        self.step += 1
        if self.step == 1:
            self.watch_opens()
        if self.step == PAUSE_AT:
            self.seen["paused_after_cycle"] = self.app.engine.cycles
            self.seen["pause"] = self.ctl("pause")
            metrics = _get(f"http://127.0.0.1:{self.app.server.port}/metrics")[1].decode()
            self.seen["metrics"] = metrics
            self.seen["readyz"] = json.loads(_get(f"http://127.0.0.1:{self.app.server.port}/readyz")[1])
            self.seen["status"] = self.ctl("status")
            self.seen["bad_token"] = self.ctl("status", token="not-the-token-at-all-0000")
        if PAUSE_AT < self.step < RESUME_AT and "close" not in self.seen and self.app.engine._our_positions():
            self.seen["positions_before_close"] = len(self.app.engine._our_positions())
            self.seen["close"] = self.ctl("close-all")
            self.seen["positions_after_close"] = len(self.app.engine._our_positions())
            self.seen["close_bad_symbol"] = self.ctl("close-all", symbol="NOPE")
        if self.step == RESUME_AT - 5:
            self.monkeypatch.setenv("STRATEGIES", "no_such_strategy")
            self.seen["reload_bad"] = self.ctl("reload-strategies")
            for name, value in self.env.items():
                self.monkeypatch.setenv(name, value)
            self.monkeypatch.setenv("STRATEGIES", "ma_crossover")
            self.seen["reload"] = self.ctl("reload-strategies")
        if self.step == RESUME_AT:
            self.seen["resumed_after_cycle"] = self.app.engine.cycles
            self.seen["resume"] = self.ctl("resume")
        self.original_wait()


@pytest.fixture
def operated_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the reload reads Settings from the environment (and a .env here: none)
    env = _env(tmp_path)
    settings = Settings.from_env(env, dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=7, stepped=True), stepped=True)
    operator = Operator(app, monkeypatch, env)
    app.pacer.wait = operator.wait
    assert app.run(cycles=CYCLES) == 0
    return app, operator, settings


def test_pause_close_all_reload_and_resume(operated_run, capsys):
    app, operator, settings = operated_run
    seen = operator.seen
    paused_after = seen["paused_after_cycle"]
    assert seen["pause"][0] == 200 and seen["pause"][1]["paused"] is True
    before = [c for c in operator.opens if c <= paused_after]
    assert len(before) >= 5, "entries were being made before the pause"
    during = [c for c in operator.opens if paused_after < c <= seen["resumed_after_cycle"]]
    assert during == [], f"new entries after the pause: cycles {during}"
    first_quiet = paused_after + 1  # the first cycle after the pause made no entry (during == [])
    with capsys.disabled():
        sys.stdout.write(f"\nctl pause takes effect within {first_quiet - paused_after} cycle(s): sent after cycle "
                         f"{paused_after}, cycle {first_quiet} was the first with no new order, and none came "
                         f"until the resume {seen['resumed_after_cycle'] - paused_after} cycles later; "
                         f"{len(before)} entries before the pause\n")
    after = [c for c in operator.opens if c > seen["resumed_after_cycle"]]
    assert after, "entries start again after resume"

    # The pause is on /metrics, /readyz and /status while it lasts; a wrong token is refused.
    assert 'tradewatch_risk_halted{account="5001234",reason="operator_pause"} 1.0' in seen["metrics"]
    assert seen["readyz"]["checks"]["risk_guard"] == "halted: operator_pause"
    assert seen["status"][1]["risk_guard"]["paused"] is True
    assert seen["bad_token"][0] == 401
    assert 'tradewatch_operator_actions_total{account="5001234",action="pause",result="ok"} 1.0' in seen["metrics"]

    # close-all flattened the account through the order path (exits go on while paused).
    assert seen["positions_before_close"] > 0
    assert seen["close"][0] == 200 and seen["close"][1]["orders"].get("filled") == seen["positions_before_close"]
    assert seen["positions_after_close"] == 0
    assert seen["close_bad_symbol"][0] == 409

    # reload-strategies: a bad name is refused and changes nothing; a good one rebuilds the list.
    assert seen["reload_bad"][0] == 409 and "no_such_strategy" in seen["reload_bad"][1]["error"]
    assert seen["reload"][0] == 200 and seen["reload"][1]["after"] == ["ma_crossover"]
    assert [s.name for s in app.strategies] == ["ma_crossover"]

    database = BotApp(settings, sim=SimTerminal(seed=7, stepped=True), stepped=True).database
    try:
        with database.engine.connect() as conn:
            actions = list(conn.execute(text(
                "select actor, action, arguments, correlation_id, result, detail from operator_actions order by id")))
            closes = list(conn.execute(text(
                "select o.status from orders o where o.purpose = 'close' and o.correlation_id = :cid"),
                {"cid": seen["close"][1]["correlation_id"]}))
    finally:
        database.dispose()
    assert [(a.action, a.result) for a in actions] == [
        ("pause", "ok"), ("status", "ok"), ("close-all", "ok"), ("close-all", "refused"),
        ("reload-strategies", "refused"), ("reload-strategies", "ok"), ("resume", "ok")]
    assert all("@" in a.actor for a in actions)
    assert json.loads(actions[3].arguments) == {"symbol": "NOPE"}
    # Every close was an intent with exactly one outcome, under the command's correlation id.
    assert len(closes) == seen["positions_before_close"] and {c.status for c in closes} == {"filled"}


def test_ctl_cli_talks_to_a_running_bot(tmp_path):
    env = _env(tmp_path)
    settings = Settings.from_env(env, dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=7, stepped=True), stepped=True)
    app.connect()
    app.start_telemetry(serve=True)
    try:
        url = f"http://127.0.0.1:{app.control.port}"
        process_env = {**os.environ, **env}
        run = [sys.executable, "-m", "bot", "ctl", "--url", url]
        # Without --url: CONTROL_PORT=0, so ctl reads the URL the bot wrote beside its token.
        status = subprocess.run([sys.executable, "-m", "bot", "ctl", "status"], capture_output=True, text=True, env=process_env, cwd=ROOT,
                                timeout=120)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["risk_guard"]["paused"] is False
        pause = subprocess.run([*run, "pause"], capture_output=True, text=True, env=process_env, cwd=ROOT, timeout=120)
        assert pause.returncode == 0 and app.engine.risk_guard.halted_reason == "operator_pause"
        wrong = subprocess.run([*run, "status"], capture_output=True, text=True, cwd=ROOT, timeout=120,
                               env={**process_env, "CONTROL_TOKEN_FILE": str(tmp_path / "other_token")})
        assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
    finally:
        app.close()
