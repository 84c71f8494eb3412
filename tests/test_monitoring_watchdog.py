"""The dead man's switch: Watchdog (prometheus/rules/watchdog.yml) always fires, Alertmanager routes
it to the `heartbeat` receiver only, and deploy/render_alertmanager.py points that receiver at the
HEARTBEAT_URL of .env. Checked with Debian's amtool on the committed and the rendered configs."""

from __future__ import annotations

import importlib.util
import re

import monitoring_helpers as mh
import pytest

HEARTBEAT = "https://hc-ping.example/1b2c3d4e-0000-4000-8000-123456789abc"


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render_alertmanager_watchdog", mh.RENDER_ALERTMANAGER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def route(config_path, receiver: str, **labels: str):
    pairs = [f"{key}={value}" for key, value in labels.items()]
    return mh.run([mh.amtool(), "config", "routes", "test", f"--config.file={config_path}",
                   f"--verify.receivers={receiver}", *pairs])


def test_watchdog_always_fires_and_is_routed_to_the_heartbeat_only():
    (rule,) = [r for p in mh.prometheus_rule_files() for r in mh.rules_of(p) if r.get("alert") == "Watchdog"]
    assert rule["expr"].strip() == "vector(1)" and "for" not in rule
    result = route(mh.ALERTMANAGER_CONFIG, "heartbeat", alertname="Watchdog", severity=rule["labels"]["severity"])
    assert result.returncode == 0 and result.stdout.strip() == "heartbeat", result.stdout + result.stderr
    # ... and nothing else reaches the heartbeat receiver (a real alert must still reach people).
    assert route(mh.ALERTMANAGER_CONFIG, "heartbeat", alertname="BotDown", severity="critical").returncode != 0
    assert route(mh.ALERTMANAGER_CONFIG, "info", alertname="Watchdog", severity="info").returncode != 0


def test_the_heartbeat_is_repeated_often_and_never_stored_in_the_alerts_table():
    config = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    (heartbeat_route,) = [r for r in config["route"]["routes"] if r["receiver"] == "heartbeat"]
    assert config["route"]["routes"][0] is heartbeat_route, "first, so no severity route takes it"
    minutes = int(re.fullmatch(r"(\d+)m", heartbeat_route["repeat_interval"]).group(1))
    assert minutes <= 5, "a check service with a 10-15 min grace period must get a ping well within it"
    (receiver,) = [r for r in config["receivers"] if r["name"] == "heartbeat"]
    assert receiver == {"name": "heartbeat"}, "without HEARTBEAT_URL the pings go nowhere (not to the sink)"


def test_heartbeat_url_from_env_is_rendered_and_passes_amtool(render, tmp_path):
    base = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    config = render.render(base, {"HEARTBEAT_URL": HEARTBEAT})
    (receiver,) = [r for r in config["receivers"] if r["name"] == "heartbeat"]
    assert receiver["webhook_configs"] == [{"url": HEARTBEAT, "send_resolved": False, "max_alerts": 1}]
    assert config["route"] == base["route"], "routing stays as committed"
    path = tmp_path / "alertmanager.yml"
    path.write_text(render.dump(config), encoding="utf-8")
    check = mh.run([mh.amtool(), "check-config", str(path)])
    assert check.returncode == 0, check.stdout + check.stderr
    result = route(path, "heartbeat", alertname="Watchdog", severity="info")
    assert result.returncode == 0 and result.stdout.strip() == "heartbeat"


@pytest.mark.parametrize("bad", ["ftp://hc-ping.example/x", "hc-ping.example/x", "https://hc ping.example/x"])
def test_a_bad_heartbeat_url_is_one_clear_line_and_exit_2(render, tmp_path, caplog, bad):
    output = tmp_path / "am.yml"
    code = render.main(["--source", str(mh.ALERTMANAGER_CONFIG), "--output", str(output)],
                       environ={"HEARTBEAT_URL": bad})
    assert code == 2 and not output.exists()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "cannot render the Alertmanager config: HEARTBEAT_URL must be an http:// or https:// URL"]


def test_readme_says_why_the_dead_mans_switch_matters():
    readme = (mh.REPO / "README.md").read_text(encoding="utf-8")
    assert "HEARTBEAT_URL" in readme and "Watchdog" in readme
    assert re.search(r"silent\s+stack\s+looks\s+(exactly\s+)?like\s+a\s+healthy\s+one", readme)
