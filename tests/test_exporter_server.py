"""`python -m exporter` as a real process (waitress) on SQLite and PostgreSQL: it serves /healthz,
/metrics, the API and the alert sink on a free port, stops cleanly on SIGTERM, never logs the
database password, and refuses bad settings with exit status 2 and one line naming the setting."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from test_analytics_reference import load, random_book

from db import Repository, init_db

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30
SINK_TOKEN = "sink-token-of-the-server-test-42"


def exporter_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EXPORTER_PORT", "EXPORTER_HOST",
                                                             "LOG_LEVEL", "LOKI_URL") and not k.startswith("EXPORTER_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(settings)
    return env


class Exporter:
    """A running `python -m exporter`; its stdout (JSON log lines) is collected by a thread."""

    def __init__(self, url: str, cwd: Path) -> None:
        token_file = cwd / "sink.token"
        token_file.write_text(SINK_TOKEN + "\n", encoding="utf-8")  # a trailing newline, as `echo` writes it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exporter"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=exporter_env(DATABASE_URL=url, EXPORTER_PORT="0", EXPORTER_HOST="127.0.0.1", LOG_LEVEL="INFO",
                             EXPORTER_SINK_TOKEN_FILE=str(token_file)),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = self._wait_for_port()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _wait_for_port(self) -> int:
        while True:
            try:
                line = self.lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                self.stop()
                raise AssertionError(f"the exporter did not start: {''.join(self.output)}") from None
            record = json.loads(line)
            if "port" in record:
                return record["port"]

    def get(self, path: str, data: bytes | None = None, token: str | None = SINK_TOKEN) -> tuple[int, Any, bytes]:
        headers = {"Content-Type": "application/json"} if data else {}
        if data and token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = init_db(url)
    load(Repository(database), random_book(seed=1, accounts={"1001": "1000.00"}, trades=25, left_open=2))
    database.dispose()
    return url


def test_the_exporter_process_serves_and_stops_cleanly(url, tmp_path):
    exporter = Exporter(url, tmp_path)
    try:
        status, headers, body = exporter.get("/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert headers["Server"] == "tradewatch-exporter"  # waitress, not Flask's development server
        status, headers, body = exporter.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
        names = {family.name for family in text_string_to_metric_families(body.decode())}
        assert {"tradewatch_realized_profit", "tradewatch_trades_closed", "tradewatch_drawdown_ratio"} <= names
        status, _, body = exporter.get("/api/v1/performance/symbols?account=1001")
        assert status == 200 and json.loads(body)["items"]
        status, _, body = exporter.get("/api/v1/performance/time?account=1001&bucket=fortnight")
        assert status == 400 and json.loads(body)["parameter"] == "bucket"
        payload = {"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "ExporterTest", "severity": "info"}, "annotations": {},
             "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123"}]}
        for token in (None, "x" * 32):
            status, headers, body = exporter.get("/api/v1/alerts", data=json.dumps(payload).encode(), token=token)
            assert status == 401 and json.loads(body)["parameter"] == "Authorization"
            assert headers["WWW-Authenticate"].startswith("Bearer")
        for _ in range(2):
            status, _, body = exporter.get("/api/v1/alerts", data=json.dumps(payload).encode())
            assert status == 200, body
        status, _, body = exporter.get("/api/v1/alerts")
        assert [a["fingerprint"] for a in json.loads(body)["items"]] == ["abc123"]
    finally:
        assert exporter.stop() == 0
    log = "".join(exporter.output)
    assert '"message": "exporter stopped"' in log
    password = make_url(url).password
    if password:
        assert password not in log
    assert SINK_TOKEN not in log and '"alert_sink": "on"' in log


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"EXPORTER_PORT": "http"}, "EXPORTER_PORT: must be a port number"),
        ({"EXPORTER_PORT": "70000"}, "EXPORTER_PORT: must be a port number"),
        ({"EXPORTER_HOST": "not a host"}, "EXPORTER_HOST: must be"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL: must be one of"),
        ({"LOKI_URL": "loki:3100"}, "LOKI_URL: must be a URL starting with http"),
        ({"DATABASE_URL": "mysql://root:hunter2@db/x"}, "DATABASE_URL: unsupported database backend 'mysql'"),
        ({"EXPORTER_SINK_TOKEN": "hunter2"}, "EXPORTER_SINK_TOKEN must be 16 to 512 characters"),
        ({"EXPORTER_API_TOKEN": "hunter2 hunter2 hunter2"}, "EXPORTER_API_TOKEN must be 16 to 512 characters"),
        ({"EXPORTER_SINK_TOKEN_FILE": "/nonexistent/token"}, "EXPORTER_SINK_TOKEN_FILE: cannot read"),
        ({"EXPORTER_SINK_TOKEN_FILE": "/dev/null"}, "EXPORTER_SINK_TOKEN_FILE: '/dev/null' is empty"),
        ({"EXPORTER_SINK_TOKEN_FILE": "/dev/null", "EXPORTER_SINK_TOKEN": "a" * 20}, "not both"),
    ],
)
def test_bad_settings_exit_2_with_one_line_naming_them(settings, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "exporter"], cwd=tmp_path, env=exporter_env(**settings),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "hunter2" not in result.stderr
