"""AlertmanagerClient against a real Alertmanager (Debian's binary) and a scripted fake."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.telemetry.alerts import AlertmanagerClient
from db.pgcluster import free_port

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
LABELS = {"account": "5550123", "service": "bot"}



def wait_for(condition, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    return condition()


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory):
    """A real Alertmanager on free ports, clustering off; stopped at the end."""
    binary = shutil.which(ALERTMANAGER) or shutil.which("prometheus-alertmanager")
    assert binary, f"{ALERTMANAGER} is missing: apt-get install prometheus-alertmanager (make sysdeps)"
    workdir = tmp_path_factory.mktemp("alertmanager")
    config = workdir / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    log_file = (workdir / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            assert process.poll() is None, (workdir / "alertmanager.log").read_text()
            return False

    try:
        assert wait_for(ready, timeout=20), "Alertmanager did not become ready"
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()


def active_alerts(url, alertname):
    with urllib.request.urlopen(f"{url}/api/v2/alerts?active=true&silenced=false&inhibited=false", timeout=5) as r:
        return [a for a in json.load(r) if a["labels"].get("alertname") == alertname]


@pytest.fixture
def client_factory():
    clients = []

    def make(url, **kwargs):
        client = AlertmanagerClient(url, LABELS, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=2)


def test_fire_then_resolve_in_real_alertmanager(alertmanager, client_factory):
    client = client_factory(alertmanager, timeout=2)
    started = time.perf_counter()
    client.fire("BrokerCircuitOpen", "critical", "Broker circuit open",
                "order_send failed 5 times in a row", breaker="broker")
    assert time.perf_counter() - started < 0.05  # the caller never waits on the network

    shown = wait_for(lambda: active_alerts(alertmanager, "BrokerCircuitOpen"))
    assert len(shown) == 1
    alert = shown[0]
    assert alert["labels"] == {"alertname": "BrokerCircuitOpen", "severity": "critical", "breaker": "broker",
                               "account": "5550123", "service": "bot"}
    assert alert["annotations"] == {"summary": "Broker circuit open",
                                    "description": "order_send failed 5 times in a row"}
    assert alert["status"]["state"] == "active"
    assert client.firing() == [alert["labels"]]

    client.resolve("BrokerCircuitOpen", breaker="broker")
    assert wait_for(lambda: not active_alerts(alertmanager, "BrokerCircuitOpen"))
    assert client.firing() == []


def test_other_alerts_stay_active_when_one_is_resolved(alertmanager, client_factory):
    client = client_factory(alertmanager, timeout=2)
    client.fire("LokiDown", "warning", "s", "d", target="a")
    client.fire("LokiDown", "warning", "s", "d", target="b")
    assert wait_for(lambda: len(active_alerts(alertmanager, "LokiDown")) == 2)
    client.resolve("LokiDown", target="a")
    assert wait_for(lambda: [a["labels"]["target"] for a in active_alerts(alertmanager, "LokiDown")] == ["b"])
    client.resolve("LokiDown", target="b")
    assert wait_for(lambda: not active_alerts(alertmanager, "LokiDown"))


class RecordingAlertmanager:
    """Records every POSTed alert list; answers ``status``."""

    def __init__(self, status=200, port=0):
        self.status = status
        self.posts = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                owner.posts.append((self.path, json.loads(body), time.monotonic()))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    fake = RecordingAlertmanager()
    yield fake
    fake.close()


def test_firing_alerts_are_resent_with_their_original_start(recorder, client_factory):
    client = client_factory(recorder.url, resend_interval=0.2)
    client.fire("StaleQuotes", "warning", "No ticks", "EURUSD quiet for 5 min", symbol="EURUSD")
    client.fire("StaleQuotes", "warning", "No ticks", "EURUSD quiet for 5 min", symbol="EURUSD")  # no-op
    assert wait_for(lambda: len(recorder.posts) >= 3, timeout=3)
    paths = {path for path, _, _ in recorder.posts}
    assert paths == {"/api/v2/alerts"}
    alerts = [alert for _, batch, _ in recorder.posts for alert in batch]
    assert {a["startsAt"] for a in alerts} == {alerts[0]["startsAt"]}
    assert all("endsAt" not in a for a in alerts)
    assert recorder.posts[1][2] - recorder.posts[0][2] >= 0.15  # resent on the interval, not in a burst

    client.resolve("StaleQuotes", symbol="EURUSD")
    assert wait_for(lambda: "endsAt" in recorder.posts[-1][1][0], timeout=3)
    resolved = recorder.posts[-1][1][0]
    assert resolved["startsAt"] == alerts[0]["startsAt"] and resolved["endsAt"] >= resolved["startsAt"]
    count = len(recorder.posts)
    time.sleep(0.5)
    assert len(recorder.posts) == count  # nothing firing: nothing re-sent


def test_severity_change_resolves_the_old_alert(recorder, client_factory):
    client = client_factory(recorder.url)
    client.fire("Drawdown", "warning", "s", "d")
    assert wait_for(lambda: len(recorder.posts) == 1)
    client.fire("Drawdown", "critical", "s", "d")
    assert wait_for(lambda: len(recorder.posts) == 2)
    by_severity = {a["labels"]["severity"]: a for a in recorder.posts[1][1]}
    assert "endsAt" in by_severity["warning"] and "endsAt" not in by_severity["critical"]


def test_resolve_of_unknown_alert_without_severity_sends_nothing(recorder, client_factory):
    client = client_factory(recorder.url)
    client.resolve("NeverFired")
    client.resolve("FiredBeforeRestart", severity="critical")
    assert wait_for(lambda: len(recorder.posts) == 1)
    time.sleep(0.2)
    [alert] = recorder.posts[0][1]
    assert alert["labels"]["alertname"] == "FiredBeforeRestart" and alert["endsAt"] >= alert["startsAt"]


def test_unreachable_alertmanager_never_raises_and_logs_warning(client_factory, caplog):
    port = free_port()
    client = client_factory(f"http://127.0.0.1:{port}", timeout=0.5, min_backoff=0.05, max_backoff=0.1)
    with caplog.at_level(logging.DEBUG, logger="bot.telemetry.alerts"):
        started = time.perf_counter()
        for i in range(100):
            client.fire("Flood", "warning", "s", "d", n=i)
        assert time.perf_counter() - started < 0.1
        assert wait_for(lambda: any(r.levelno == logging.WARNING for r in caplog.records), timeout=3)
        time.sleep(0.3)  # several retries by now
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "will retry" in warnings[0].getMessage()  # not one per retry
    started = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - started < 1.0


def test_alerts_are_delivered_once_alertmanager_comes_back(client_factory):
    port = free_port()
    client = client_factory(f"http://127.0.0.1:{port}", timeout=0.5, min_backoff=0.05, max_backoff=0.2)
    client.fire("BotRestarted", "info", "s", "d")
    time.sleep(0.3)  # failing meanwhile
    recorder = RecordingAlertmanager(port=port)
    try:
        assert wait_for(lambda: recorder.posts, timeout=3)
        assert recorder.posts[0][1][0]["labels"]["alertname"] == "BotRestarted"
    finally:
        recorder.close()


@pytest.mark.parametrize("labels", [{"bad-name": "x"}, {"ok": ""}])
def test_bad_labels_are_clear_errors(labels):
    with pytest.raises(ValueError, match="alert label"):
        AlertmanagerClient("http://127.0.0.1:9093", {**LABELS, **labels})
