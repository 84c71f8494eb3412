"""The bot's telemetry end to end: JSON logs, correlation ids, metrics, health, Loki, redaction."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from bot.telemetry.health import LivenessTracker
from bot.telemetry.logging import setup_logging
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("timestamp", "level", "logger", "message", "service", "account", "correlation_id", "cycle_id")
SECRETS = {"MT5_PASSWORD": "Pw-9f3k2-secret", "MT5_BRIDGE_TOKEN": "tok-77ab1c-secret"}


def _settings(tmp_path, **extra) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "METRICS_PORT": "0", "METRICS_HOST": "127.0.0.1",
           "SYMBOLS": "EURUSD,USDJPY,XAUUSD", "LOG_LEVEL": "DEBUG", **extra}
    return Settings.from_env(env, dotenv_path=None)


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def app_with_logs(tmp_path):
    stream = io.StringIO()
    settings = _settings(tmp_path, **SECRETS)
    setup_logging("DEBUG", service="bot", env="test", secrets=settings.secrets(), stream=stream)
    sim = SimTerminal(seed=5, stepped=True)
    app = BotApp(settings, sim=sim, stepped=True)
    clock = FakeClock()
    app.liveness = LivenessTracker(1.0, clock=clock)
    app.connect()
    app.start_telemetry(serve=True)
    yield app, sim, stream, clock
    app.close()
    setup_logging("WARNING", stream=sys.stderr)


def _cycles(app, n):
    for _ in range(n):
        app.engine.run_cycle()
        app.liveness.beat()
        app.pacer.wait()


def test_logs_metrics_and_correlation(app_with_logs):
    app, sim, stream, _ = app_with_logs
    _cycles(app, 400)

    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) > 400
    for record in records:
        assert all(field in record for field in REQUIRED), record
        assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == 24
    text_all = stream.getvalue()
    for secret in SECRETS.values():
        assert secret not in text_all
    broker_calls = [r for r in records if r.get("call") == "order_send"]
    assert broker_calls and all(r["level"] == "INFO" and "latency_ms" in r for r in broker_calls)

    # One correlation id links signal, order and trade rows and their log lines.
    with app.database.engine.connect() as conn:
        trade = conn.execute(text("select ticket, correlation_id, client_order_id from trades "
                                  "where correlation_id is not null limit 1")).one()
        signal_row = conn.execute(text("select id from signals where correlation_id = :c"),
                                  {"c": trade.correlation_id}).one()
        order_row = conn.execute(text("select signal_id from orders where client_order_id = :o"),
                                 {"o": trade.client_order_id}).one()
        assert order_row.signal_id == signal_row.id
        order_count = conn.execute(text("select count(*) from orders")).scalar_one()
    story = [r for r in records if r["correlation_id"] == trade.correlation_id]
    messages = " | ".join(r["message"] for r in story)
    assert "signal" in messages and "order open" in messages and "broker call order_send" in messages
    assert "trade opened" in messages

    status, body = _get(app.server.port, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body)}
    account = app.account

    def value(name, sample_name=None, **labels):
        family = families[name]
        return sum(s.value for s in family.samples
                   if s.name == (sample_name or name) and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("tradewatch_cycles", "tradewatch_cycles_total", account=account) == 400
    assert value("tradewatch_cycle_duration_seconds", "tradewatch_cycle_duration_seconds_count") == 400
    assert value("tradewatch_orders", "tradewatch_orders_total") == order_count
    assert value("tradewatch_broker_connected") == 1
    assert value("tradewatch_broker_request_duration_seconds", "tradewatch_broker_request_duration_seconds_count",
                 call="order_send") == order_count
    for family in families.values():
        for sample in family.samples:
            if sample.name.startswith("tradewatch_") or sample.name.startswith("process_"):
                assert sample.labels.get("account") == account, sample


def test_health_and_readiness_follow_the_loop_and_terminal(app_with_logs):
    app, sim, _, clock = app_with_logs
    _cycles(app, 3)
    assert _get(app.server.port, "/healthz")[0] == 200
    status, body = _get(app.server.port, "/readyz")
    assert status == 200, body
    status, body = _get(app.server.port, "/status")
    info = json.loads(body)
    assert status == 200 and info["cycles"] == 3 and info["account"] == app.account
    assert info["process"]["memory_rss_bytes"] > 0

    clock.now += 10  # three wall intervals without a beat: stalled
    assert _get(app.server.port, "/healthz")[0] == 503
    app.liveness.beat()
    assert _get(app.server.port, "/healthz")[0] == 200

    sim.fault_disconnect(120)
    _cycles(app, 2)
    status, body = _get(app.server.port, "/readyz")
    assert status == 503 and "terminal_connected" in body
    sim.advance(130)
    _cycles(app, 2)
    assert _get(app.server.port, "/readyz")[0] == 200


class _Loki(BaseHTTPRequestHandler):
    bodies: list = []
    status = 500

    def do_POST(self):  # noqa: N802
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        _Loki.bodies.append(json.loads(gzip.decompress(raw)))
        self.send_response(_Loki.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("loki_status", [204, 500, None])
def test_bot_run_keeps_trading_whatever_loki_does(tmp_path, loki_status):
    """A real `python -m bot run` with Loki answering 204, 500, or not listening at all."""
    _Loki.bodies = []
    _Loki.status = loki_status or 204
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Loki)
    port = server.server_address[1]
    if loki_status is None:
        server.server_close()  # nothing listens on that port
    else:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "LOKI_URL": f"http://127.0.0.1:{port}",
        "METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        **SECRETS,
    }
    try:
        proc = subprocess.run([sys.executable, "-m", "bot", "run", "--cycles", "150", "--speed", "100000"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        if loki_status is not None:
            server.shutdown()
            server.server_close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    cycles = [json.loads(line) for line in lines if '"cycle ' in line]
    assert len(cycles) == 150
    for secret in SECRETS.values():
        assert secret not in proc.stdout and secret not in proc.stderr
    if loki_status == 204:
        streams = [s for body in _Loki.bodies for s in body["streams"]]
        assert streams and all(set(s["stream"]) == {"service", "account", "level", "env"} for s in streams)
        pushed = sum(len(s["values"]) for s in streams)
        in_cycles = [line for line in lines if json.loads(line)["cycle_id"]]
        assert pushed >= len(in_cycles)  # everything from the first cycle on (start-up lines precede Loki)
        for s in streams:
            stamps = [int(v[0]) for v in s["values"]]
            assert stamps == sorted(stamps)
        for secret in SECRETS.values():
            assert secret not in json.dumps(_Loki.bodies)
