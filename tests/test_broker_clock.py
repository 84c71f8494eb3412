"""The broker's server clock: measured from fresh ticks, stale ticks refused, DST steps confirmed."""

import logging
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.gateway.clock import BrokerClock, ClockUnknown
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

NOW = datetime(2026, 3, 6, 12, 0, tzinfo=UTC).timestamp()
H = 3600


def test_offset_is_the_tick_time_minus_utc_rounded_to_15_minutes():
    clock = BrokerClock()
    assert clock.offset is None and clock.due(NOW)
    with pytest.raises(ClockUnknown):
        clock.to_utc(NOW)
    assert clock.observe(NOW + 2 * H + 3.4, NOW)  # 3.4 s of latency / quiet market
    assert clock.offset == 2 * H
    assert clock.to_utc(NOW + 2 * H) == datetime.fromtimestamp(NOW, UTC)
    assert clock.to_server(datetime.fromtimestamp(NOW, UTC)) == datetime.fromtimestamp(NOW + 2 * H, UTC)
    india = BrokerClock()
    assert india.observe(NOW + 5.5 * H - 2, NOW) and india.offset == 5.5 * H


def test_a_stale_tick_is_refused_and_the_last_good_offset_stays():
    clock = BrokerClock()
    clock.observe(NOW + 2 * H, NOW)
    later = NOW + 2 * H
    assert not clock.observe(NOW + 2 * H - 300, later)  # 5 min old: the market is quiet or closed
    assert not clock.observe(NOW - 40 * H, later)  # Friday's last tick on a Sunday
    assert clock.offset == 2 * H
    fresh = BrokerClock()
    assert not fresh.observe(NOW - 30 * H, NOW) and fresh.offset is None


def test_a_dst_step_needs_a_later_tick_to_confirm_and_is_logged_at_warning(caplog):
    clock = BrokerClock()
    changes = []
    clock.on_change = lambda old, new: changes.append((old, new))
    clock.observe(NOW + 2 * H, NOW)
    switch = NOW + 10 * H
    with caplog.at_level(logging.WARNING, logger="bot.gateway.clock"):
        assert not clock.observe(switch + 3 * H, switch)  # one tick is not enough
        assert not clock.observe(switch + 3 * H, switch + 5)  # the same (frozen) tick again: still not
        assert clock.offset == 2 * H
        assert clock.observe(switch + 3 * H + 30, switch + 30)  # a later tick agrees
    assert clock.offset == 3 * H
    assert changes == [(None, 2 * H), (2 * H, 3 * H)]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "daylight saving" in caplog.records[0].getMessage()
    # A deal stamped before the switch converts with the offset it was made under.
    assert clock.to_utc(NOW + 2 * H + 60) == datetime.fromtimestamp(NOW + 60, UTC)
    assert clock.to_utc(switch + 3 * H + 60) == datetime.fromtimestamp(switch + 60, UTC)
    # Bar times across the switch: each with its own offset, as one offset_at_server each gives it.
    bars = np.arange(NOW, switch + 4 * H, 600, dtype=np.int64)
    assert list(clock.offsets_at_server(bars)) == [clock.offset_at_server(t) for t in bars]
    assert set(clock.offsets_at_server(bars).tolist()) == {2 * H, 3 * H}


def test_measured_again_hourly_and_at_the_server_midnight():
    clock = BrokerClock()
    server_evening = datetime(2026, 3, 6, 21, 30, tzinfo=UTC).timestamp()  # 23:30 server time at +2
    clock.observe(server_evening + 2 * H, server_evening)
    assert not clock.due(server_evening + 20 * 60)
    assert clock.due(server_evening + 31 * 60)  # 00:01 server time: a new broker day
    clock.observe(server_evening + 31 * 60 + 2 * H, server_evening + 31 * 60)
    assert not clock.due(server_evening + 31 * 60 + 59 * 60)
    assert clock.due(server_evening + 31 * 60 + H)
    day = clock.server_day_start(datetime.fromtimestamp(server_evening + 31 * 60, UTC))
    assert day == datetime(2026, 3, 6, 22, 0, tzinfo=UTC)  # the broker day starts at 22:00 UTC


def test_an_accelerated_simulator_is_not_mistaken_for_a_server_clock_hours_ahead():
    """At 3 600x the sim is hours ahead of the wall clock after a second: the gateway asks the sim."""
    terminal = SimTerminal(seed=4, speed=3600)
    gateway = Mt5ApiGateway(lambda: Mt5Module(terminal), name="fast")
    gateway.connect()
    quote = gateway.quote("EURUSD")
    assert gateway.clock.offset == 0
    assert abs((quote.time - terminal.now()).total_seconds()) < 3600 * 0.5  # well inside one wall second

    class NoHook:  # the same module without the sim-only hook: the real package has none
        def __init__(self, module):
            self.module = module

        def __getattr__(self, name):
            if name == "sim_clock":
                raise AttributeError(name)
            return getattr(self.module, name)

    blind = Mt5ApiGateway(lambda: NoHook(Mt5Module(terminal)), name="blind")
    blind.connect()
    with pytest.raises(ClockUnknown):
        blind.quote("EURUSD")  # a sim clock months from the wall clock is refused, never guessed


def test_the_sim_clock_hook_reports_speed_and_the_stepped_clock():
    stepped = SimTerminal(seed=4, stepped=True)
    reading = Mt5Module(stepped).sim_clock()
    assert reading == {"utc": stepped.now().timestamp(), "speed": 1.0}
    stepped.advance(90)
    assert Mt5Module(stepped).sim_clock()["utc"] == (stepped.now()).timestamp()
    assert Mt5Module(SimTerminal(seed=4, speed=60)).sim_clock()["speed"] == 60.0


def test_the_bridge_serves_sim_clock_for_a_simulator_only():
    import json

    from mt5bridge.backends import Metatrader5Backend
    from mt5bridge.server import Dispatcher

    terminal = SimTerminal(seed=4, stepped=True)
    sim = json.loads(Dispatcher(Mt5Module(terminal), allow_sim_control=False, lock_timeout=1).dispatch("sim_clock", "{}"))
    assert sim["ok"] and sim["result"] == {"utc": terminal.now().timestamp(), "speed": 1.0}
    real = Dispatcher(Metatrader5Backend(module=object()), allow_sim_control=False, lock_timeout=1)
    refused = json.loads(real.dispatch("sim_clock", "{}"))
    assert not refused["ok"] and "not a simulated terminal" in refused["error"]["message"]


def test_a_gateway_over_the_lenient_terminal_itself_reads_the_sim_clock_too():
    sim = SimTerminal(seed=4, stepped=True)
    gateway = Mt5ApiGateway(lambda: sim)
    gateway.connect()
    sim.advance(60)
    assert abs((gateway.quote("EURUSD").time - sim.now()).total_seconds()) <= 1
    assert gateway.clock.offset == 0


def test_a_seeded_clock_converts_at_once_and_a_frozen_tick_cannot_change_it(caplog):
    clock = BrokerClock()
    with caplog.at_level(logging.INFO, logger="bot.gateway.clock"):
        assert clock.seed(2 * H)
    assert "stored by an earlier run" in caplog.text
    assert clock.offset == 2 * H and clock.due(NOW)  # in force, and measured again at the next tick
    assert clock.to_utc(NOW + 2 * H) == datetime.fromtimestamp(NOW, UTC)
    friday_close = NOW + 2 * H  # server time of the last tick before the weekend
    saturday = NOW + 10 * H + 20  # ten hours later: that tick "looks fresh" at an offset of -8 h
    assert not clock.observe(friday_close, saturday)
    assert not clock.observe(friday_close, saturday + 900)  # the same frozen tick: never a confirmation
    assert clock.offset == 2 * H
    assert not clock.seed(3 * H), "a measured or seeded clock is not seeded again"
    monday = NOW + 60 * H
    assert clock.observe(monday + 2 * H + 1, monday) and clock.offset == 2 * H and not clock.due(monday)
    assert not BrokerClock().seed(7 * 60), "a stored offset that is no time zone is not used"


def test_a_restart_on_the_weekend_keeps_the_offset_an_earlier_run_stored(tmp_path):
    """Friday's frozen last tick, read on Saturday a whole number of quarter hours later, passes for a
    fresh tick with an offset hours off: a restarted bot must keep the offset it stored instead."""
    from bot.app import BotApp
    from bot.config import Settings
    from db import brokerday
    from db.reading import reading

    state, store = tmp_path / "sim.json", tmp_path / "store.db"
    env = {"DATABASE_URL": f"sqlite:///{store}", "SIM_SEED": "7", "SIM_BROKER": "retail-hedging",
           "SIM_STATE_PATH": str(state), "SIM_START": "2026-03-06T20:00:00", "SYMBOLS": "EURUSD",
           "TIMEFRAME": "M1", "CYCLE_SECONDS": "600", "LOG_LEVEL": "WARNING"}
    first = BotApp(Settings.from_env(env, dotenv_path=None), stepped=True)
    assert first.run(cycles=3, serve=False) == 0  # Friday evening: the market is open
    with reading(first.database) as connection:
        assert brokerday.load(connection, first.engine.account_id).latest == 2 * H
    first.database.dispose()

    # The broker, kept in its state file, is moved on to Saturday: Friday's close + 10 h + 5 s.
    sim = SimTerminal(seed=7, stepped=True, state_file=str(state), profile="retail-hedging")
    terminal = Mt5Module(sim)
    assert terminal.initialize()
    frozen = terminal.symbol_info_tick("EURUSD.m").time
    sim.advance(60 * 30)
    while True:  # wait for the weekend: the tick stops moving
        tick = terminal.symbol_info_tick("EURUSD.m").time
        if tick == frozen:
            break
        frozen = tick
        sim.advance(60 * 30)
    close_utc = frozen - 2 * H
    sim.advance(close_utc + 10 * H + 5 - sim.now().timestamp())
    stale = BrokerClock()
    assert stale.observe(frozen, sim.now().timestamp()) and stale.offset == -8 * H, "the trap is set"

    again = BotApp(Settings.from_env({**env, "CYCLE_SECONDS": "30"}, dotenv_path=None), stepped=True)
    try:
        assert again.run(cycles=2, serve=False) == 0
        assert again.engine.gateway.clock.offset == 2 * H
        assert again.engine.last_report.ok and again.engine.halted_reason is None
        assert again.engine.gateway.broker_time == datetime.fromtimestamp(close_utc, UTC)  # Friday close, in UTC
    finally:
        again.database.dispose()
