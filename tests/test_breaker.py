"""The generic circuit breaker: thresholds, fail-fast, one half-open trial, and no lock across the call."""

import threading
import time

import pytest

from bot.store import CircuitBreaker, CircuitOpenError
from bot.telemetry.metrics import BotMetrics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Down(Exception):
    pass


def failing():
    raise Down("no route to host")


def a_breaker(threshold=3, timeout=10.0, **kwargs):
    clock = FakeClock()
    changes = []
    breaker = CircuitBreaker(
        "db", threshold, timeout, on_state_change=lambda name, state: changes.append((name, state)),
        clock=clock, **kwargs,
    )
    return breaker, clock, changes


def trip(breaker, times):
    for _ in range(times):
        with pytest.raises(Down):
            breaker.call(failing)


def test_opens_after_n_consecutive_failures_and_a_success_resets_the_count():
    breaker, _clock, changes = a_breaker(threshold=3)
    trip(breaker, 2)
    assert breaker.call(lambda: "ok") == "ok"
    trip(breaker, 2)
    assert breaker.state == "closed" and breaker.failures == 2
    trip(breaker, 1)
    assert breaker.state == "open"
    assert changes == [("db", "open")]


def test_fails_fast_while_open_without_calling():
    breaker, clock, _ = a_breaker(threshold=1, timeout=10)
    trip(breaker, 1)
    attempted = []
    clock.now += 9.9
    with pytest.raises(CircuitOpenError, match="circuit 'db' is open") as refused:
        breaker.call(attempted.append, 1)
    assert attempted == []
    assert 0 < refused.value.retry_after <= 0.1 + 1e-9
    assert breaker.allow() is False


def test_half_open_after_the_timeout_lets_one_trial_and_closes_on_success():
    breaker, clock, changes = a_breaker(threshold=1, timeout=10)
    trip(breaker, 1)
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() is True
    assert breaker.allow() is False  # the trial is in flight: everyone else fails fast
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() is True
    assert changes == [("db", "open"), ("db", "half_open"), ("db", "closed")]


def test_a_failed_trial_opens_again_for_a_full_timeout():
    breaker, clock, changes = a_breaker(threshold=2, timeout=10)
    trip(breaker, 2)
    clock.now += 10
    trip(breaker, 1)
    assert breaker.state == "open"
    clock.now += 9
    assert breaker.allow() is False
    clock.now += 1
    assert breaker.allow() is True
    assert [state for _, state in changes] == ["open", "half_open", "open", "half_open"]


def test_concurrent_callers_in_half_open_get_fast_fail_while_the_one_trial_runs():
    breaker, clock, _ = a_breaker(threshold=1, timeout=5)
    trip(breaker, 1)
    clock.now += 5
    inside, release = threading.Event(), threading.Event()

    def trial():
        inside.set()
        assert release.wait(10)
        return "recovered"

    results = []
    worker = threading.Thread(target=lambda: results.append(breaker.call(trial)))
    worker.start()
    assert inside.wait(10)
    refused = 0
    for _ in range(20):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: pytest.fail("a second trial was let through"))
        refused += 1
    release.set()
    worker.join(10)
    assert results == ["recovered"] and refused == 20
    assert breaker.state == "closed"


def test_a_slow_call_does_not_block_another_threads_call():
    breaker = CircuitBreaker("db", 3, 10)
    inside, release = threading.Event(), threading.Event()
    slow = threading.Thread(target=lambda: breaker.call(lambda: (inside.set(), release.wait(10))))
    slow.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        assert breaker.call(lambda: 42) == 42
        assert time.monotonic() - started < 0.5  # not queued behind the slow call (it waits up to 10 s)
        done = []
        other = threading.Thread(target=lambda: done.append(breaker.call(lambda: "other")))
        other.start()
        other.join(2)
        assert done == ["other"]
    finally:
        release.set()
        slow.join(10)


def test_is_failure_decides_what_counts():
    breaker, _, _ = a_breaker(threshold=1, is_failure=lambda exc: isinstance(exc, ConnectionError))
    with pytest.raises(ValueError):
        breaker.call(lambda: (_ for _ in ()).throw(ValueError("refused by the server")))
    assert breaker.state == "closed"
    with pytest.raises(ConnectionError):
        breaker.call(lambda: (_ for _ in ()).throw(ConnectionError("reset")))
    assert breaker.state == "open"


def test_a_trial_whose_caller_never_reports_does_not_wedge_the_breaker():
    breaker, clock, _ = a_breaker(threshold=1, timeout=5)
    trip(breaker, 1)
    clock.now += 5
    assert breaker.allow() is True  # ...and the caller vanishes
    clock.now += 4
    assert breaker.allow() is False
    clock.now += 1
    assert breaker.allow() is True


def test_context_manager_style_and_a_broken_observer():
    def observer(_name, _state):
        raise RuntimeError("metrics exploded")

    breaker = CircuitBreaker("orders", 1, 1, on_state_change=observer)
    with pytest.raises(Down), breaker.guard():
        raise Down("timeout")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError), breaker.guard():
        pytest.fail("ran while open")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"name": ""}, "name"), ({"failure_threshold": 0}, "failure_threshold"),
     ({"reset_timeout": 0}, "reset_timeout"), ({"failure_threshold": 2.5}, "failure_threshold")],
)
def test_bad_settings_are_refused_with_a_clear_message(kwargs, message):
    settings = {"name": "db", "failure_threshold": 3, "reset_timeout": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**settings)


def test_states_reach_the_circuit_metrics():
    metrics = BotMetrics(account="5012345")
    clock = FakeClock()
    breaker = CircuitBreaker("store", 1, 5, on_state_change=metrics.set_circuit_state, clock=clock)
    metrics.set_circuit_state("store", breaker.state)
    trip(breaker, 1)
    clock.now += 5
    breaker.call(lambda: None)
    value = metrics.registry.get_sample_value
    assert value("tradewatch_circuit_state", {"account": "5012345", "breaker": "store"}) == 0
    for state in ("open", "half_open", "closed"):
        assert value("tradewatch_circuit_transitions_total",
                     {"account": "5012345", "breaker": "store", "to": state}) == 1
