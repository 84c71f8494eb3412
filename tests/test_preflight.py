"""Preflight on the simulator's injectable terminal states: each failing check is named with its
sentence on /readyz, /status and tradewatch_preflight_ok, no order leaves the bot while it fails,
it is logged once, and trading resumes by itself once the state is fixed."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import BotApp
from bot.config import Settings
from bot.engine.preflight import CHECK_NAMES, Preflight
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

#: sim state switched off -> (check that fails, words of its sentence)
STATES = {
    "algo_trading": ("algo_trading", "AutoTrading is off in the terminal: press the Algo Trading button"),
    "tradeapi": ("api_trading", "Disable automatic trading via external Python API"),
    "account_trading": ("account_trading", "Trading is disabled on this account"),
    "expert_trading": ("expert_trading", "does not allow expert advisors on this account"),
}


def _get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


class CountingSim(SimTerminal):
    """Counts every order_send that reaches the terminal."""

    sent = 0

    def order_send(self, request):
        self.sent += 1
        return super().order_send(request)


@pytest.fixture
def bot(tmp_path):
    captured = Captured()
    root = logging.getLogger()
    old = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/preflight.db", "SYMBOLS": "EURUSD,GBPUSD,USDJPY",
           "TIMEFRAME": "M1", "CYCLE_SECONDS": "30", "LOG_LEVEL": "WARNING", "METRICS_PORT": "0",
           "RISK_PER_TRADE": "0.1"}
    sim = CountingSim(seed=21, stepped=True, profile="ecn-netting")
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=sim, stepped=True)
    app.connect()
    app.start_telemetry(serve=True)
    try:
        yield app, sim, captured
    finally:
        app.close()
        root.removeHandler(captured)
        root.setLevel(old)


def _cycle(app):
    report = app.engine.run_cycle()
    app.liveness.beat()
    app.pacer.wait()
    return report


@pytest.mark.parametrize("state", list(STATES))
def test_a_failed_check_halts_orders_is_shown_and_trading_resumes_when_fixed(bot, state):
    app, sim, captured = bot
    check, words = STATES[state]
    gauge = app.safety.preflight_ok
    for _ in range(3):
        _cycle(app)
    assert app.engine.preflight.ok and gauge.labels(app.account, check)._value.get() == 1
    assert _get(app.server.port, "/readyz")[1]["checks"]["preflight_checks"][check] == "ok"

    sim.set_trading_state(**{state: False})
    for _ in range(3):  # re-read within a minute of broker time (two 30 s cycles)
        _cycle(app)
        if not app.engine.preflight.ok:
            break
    assert not app.engine.preflight.ok
    sent = sim.sent
    for _ in range(20):
        report = _cycle(app)
        assert report.error is None, report.error  # a halt, not a failing (network-like) cycle
    assert sim.sent == sent, "an order reached the terminal while a preflight check failed"

    status, ready = _get(app.server.port, "/readyz")
    assert status == 503 and ready["checks"]["preflight"] == "failing"
    assert words in ready["checks"]["preflight_checks"][check]
    assert all(ready["checks"]["preflight_checks"][other] == "ok" for other in CHECK_NAMES if other != check)
    assert words in _get(app.server.port, "/status")[1]["preflight"][check]
    assert gauge.labels(app.account, check)._value.get() == 0
    failed_lines = [m for m in captured.messages if m.startswith(f"preflight check {check} failed")]
    assert len(failed_lines) == 1 and words in failed_lines[0]  # said once, not every cycle

    sim.set_trading_state(**{state: True})
    for _ in range(400):
        _cycle(app)
        if sim.sent > sent:
            break
    assert sim.sent > sent, "trading did not resume after the state was fixed"
    assert gauge.labels(app.account, check)._value.get() == 1
    assert _get(app.server.port, "/readyz")[1]["checks"]["preflight_checks"][check] == "ok"
    assert "preflight: every check passes: trading resumes" in captured.messages


def test_a_reconnect_reads_the_checks_again_at_once(bot):
    app, sim, _ = bot
    _cycle(app)
    runs = app.engine.preflight.runs
    sim.set_trading_state(algo_trading=False)
    _cycle(app)  # 30 s later: not due yet
    assert app.engine.preflight.runs == runs and app.engine.preflight.ok
    app._reconnected(1.0)  # what the supervisor calls after a reconnection
    _cycle(app)
    assert app.engine.preflight.runs == runs + 1 and not app.engine.preflight.ok


@pytest.mark.parametrize("profile", ["retail-hedging", "ecn-netting", "request-exotic"])
def test_preflight_names_each_state_on_every_profile(profile):
    sim = SimTerminal(seed=3, stepped=True, profile=profile, start=datetime(2026, 1, 6, 10, tzinfo=UTC))
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim), name="sim")
    gateway.connect()
    names = [n for n in (s.name for s in sim.symbols_get()) if sim.symbol_info(n).visible][:2]
    preflight = Preflight(gateway, lambda: names)
    now = sim.now()
    assert preflight.check(now), preflight.results
    assert preflight.margin_mode == {"ecn-netting": "netting"}.get(profile, "hedging")
    for state, (check, words) in STATES.items():
        sim.set_trading_state(**{state: False})
        preflight.recheck_now()
        assert not preflight.check(now) and words in preflight.results[check]
        assert [name for name, sentence in preflight.results.items() if sentence] == [check]
        sim.set_trading_state(**{state: True})
        preflight.recheck_now()
        assert preflight.check(now)


def test_retail_hedging_symbols_unknown_and_hidden_from_market_watch():
    sim = SimTerminal(seed=3, stepped=True, profile="retail-hedging")
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim), name="sim")
    gateway.connect()
    preflight = Preflight(gateway, lambda: ["EURUSD.m", "XAUUSD.m", "EURUSD"])
    assert not preflight.check(sim.now())
    assert preflight.results["symbols_found"].startswith("EURUSD is not offered by this broker")
    assert preflight.results["symbols_selected"].startswith("XAUUSD.m is not in Market Watch")
    assert preflight.results["symbols_tradable"] is None and preflight.results["symbols_filling"] is None
    assert sim.symbol_select("XAUUSD.m", True)
    preflight.symbols = lambda: ["EURUSD.m", "XAUUSD.m"]
    preflight.recheck_now()
    assert preflight.check(sim.now()), preflight.results


def test_symbol_facts_are_read_every_symbol_recheck_while_they_pass_and_every_recheck_while_one_fails():
    sim = SimTerminal(seed=3, stepped=True, profile="retail-hedging", start=datetime(2026, 1, 6, 10, tzinfo=UTC))
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim), name="sim")
    gateway.connect()
    names = [n for n in (s.name for s in sim.symbols_get()) if sim.symbol_info(n).visible][:2]
    preflight = Preflight(gateway, lambda: names, recheck=timedelta(minutes=1), symbol_recheck=timedelta(minutes=5))
    start = sim.now()
    assert preflight.check(start) and preflight.symbol_reads == 1

    assert sim.symbol_select(names[0], False)  # hidden from Market Watch: a symbol fact
    sim.set_trading_state(algo_trading=False)  # a terminal fact: still read every minute
    assert not preflight.check(start + timedelta(minutes=1))
    assert preflight.runs == 2 and preflight.symbol_reads == 1  # the symbols' facts of the first run
    assert preflight.results["algo_trading"] and preflight.results["symbols_selected"] is None
    sim.set_trading_state(algo_trading=True)
    assert preflight.check(start + timedelta(minutes=4)) and preflight.symbol_reads == 1

    assert not preflight.check(start + timedelta(minutes=5))  # due: the hidden symbol is seen
    assert preflight.symbol_reads == 2 and preflight.results["symbols_selected"].startswith(f"{names[0]} is not")
    assert sim.symbol_select(names[0], True)
    assert preflight.check(start + timedelta(minutes=6))  # while one fails they are read every minute
    assert preflight.symbol_reads == 3

    preflight.recheck_now()  # a reconnect reads every symbol again at once
    assert preflight.check(start + timedelta(minutes=6)) and preflight.symbol_reads == 4
    preflight.symbols = lambda: names[:1]  # so does a change of the symbol list
    assert preflight.check(start + timedelta(minutes=7)) and preflight.symbol_reads == 5
    assert preflight.check(start + timedelta(minutes=8)) and preflight.symbol_reads == 5


def test_the_metric_is_told_each_check_once_then_only_its_changes():
    sim = SimTerminal(seed=3, stepped=True, profile="retail-hedging", start=datetime(2026, 1, 6, 10, tzinfo=UTC))
    gateway = Mt5ApiGateway(lambda: Mt5Module(sim), name="sim")
    gateway.connect()
    names = [n for n in (s.name for s in sim.symbols_get()) if sim.symbol_info(n).visible][:2]
    told = []
    preflight = Preflight(gateway, lambda: names, on_result=lambda check, ok: told.append((check, ok)))
    now = sim.now()
    assert preflight.check(now)
    assert sorted(told) == sorted((check.name, True) for check in preflight.checks)
    told.clear()
    for _ in range(3):
        preflight.recheck_now()
        assert preflight.check(now)
    assert told == []  # nothing changed: nothing told
    sim.set_trading_state(algo_trading=False)
    preflight.recheck_now()
    assert not preflight.check(now) and told == [("algo_trading", False)]
    sim.set_trading_state(algo_trading=True)
    preflight.recheck_now()
    assert preflight.check(now) and told == [("algo_trading", False), ("algo_trading", True)]
    later = []
    preflight.on_result = lambda check, ok: later.append((check, ok))  # a new listener hears every check
    preflight.recheck_now()
    assert preflight.check(now) and len(later) == len(preflight.checks)
