"""The bridge's per-call limits as a table (both payload forms) and its first-come-first-served terminal lock."""

import threading
import time

import pytest

from mt5bridge.limits import CallLimited, Limits, TerminalLock, check_call

LIMITS = Limits(handshake_seconds=2.0, max_unauthenticated=16, max_sessions=8, lock_wait_seconds=1.0)


@pytest.mark.parametrize(
    ("name", "payload", "refused"),
    [
        ("copy_rates_from_pos", {"symbol": "EURUSD", "timeframe": 1, "start_pos": 0, "count": 10_000}, None),
        ("copy_rates_from_pos", {"symbol": "EURUSD", "timeframe": 1, "start_pos": 0, "count": 10_001}, "count 10001"),
        ("copy_rates_from_pos", {"args": ["EURUSD", 1, 0, 50_000]}, "count 50000"),  # positional payload form
        ("copy_ticks_from", {"args": ["EURUSD", 0, 60_000, 1]}, "count 60000"),
        ("copy_rates_range", {"args": ["EURUSD", 1, 0, 8 * 86400]}, "about 11520 bars"),
        ("copy_rates_range", {"args": ["EURUSD", 0x4001, 0, 365 * 86400]}, None),  # H1: 8760 bars
        ("copy_ticks_range", {"args": ["EURUSD", 0, 3 * 86400, 1]}, "3 days"),
        ("history_deals_get", {"date_from": 0, "date_to": 3700 * 86400}, None),
        ("history_deals_get", {"args": [0, 3701 * 86400]}, "3701 days"),
        ("history_orders_total", {"args": [0, 5000 * 86400]}, "5000 days"),
        ("history_deals_get", {"position": 5}, None),
        ("login", {"args": [5, "secret"]}, "password is not accepted"),
        ("login", {"login": 5, "password": "secret"}, "password is not accepted"),
        ("initialize", {"kwargs": {"password": "secret"}}, "password is not accepted"),
        ("initialize", {"kwargs": {"password": 5}}, None),  # not a password: the argument rules refuse it
        ("initialize", {}, None),
    ],
)
def test_call_limits(name, payload, refused):
    if refused is None:
        check_call(name, payload, LIMITS)
    else:
        with pytest.raises(CallLimited, match=refused):
            check_call(name, payload, LIMITS)


def test_the_terminal_lock_serves_waiters_in_arrival_order():
    lock = TerminalLock()
    assert lock.acquire(timeout=1)
    order = []

    def waiter(name):
        assert lock.acquire(timeout=10)
        order.append(name)
        lock.release()

    threads = []
    for name in ("first", "second", "third"):
        thread = threading.Thread(target=waiter, args=(name,))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + 10
        while len(lock._queue) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.005)
    assert not lock.acquire(timeout=0.05)  # a newcomer queues behind them and gives up
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == ["first", "second", "third"]
