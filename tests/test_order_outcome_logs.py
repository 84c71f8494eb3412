"""What the order path says in the log: a rejection is a WARNING naming its retcode (the
"Errors and warnings" panel is where RejectedOrdersBurst sends the reader), and a requote is
called a requote, never "order_send ok". Against the in-process simulated terminal, on every shipped
broker profile (its name of EURUSD)."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from sim_profile_helpers import broker_name, shipped_profiles

from bot.app import BotApp
from bot.config import Settings
from bot.engine.orders import new_client_order_id
from bot.resilience.order_queue import QueuedOrder
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal


@pytest.fixture(params=shipped_profiles())
def app(tmp_path, request):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SYMBOLS": broker_name(request.param, "EURUSD"),
           "LOG_LEVEL": "INFO", "REQUOTE_RETRIES": "0"}
    sim = SimTerminal(seed=7, stepped=True, profile=request.param)
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=sim, stepped=True)
    app.connect()
    app.engine.run_cycle()
    yield app, sim
    app.close()


def _submit(app, sim):
    engine = app.engine
    (symbol,) = engine.specs
    ask = engine.gateway.quote(symbol).ask
    now = sim.now()
    order = QueuedOrder(client_order_id=new_client_order_id(), account=engine.account_id, correlation_id="c" * 12,
                        signal_id=None, symbol=symbol, strategy="ma_crossover", side="BUY", purpose="open",
                        volume=Decimal("0.01"), price=ask, sl=None, tp=None, position_ticket=None,
                        deviation_points=20, max_deviation=Decimal("0.00050"), decided_at=now,
                        expires_at=now + timedelta(seconds=120))
    return engine.flow.submit(order, ask)


def _records(caplog, logger: str, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.getMessage().startswith(start)]


@pytest.mark.parametrize(("retcode", "expected"), [
    (mt5.TRADE_RETCODE_NO_MONEY, "rejected, retcode 10019 NO_MONEY"),
    (mt5.TRADE_RETCODE_REQUOTE, "rejected as a requote, retcode 10004 REQUOTE"),
])
def test_a_rejected_order_is_a_warning_with_its_retcode(app, caplog, retcode, expected):
    app, sim = app
    sim.fault_reject_next(1, retcode)
    with caplog.at_level(logging.INFO):
        outcome = _submit(app, sim)
    assert (outcome.status, outcome.retcode) == ("rejected", retcode)
    (record,) = _records(caplog, "bot.orders", "order open BUY")
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(f": {expected}")
    assert record.retcode == retcode and record.outcome == "rejected"
    (call,) = [r for r in caplog.records if r.getMessage().startswith("broker call order_send")]
    word = "requoted" if retcode == mt5.TRADE_RETCODE_REQUOTE else "rejected"
    assert call.getMessage() == f"broker call order_send {word} (retcode {retcode})"


def test_a_filled_order_stays_an_info_line_and_its_call_is_ok(app, caplog):
    app, sim = app
    with caplog.at_level(logging.INFO):
        outcome = _submit(app, sim)
    assert outcome.status == "filled"
    (record,) = _records(caplog, "bot.orders", "order open BUY")
    assert record.levelno == logging.INFO and record.getMessage().endswith(": filled")
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("broker call order_send")] == [
        "broker call order_send ok"]
