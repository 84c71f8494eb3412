"""BotMetrics exposition contract and the TelemetryServer endpoints over real HTTP."""

from __future__ import annotations

import gzip
import json
import math
import re
import urllib.error
import urllib.request
from decimal import Decimal

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from bot.telemetry.context import correlation_context
from bot.telemetry.health import LivenessTracker, TelemetryServer
from bot.telemetry.metrics import BotMetrics

ACCOUNT = "5550123"
OPENMETRICS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                      "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.42 sends

CONTRACT = {
    "tradewatch_cycle_duration_seconds": "histogram",
    "tradewatch_last_cycle_timestamp_seconds": "gauge",
    "tradewatch_cycles": "counter",
    "tradewatch_broker_request_duration_seconds": "histogram",
    "tradewatch_broker_errors": "counter",
    "tradewatch_broker_connected": "gauge",
    "tradewatch_broker_reconnects": "counter",
    "tradewatch_signals": "counter",
    "tradewatch_orders": "counter",
    "tradewatch_open_positions": "gauge",
    "tradewatch_account_balance": "gauge",
    "tradewatch_account_equity": "gauge",
    "tradewatch_account_margin_level_ratio": "gauge",
    "tradewatch_log_records_dropped": "counter",
    "tradewatch_build_info": "gauge",
    "tradewatch_process_cpu_percent": "gauge",
    "tradewatch_process_open_fds": "gauge",
    "tradewatch_process_resident_memory_bytes": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "tradewatch_order_queue_depth": "gauge",
    "tradewatch_store_spool_depth": "gauge",
    "tradewatch_circuit_state": "gauge",
    "tradewatch_circuit_transitions": "counter",
    "tradewatch_orders_replayed": "counter",
    "tradewatch_orders_expired": "counter",
}


def exercised(account=ACCOUNT) -> BotMetrics:
    """A BotMetrics with every labelled family touched once."""
    metrics = BotMetrics(account, version="1.2.3")
    metrics.observe_cycle(0.2, 1_767_607_200.5)
    with correlation_context("c0rre1at10n1"):
        metrics.observe_broker_call("order_send", 0.042)
    metrics.observe_broker_call("symbol_info_tick", 0.0007, error_kind="timeout")
    metrics.set_connected(True)
    metrics.count_reconnect()
    metrics.count_signal("EURUSD", "ma_crossover", "buy")
    metrics.count_order("EURUSD", "ma_crossover", "buy", "filled")
    metrics.set_positions({"EURUSD": 2, "XAUUSD": 1})
    metrics.set_account(Decimal("10000.50"), Decimal("9950.25"), Decimal("1250.5"))
    metrics.count_log_drops(3)
    metrics.set_order_queue_depth(4)
    metrics.set_store_spool_depth(0)
    metrics.set_circuit_state("broker", "closed")
    metrics.set_circuit_state("broker", "open")
    metrics.count_replayed()
    metrics.count_expired("stale_price")
    return metrics


def text_exposition(metrics: BotMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def value(metrics: BotMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


def test_exposition_parses_and_every_series_has_account_first():
    text = text_exposition(exercised())
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in CONTRACT.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].samples, name
    for family in families.values():
        for sample in family.samples:
            assert sample.labels.get("account") == ACCOUNT, sample
    sample_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert sample_lines and all(re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*\{account="5550123"', line)
                                for line in sample_lines)


def test_helpers_set_the_documented_values():
    metrics = exercised()
    assert value(metrics, "tradewatch_cycles_total") == 1
    assert value(metrics, "tradewatch_last_cycle_timestamp_seconds") == 1_767_607_200.5
    assert value(metrics, "tradewatch_cycle_duration_seconds_bucket", le="0.25") == 1
    assert value(metrics, "tradewatch_cycle_duration_seconds_bucket", le="0.1") == 0
    assert value(metrics, "tradewatch_broker_request_duration_seconds_count", call="order_send") == 1
    assert value(metrics, "tradewatch_broker_request_duration_seconds_bucket", call="symbol_info_tick",
                 le="0.001") == 1
    assert value(metrics, "tradewatch_broker_errors_total", call="symbol_info_tick", kind="timeout") == 1
    assert value(metrics, "tradewatch_broker_errors_total", call="order_send", kind="timeout") is None
    assert value(metrics, "tradewatch_broker_connected") == 1
    assert value(metrics, "tradewatch_account_balance") == 10000.5
    assert value(metrics, "tradewatch_account_equity") == 9950.25
    assert value(metrics, "tradewatch_account_margin_level_ratio") == pytest.approx(12.505)
    assert value(metrics, "tradewatch_log_records_dropped_total") == 3
    assert value(metrics, "tradewatch_build_info", version="1.2.3") == 1
    assert value(metrics, "tradewatch_circuit_state", breaker="broker") == 2
    assert value(metrics, "tradewatch_circuit_transitions_total", breaker="broker", to="open") == 1
    assert value(metrics, "tradewatch_circuit_transitions_total", breaker="broker", to="closed") is None
    assert value(metrics, "tradewatch_orders_expired_total", reason="stale_price") == 1
    assert value(metrics, "tradewatch_process_resident_memory_bytes") > 1_000_000
    assert value(metrics, "tradewatch_process_open_fds") >= 1
    assert value(metrics, "tradewatch_process_cpu_percent") >= 0
    metrics.set_connected(False)
    assert value(metrics, "tradewatch_broker_connected") == 0


def test_series_exist_before_the_first_event():
    metrics = BotMetrics(ACCOUNT)
    assert value(metrics, "tradewatch_cycles_total") == 0
    assert value(metrics, "tradewatch_log_records_dropped_total") == 0
    assert value(metrics, "tradewatch_broker_reconnects_total") == 0
    assert math.isnan(value(metrics, "tradewatch_account_margin_level_ratio"))


def test_positions_that_close_show_zero_not_vanish():
    metrics = BotMetrics(ACCOUNT)
    metrics.set_positions({"EURUSD": 2, "GBPUSD": 1})
    metrics.set_positions({"GBPUSD": 3})
    assert value(metrics, "tradewatch_open_positions", symbol="EURUSD") == 0
    assert value(metrics, "tradewatch_open_positions", symbol="GBPUSD") == 3
    metrics.set_positions({})
    assert value(metrics, "tradewatch_open_positions", symbol="GBPUSD") == 0


def test_margin_level_without_margin_in_use_is_nan():
    metrics = BotMetrics(ACCOUNT)
    metrics.set_account(Decimal("1000"), Decimal("1000"), Decimal("0"))
    assert math.isnan(value(metrics, "tradewatch_account_margin_level_ratio"))
    metrics.set_account(1000, 1000, None)
    assert math.isnan(value(metrics, "tradewatch_account_margin_level_ratio"))
    metrics.set_account(1000, 500, 150)
    assert value(metrics, "tradewatch_account_margin_level_ratio") == 1.5


@pytest.mark.parametrize("bad", ["1000", None, True, float("nan"), Decimal("Infinity")])
def test_bad_numbers_are_one_line_errors(bad):
    metrics = BotMetrics(ACCOUNT)
    with pytest.raises((TypeError, ValueError), match="balance must be") as info:
        metrics.set_account(bad, 1, 1)
    assert "\n" not in str(info.value)


def test_bad_labels_and_states_are_rejected():
    metrics = BotMetrics(ACCOUNT)
    with pytest.raises(ValueError, match="symbol"):
        metrics.count_signal("", "ma", "buy")
    with pytest.raises(ValueError, match="unknown circuit state 'ajar'"):
        metrics.set_circuit_state("broker", "ajar")
    metrics.set_circuit_state("broker", "half-open")
    assert value(metrics, "tradewatch_circuit_state", breaker="broker") == 1


def test_several_instances_coexist():
    first, second = BotMetrics("1"), BotMetrics("2")
    first.count_reconnect()
    assert first.registry.get_sample_value("tradewatch_broker_reconnects_total", {"account": "1"}) == 1
    assert second.registry.get_sample_value("tradewatch_broker_reconnects_total", {"account": "2"}) == 0


def test_order_send_exemplar_in_openmetrics():
    from prometheus_client.openmetrics.exposition import generate_latest

    text = generate_latest(exercised().registry).decode()
    exemplars = [sample.exemplar for family in parse_openmetrics(text) for sample in family.samples
                 if sample.exemplar is not None]
    assert len(exemplars) == 1
    assert exemplars[0].labels == {"correlation_id": "c0rre1at10n1"} and exemplars[0].value == 0.042


def test_explicit_exemplar_and_no_exemplar_without_correlation():
    metrics = BotMetrics(ACCOUNT)
    metrics.observe_broker_call("order_send", 0.01)  # no correlation id set: no exemplar
    metrics.observe_broker_call("order_check", 0.01, exemplar={"correlation_id": "explicit0001"})
    from prometheus_client.openmetrics.exposition import generate_latest

    exemplars = [(s.labels["call"], s.exemplar.labels) for f in parse_openmetrics(generate_latest(metrics.registry)
                 .decode()) for s in f.samples if s.exemplar]
    assert exemplars == [("order_check", {"correlation_id": "explicit0001"})]


# -- TelemetryServer -------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def get(url, accept=None, accept_encoding=None):
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    if accept_encoding:
        request.add_header("Accept-Encoding", accept_encoding)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def server():
    clock = FakeClock()
    tracker = LivenessTracker(cycle_seconds=10, clock=clock)
    checks = {"broker": True, "store": True}

    def readiness():
        return all(checks.values()), {name: "ok" if ok else "failing" for name, ok in checks.items()}

    status = {"account": ACCOUNT, "equity": Decimal("9950.25"), "open_positions": {"EURUSD": 2}}
    telemetry = TelemetryServer(exercised(), host="127.0.0.1", port=0, status_provider=lambda: status,
                                liveness=tracker.check, readiness=readiness)
    telemetry.start()
    telemetry.clock, telemetry.tracker, telemetry.checks = clock, tracker, checks
    telemetry.base = f"http://127.0.0.1:{telemetry.port}"
    yield telemetry
    telemetry.stop()


def test_metrics_endpoint_text_format(server):
    assert server.port != 0
    status, headers, body = get(server.base + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert set(CONTRACT) <= names


def test_metrics_endpoint_negotiates_openmetrics_with_exemplar(server):
    status, headers, body = get(server.base + "/metrics", accept=OPENMETRICS_ACCEPT, accept_encoding="gzip")
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.rstrip().endswith("# EOF")
    exemplars = [s.exemplar.labels for f in parse_openmetrics(text) for s in f.samples if s.exemplar]
    assert exemplars == [{"correlation_id": "c0rre1at10n1"}]


def test_healthz_turns_503_when_the_loop_stalls(server):
    server.tracker.beat()
    status, headers, body = get(server.base + "/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["status"] == "alive" and payload["details"]["beats"] == 1
    server.clock.now += 29.9  # under 3 cycles of 10 s
    assert get(server.base + "/healthz")[0] == 200
    server.clock.now += 0.2
    status, _, body = get(server.base + "/healthz")
    assert status == 503
    payload = json.loads(body)
    assert payload["status"] == "stalled" and payload["details"]["last_beat_age_seconds"] == pytest.approx(30.1)
    server.tracker.beat()
    assert get(server.base + "/healthz")[0] == 200


def test_readyz_names_each_check(server):
    status, _, body = get(server.base + "/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready", "checks": {"broker": "ok", "store": "ok"}}
    server.checks["broker"] = False
    status, _, body = get(server.base + "/readyz")
    assert status == 503
    assert json.loads(body) == {"status": "not_ready", "checks": {"broker": "failing", "store": "ok"}}


def test_status_is_json_with_exact_money(server):
    status, headers, body = get(server.base + "/status")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"account": ACCOUNT, "equity": "9950.25", "open_positions": {"EURUSD": 2}}


def test_failing_providers_answer_errors_not_crash(server):
    def broken():
        raise RuntimeError("state unavailable")

    server.readiness = broken
    server.status_provider = broken
    status, _, body = get(server.base + "/readyz")
    assert status == 503 and "state unavailable" in json.loads(body)["checks"]["error"]
    assert get(server.base + "/status")[0] == 500
    assert get(server.base + "/nope")[0] == 404
    assert get(server.base + "/metrics")[0] == 200  # still serving


def test_stop_releases_the_port():
    import socket

    telemetry = TelemetryServer(BotMetrics(ACCOUNT), host="127.0.0.1", port=0)
    telemetry.start()
    port = telemetry.port
    telemetry.stop()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)


def test_liveness_tracker_uses_three_wall_clock_intervals():
    clock = FakeClock()
    tracker = LivenessTracker(cycle_seconds=2.0, clock=clock)
    assert tracker.alive()  # grace period before the first beat
    clock.now += 5.9
    assert tracker.alive()
    clock.now += 0.2
    assert not tracker.alive()
    tracker.beat()
    assert tracker.alive() and tracker.check()[0]
    with pytest.raises(ValueError, match="cycle_seconds"):
        LivenessTracker(0)


def test_two_sources_halting_new_orders_are_kept_apart():
    """The equity guard lifting its halt must not hide the prop rules' halt, which still holds."""
    metrics = BotMetrics(ACCOUNT)

    def halted(reason):
        return metrics.registry.get_sample_value("tradewatch_new_orders_halted",
                                                 {"account": ACCOUNT, "reason": reason})

    metrics.set_new_orders_halted("equity_implausible", "equity")
    metrics.set_new_orders_halted("prop_rule", "prop_rules")
    assert (halted("equity_implausible"), halted("prop_rule")) == (1, 1)
    metrics.set_new_orders_halted(None, "equity")
    assert (halted("equity_implausible"), halted("prop_rule")) == (0, 1)
    metrics.set_new_orders_halted("equity_unconfirmed", "equity")
    assert (halted("equity_implausible"), halted("equity_unconfirmed"), halted("prop_rule")) == (0, 1, 1)
    metrics.set_new_orders_halted(None, "prop_rules")
    metrics.set_new_orders_halted(None, "equity")
    assert (halted("equity_implausible"), halted("equity_unconfirmed"), halted("prop_rule")) == (0, 0, 0)


def _state(balance, equity, margin_level):
    return type("AccountState", (), {"balance": balance, "equity": equity, "margin_level": margin_level})()


def test_a_held_account_is_exported_when_read_and_the_newest_way_in_wins():
    metrics = BotMetrics(ACCOUNT)
    metrics.hold_account(_state(Decimal("1000.50"), Decimal("990.25"), Decimal("250")))
    assert value(metrics, "tradewatch_account_balance") == 1000.5
    assert value(metrics, "tradewatch_account_equity") == 990.25
    assert value(metrics, "tradewatch_account_margin_level_ratio") == 2.5
    metrics.set_account(Decimal("5"), Decimal("6"), None)  # set after a hold: the set figures stand
    assert (value(metrics, "tradewatch_account_balance"), value(metrics, "tradewatch_account_equity")) == (5, 6)
    metrics.hold_account(_state(Decimal("7"), Decimal("8"), Decimal("0")))  # and a hold after a set
    assert (value(metrics, "tradewatch_account_balance"), value(metrics, "tradewatch_account_equity")) == (7, 8)
    assert math.isnan(value(metrics, "tradewatch_account_margin_level_ratio"))


def test_a_held_account_that_cannot_be_exported_keeps_the_last_figures_and_says_so_once(caplog):
    metrics = BotMetrics(ACCOUNT)
    metrics.hold_account(_state(Decimal("100"), Decimal("90"), None))
    assert value(metrics, "tradewatch_account_balance") == 100
    with caplog.at_level("WARNING", logger="bot.telemetry.metrics"):
        for _ in range(3):
            metrics.hold_account(_state(Decimal("NaN"), Decimal("90"), None))
            assert value(metrics, "tradewatch_account_balance") == 100
        assert [r.getMessage() for r in caplog.records] == [
            "account figures not exported, the gauges keep the last ones: balance must be finite, got Decimal('NaN')"]
        metrics.hold_account(_state(Decimal("101"), Decimal("90"), None))
        assert value(metrics, "tradewatch_account_balance") == 101
        metrics.hold_account(_state(Decimal("sNaN"), Decimal("90"), None))
        assert value(metrics, "tradewatch_account_balance") == 101
    assert len(caplog.records) == 2  # said again once it had recovered in between


def test_orders_are_counted_per_label_set_and_a_bad_label_is_refused_every_time():
    metrics = BotMetrics(ACCOUNT)
    for _ in range(3):
        metrics.count_order("EURUSD", "ma", "buy", "filled")
    metrics.count_order("EURUSD", "ma", "sell", "rejected")
    labels = {"symbol": "EURUSD", "strategy": "ma"}
    assert value(metrics, "tradewatch_orders_total", side="buy", outcome="filled", **labels) == 3
    assert value(metrics, "tradewatch_orders_total", side="sell", outcome="rejected", **labels) == 1
    for _ in range(2):
        with pytest.raises(ValueError, match="outcome"):
            metrics.count_order("EURUSD", "ma", "buy", "")


def test_execution_series_appear_with_their_first_fill_and_add_up_per_symbol():
    from datetime import UTC, datetime

    from bot.engine.execution import ExecutionQuality
    from bot.telemetry import execution_metrics

    metrics = BotMetrics(ACCOUNT)
    sent = datetime(2026, 1, 5, tzinfo=UTC)
    metrics.execution.observe("EURUSD", "rejected", ExecutionQuality(sent, requotes=2))
    text = text_exposition(metrics)
    assert 'tradewatch_order_requotes_total{account="5550123",symbol="EURUSD"} 2.0' in text
    assert "tradewatch_order_slippage_points_bucket" not in text  # no fill yet: no fill series
    fill = ExecutionQuality(sent, requotes=0, spread_points=Decimal("12"), slippage_decision_points=Decimal("-3"),
                            slippage_send_points=Decimal("1"), decision_to_send_seconds=Decimal("0.002"),
                            send_to_fill_seconds=None)
    for _ in range(3):
        metrics.execution.observe("EURUSD", "filled", fill)
    sample = metrics.registry.get_sample_value
    eur = {"account": ACCOUNT, "symbol": "EURUSD"}
    assert sample("tradewatch_order_slippage_points_count", {**eur, "reference": "decision"}) == 3
    assert sample("tradewatch_order_slippage_points_bucket", {**eur, "reference": "decision", "le": "-2.0"}) == 3
    assert sample("tradewatch_order_slippage_points_bucket", {**eur, "reference": "send", "le": "0.0"}) == 0
    assert sample("tradewatch_order_fill_latency_seconds_sum", {**eur, "stage": "decision_to_send"}) == \
        pytest.approx(0.006)
    assert sample("tradewatch_order_fill_latency_seconds_count", {**eur, "stage": "send_to_fill"}) == 0
    assert sample("tradewatch_order_spread_points_count", eur) == 3
    assert sample("tradewatch_order_requotes_total", eur) == 2
    for n in range(execution_metrics.MAX_SYMBOLS + 5):  # past the bound: one "other" series
        metrics.execution.observe(f"S{n}", "filled", fill)
    assert sample("tradewatch_order_spread_points_count", {"account": ACCOUNT, "symbol": "other"}) == 6
    metrics.execution.observe(f"S{execution_metrics.MAX_SYMBOLS + 4}", "filled", fill)
    assert sample("tradewatch_order_spread_points_count", {"account": ACCOUNT, "symbol": "other"}) == 7
