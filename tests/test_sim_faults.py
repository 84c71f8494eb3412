"""Connection rules, injected faults, the control dispatcher, persistence and thread safety."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest

from mt5bridge.constants import (
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    TRADE_ACTION_DEAL,
    TRADE_RETCODE_CONNECTION,
    TRADE_RETCODE_DONE,
    TRADE_RETCODE_REJECT,
)
from mt5bridge.sim import SimTerminal

NO_IPC = (-10004, "No IPC connection")
MONDAY_10 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def make_terminal(**kwargs) -> SimTerminal:
    kwargs.setdefault("stepped", True)
    kwargs.setdefault("start", MONDAY_10)
    terminal = SimTerminal(**kwargs)
    assert terminal.initialize()
    return terminal


def buy(term, volume=0.1, **extra):
    return term.order_send(
        {"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": volume, "type": ORDER_TYPE_BUY, **extra}
    )


# ---------------------------------------------------------------- connection


def test_calls_before_initialize_fail_with_no_ipc():
    term = SimTerminal(stepped=True)
    assert term.account_info() is None and term.last_error() == NO_IPC
    assert term.symbol_info_tick("EURUSD") is None and term.last_error() == NO_IPC
    assert term.order_send({}) is None and term.terminal_info() is None
    assert term.login(5001234) is False
    assert term.initialize() is True and term.last_error() == (1, "Success")
    assert term.terminal_info().connected is True
    assert term.version()[0] == 500
    term.shutdown()
    assert term.positions_get() is None and term.last_error() == NO_IPC


def test_authorization_only_with_the_configured_credentials():
    term = SimTerminal(stepped=True, login=111, password="s3cret", server="Sim-Demo")
    assert term.initialize(login=111, password="wrong") is False
    assert term.initialize(login=111, password="wröng") is False
    assert term.last_error() == (-6, "Terminal: Authorization failed")
    assert term.initialize(login=222, password="s3cret") is False
    assert term.initialize(login=111, password="s3cret", server="Other") is False
    assert term.initialize(login=111, password="s3cret", server="Sim-Demo", timeout=5000) is True
    assert term.account_info().login == 111 and term.account_info().server == "Sim-Demo"
    assert term.login(111, password="nope") is False
    assert term.login(111, password="s3cret") is True
    assert "s3cret" not in repr(term)

    open_sim = SimTerminal(stepped=True)  # no password configured: the terminal is already logged in
    assert open_sim.initialize(login=999, password="anything") is True


def test_password_is_never_logged_or_persisted(tmp_path, caplog):
    state = tmp_path / "sim.json"
    caplog.set_level("DEBUG")
    term = SimTerminal(stepped=True, password="hunter2", state_file=str(state))
    term.initialize(password="bad")
    term.initialize(password="hunter2")
    buy(term)
    assert "hunter2" not in caplog.text
    assert "hunter2" not in state.read_text()


def test_constructor_rejects_bad_arguments_with_one_line_errors():
    with pytest.raises(ValueError, match="only USD"):
        SimTerminal(currency="EUR")
    with pytest.raises(ValueError, match="speed"):
        SimTerminal(speed=0)
    with pytest.raises(ValueError, match="balance"):
        SimTerminal(balance="lots")
    with pytest.raises(ValueError, match="leverage"):
        SimTerminal(leverage=0)


# ---------------------------------------------------------------- faults


def test_disconnect_lasts_for_sim_time_in_stepped_mode():
    term = make_terminal()
    term.fault_disconnect(30)
    assert term.account_info() is None and term.last_error() == NO_IPC
    assert buy(term) is None and term.terminal_info() is None
    assert term.initialize() is False
    term.advance(29)
    assert term.positions_get() is None
    term.advance(1)
    assert term.terminal_info().connected and buy(term).retcode == TRADE_RETCODE_DONE


def test_disconnect_in_real_time_mode_is_measured_in_sim_time():
    term = make_terminal(stepped=False, speed=3600.0)
    term.fault_disconnect(36)  # 36 sim seconds = 10 ms of wall time at 3600x
    assert term.account_info() is None and term.last_error() == NO_IPC
    time.sleep(0.05)
    assert term.account_info() is not None


def test_market_keeps_running_while_disconnected():
    term = make_terminal()
    term.set_price("EURUSD", 1.09990, 1.10000)
    ticket = buy(term, sl=1.09800).order
    term.fault_disconnect(600)
    term.set_price("EURUSD", 1.09700, 1.09710)  # the server stops the position out meanwhile
    term.clear_faults()
    assert term.positions_get() == ()
    assert term.history_deals_get(position=ticket)[-1].price == 1.09700


def test_reject_next_rejects_without_executing():
    term = make_terminal()
    term.fault_reject_next(2, TRADE_RETCODE_REJECT)
    assert buy(term).retcode == TRADE_RETCODE_REJECT
    assert buy(term).retcode == TRADE_RETCODE_REJECT
    assert term.positions_get() == () and term.history_orders_get(0, 2**40) == ()
    assert buy(term).retcode == TRADE_RETCODE_DONE
    term.fault_reject_next(1, TRADE_RETCODE_CONNECTION)
    assert buy(term).retcode == TRADE_RETCODE_CONNECTION
    assert len(term.positions_get()) == 1


def test_timeout_after_execute_fills_exactly_one_order_and_loses_the_reply():
    term = make_terminal()
    term.fault_timeout_after_execute(count=1, delay=0.05)
    started = time.monotonic()
    assert buy(term, magic=42, comment="cid:abc123") is None
    assert time.monotonic() - started >= 0.05
    assert term.last_error() == (-10005, "IPC timeout")
    positions = term.positions_get()
    assert len(positions) == 1 and (positions[0].magic, positions[0].comment) == (42, "cid:abc123")
    assert len(term.history_deals_get(0, 2**40)) == 1
    assert buy(term).retcode == TRADE_RETCODE_DONE  # only one call was affected
    assert len(term.positions_get()) == 2


def test_timed_out_order_is_visible_to_other_threads_during_the_delay():
    term = make_terminal()
    term.fault_timeout_after_execute(count=1, delay=0.3)
    sender = threading.Thread(target=buy, args=(term,), kwargs={"comment": "cid:xyz"})
    sender.start()
    deadline = time.monotonic() + 2
    seen = ()
    while not seen and time.monotonic() < deadline:
        seen = term.positions_get() or ()
    assert [p.comment for p in seen] == ["cid:xyz"] and sender.is_alive()
    sender.join()


def test_latency_is_added_to_every_call_and_cleared_by_zero():
    term = make_terminal()
    term.fault_latency(0.03)
    started = time.monotonic()
    term.symbol_info_tick("EURUSD")
    term.account_info()
    assert time.monotonic() - started >= 0.06
    term.fault_latency(0)
    started = time.monotonic()
    term.symbol_info_tick("EURUSD")
    assert time.monotonic() - started < 0.03


def test_clear_faults():
    term = make_terminal()
    term.fault_disconnect(1000)
    term.fault_reject_next(5, TRADE_RETCODE_REJECT)
    term.fault_timeout_after_execute(3)
    term.clear_faults()
    assert buy(term).retcode == TRADE_RETCODE_DONE


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("fault_disconnect", (-1,)),
        ("fault_latency", (float("nan"),)),
        ("fault_reject_next", (-1, 10006)),
        ("fault_reject_next", (1, "x")),
        ("fault_timeout_after_execute", (1, -0.5)),
        ("advance", (-5,)),
    ],
)
def test_fault_arguments_are_validated(method, args):
    with pytest.raises(ValueError):
        getattr(make_terminal(), method)(*args)


def test_control_dispatches_the_allowlist_only():
    term = make_terminal()
    reply = term.control("advance", {"seconds": 90})
    assert reply == {
        "command": "advance",
        "now": "2026-01-05T10:01:30+00:00",
        "epoch": MONDAY_10.timestamp() + 90,
    }
    json.dumps(reply)  # plain data
    assert term.control("now", {})["epoch"] == MONDAY_10.timestamp() + 90
    term.control("fault_reject_next", {"count": 1, "retcode": TRADE_RETCODE_REJECT})
    assert buy(term).retcode == TRADE_RETCODE_REJECT
    term.control("fault_disconnect", {"seconds": 10})
    assert term.account_info() is None
    term.control("clear_faults")
    assert term.account_info() is not None
    term.control("fault_timeout_after_execute", {"count": 1, "delay": 0})
    assert buy(term) is None and len(term.positions_get()) == 1
    term.control("fault_latency", {"seconds": 0})

    for command in ("set_price", "order_send", "_sync", "__init__", "shutdown", "control"):
        with pytest.raises(ValueError, match="unknown control command"):
            term.control(command, {})
    with pytest.raises(ValueError, match="bad parameters"):
        term.control("advance", {"seconds": 1, "evil": True})
    with pytest.raises(ValueError, match="bad parameters"):
        term.control("fault_reject_next", {"count": 1})
    with pytest.raises(ValueError):
        term.control("advance", {"seconds": "soon"})


# ---------------------------------------------------------------- persistence


def test_state_file_restores_books_and_clock(tmp_path):
    path = str(tmp_path / "state" / "sim.json")
    term = make_terminal(state_file=path)
    term.set_price("EURUSD", 1.09990, 1.10000)
    first = buy(term, volume=0.5, magic=5, comment="keep me", sl=1.09000)
    second = buy(term, volume=0.2)
    term.order_send(
        {
            "action": TRADE_ACTION_DEAL,
            "symbol": "EURUSD",
            "volume": 0.2,
            "type": ORDER_TYPE_SELL,
            "position": second.order,
        }
    )
    term.advance(86400 + 7)  # one rollover
    before = (term.positions_get(), term.history_deals_get(0, 2**40), term.history_orders_get(0, 2**40))
    balance, now = term.account_info().balance, term.now()

    restored = SimTerminal(stepped=True, state_file=path)
    assert restored.initialize()
    restored.set_price("EURUSD", 1.09990, 1.10000)
    assert (
        restored.positions_get(),
        restored.history_deals_get(0, 2**40),
        restored.history_orders_get(0, 2**40),
    ) == before
    assert restored.account_info().balance == balance and restored.now() == now
    assert restored.positions_get()[0].swap == -4.0 and restored.positions_get()[0].ticket == first.order
    later = buy(restored)
    assert later.order > second.order + 1 and later.deal > second.deal + 1
    assert later.request_id > second.request_id
    assert not [name for name in os.listdir(tmp_path / "state") if name != "sim.json"]  # no temp files left


def test_restored_clock_keeps_charging_swaps_once(tmp_path):
    path = str(tmp_path / "sim.json")
    term = make_terminal(state_file=path)
    buy(term, volume=1.0)
    term.advance(13 * 3600)  # Monday 23:00
    del term
    restored = make_terminal(state_file=path, start=datetime(2030, 1, 1, tzinfo=UTC))  # start is ignored
    assert restored.now() == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
    restored.advance(3600)
    assert restored.positions_get()[0].swap == -8.0
    again = make_terminal(state_file=path)
    again.advance(1)
    assert again.positions_get()[0].swap == -8.0


def test_state_file_of_another_seed_is_refused(tmp_path):
    path = str(tmp_path / "sim.json")
    make_terminal(state_file=path, seed=1)
    with pytest.raises(ValueError, match="seed 1"):
        SimTerminal(state_file=path, seed=2)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        SimTerminal(state_file=str(tmp_path / "bad.json"))
    (tmp_path / "partial.json").write_text('{"format": 1, "seed": 42, "login": 5001234}')
    with pytest.raises(ValueError, match="incomplete or corrupt"):
        SimTerminal(state_file=str(tmp_path / "partial.json"))


def test_state_survives_sigkill_mid_trading(tmp_path):
    path = tmp_path / "sim.json"
    script = textwrap.dedent(
        f"""
        import sys
        from mt5bridge.constants import ORDER_TYPE_BUY, ORDER_TYPE_SELL, TRADE_ACTION_DEAL
        from mt5bridge.sim import SimTerminal
        term = SimTerminal(stepped=True, state_file={str(path)!r})
        term.initialize()
        ready = False
        while True:
            r = term.order_send({{"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1,
                                 "type": ORDER_TYPE_BUY}})
            term.advance(37)
            term.order_send({{"action": TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1,
                             "type": ORDER_TYPE_SELL, "position": r.order}})
            if not ready:
                print("ready", flush=True)
                ready = True
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    restored = make_terminal(state_file=str(path))
    deals = restored.history_deals_get(0, 2**40)
    assert len(deals) >= 2
    booked = sum(round((d.profit + d.commission + d.swap) * 100) for d in deals)
    assert round(restored.account_info().balance * 100) == 1_000_000 + booked
    assert len(restored.positions_get()) <= 1


# ---------------------------------------------------------------- threads


def test_concurrent_orders_from_many_threads():
    term = make_terminal(balance=1_000_000)
    results = []

    def worker():
        for _ in range(25):
            results.append(buy(term, volume=0.01))
            term.account_info()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.retcode == TRADE_RETCODE_DONE for r in results)
    assert len({r.order for r in results}) == 100 and len({r.deal for r in results}) == 100
    assert len(term.positions_get()) == 100
    assert term.account_info().balance == pytest.approx(1_000_000 - 100 * 0.04, abs=1e-9)
