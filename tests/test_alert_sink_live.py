"""A real Alertmanager (Debian's 0.25) delivers to the exporter's token-guarded alert sink.

The committed alertmanager.yml rendered as `make stack` renders it (deploy/render_alertmanager.py
with --sink-url and --sink-token-file), route timings shortened; an alert posted to Alertmanager's
API must arrive in the `alerts` table, which proves Alertmanager sends the bearer token from
`http_config.authorization.credentials_file`.  With a wrong token file nothing is stored and the
refusals are counted.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
import urllib.request
from datetime import UTC, datetime

import monitoring_helpers as mh
import pytest
import yaml
from sqlalchemy import select

from bot.telemetry.http_server import EXPORTER_LIMITS, BackgroundServer
from db import init_db
from db.models import AlertModel
from db.pgcluster import free_port
from exporter.app import create_app

TOKEN = "live-sink-token-0123456789abcdef"
WAIT = 40.0



def load_render():
    spec = importlib.util.spec_from_file_location("render_alertmanager", mh.RENDER_ALERTMANAGER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stored(database) -> list:
    table = AlertModel.__table__
    with database.engine.connect() as connection:
        return connection.execute(select(table.c.alertname, table.c.status)).all()


def start_alertmanager(tmp_path, sink_url: str, token_file) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "prometheus-alertmanager is not installed: make sysdeps"
    render = load_render()
    config = render.render(mh.load_yaml(mh.ALERTMANAGER_CONFIG), {}, sink_url=sink_url,
                           sink_token_file=str(token_file))
    for route in [config["route"], *config["route"]["routes"]]:
        route.update(group_wait="1s", group_interval="1s")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen([binary, f"--config.file={path}", f"--storage.path={tmp_path / 'am-data'}",
                                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "am.log", "w"))  # noqa: SIM115
    return process, port


def post_alert(port: int, name: str) -> None:
    body = json.dumps([{"labels": {"alertname": name, "severity": "critical", "account": "1001"},
                        "annotations": {"summary": "live"},
                        "startsAt": datetime.now(UTC).isoformat()}]).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/alerts", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize("right_token", [True, False], ids=["right-token", "wrong-token"])
def test_alertmanager_delivers_with_the_sink_token(tmp_path, right_token):
    database = init_db(f"sqlite:///{tmp_path}/store.db")
    exporter = BackgroundServer(create_app(database, sink_token=TOKEN), "127.0.0.1", 0, EXPORTER_LIMITS,
                                ident="tradewatch-exporter", thread_name="exporter-http")
    exporter.start()
    token_file = tmp_path / "sink_token"
    token_file.write_text((TOKEN if right_token else "another-token-0123456789abcdef") + "\n", encoding="utf-8")
    process, port = start_alertmanager(tmp_path, f"http://127.0.0.1:{exporter.port}/api/v1/alerts", token_file)
    metrics = f"http://127.0.0.1:{exporter.port}/metrics"
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/-/ready"), "Alertmanager ready")
        post_alert(port, "LiveSinkTest")
        if right_token:
            wait_for(lambda: stored(database) == [("LiveSinkTest", "firing")], "the alert in the sink table")
        else:
            unauthorized = 'tradewatch_exporter_unauthorized_requests_total{endpoint="sink"}'

            def refused() -> bool:
                text = urllib.request.urlopen(metrics, timeout=5).read().decode()
                return any(line.startswith(unauthorized) and float(line.split()[-1]) >= 1
                           for line in text.splitlines())

            wait_for(refused, "Alertmanager's delivery to be refused")
            assert stored(database) == []
    finally:
        process.terminate()
        process.wait(15)
        exporter.stop()
        database.dispose()
