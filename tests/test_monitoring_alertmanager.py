"""Alertmanager: the committed config and the rendered one, checked by Debian's amtool (0.25).

The render script (deploy/render_alertmanager.py) runs at container start; here it runs in-process
with made-up secrets, and amtool judges what it writes.
"""

from __future__ import annotations

import importlib.util
import logging
import stat
import subprocess

import monitoring_helpers as mh
import pytest

ALL_CHANNELS = {
    "TELEGRAM_BOT_TOKEN": "123456:AAH-secret_token",
    "TELEGRAM_CHAT_ID": "-1001234567890",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slacksecret",
    "SLACK_CHANNEL": "#trading-alerts",
    "SMTP_SMARTHOST": "smtp.example.org:587",
    "SMTP_FROM": "tradewatch@example.org",
    "SMTP_TO": "ops@example.org, me@example.org",
    "SMTP_USERNAME": "tradewatch",
    "SMTP_PASSWORD": 'p4ss"with:odd\\chars',
}
SECRETS = ("AAH-secret_token", "slacksecret", 'p4ss"with:odd\\chars')


@pytest.fixture(scope="module")
def render():
    spec = importlib.util.spec_from_file_location("render_alertmanager", mh.RENDER_ALERTMANAGER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_config(path) -> None:
    result = mh.run([mh.amtool(), "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def routes_to(config_path, labels: dict[str, str], receiver: str) -> subprocess.CompletedProcess[str]:
    pairs = [f"{key}={value}" for key, value in labels.items()]
    return mh.run([mh.amtool(), "config", "routes", "test", f"--config.file={config_path}",
                   f"--verify.receivers={receiver}", *pairs])


def test_amtool_accepts_the_committed_config():
    check_config(mh.ALERTMANAGER_CONFIG)


@pytest.mark.parametrize(("severity", "receiver"), [
    ("critical", "critical"), ("warning", "warning"), ("info", "info"), ("", "unrouted"), ("bogus", "unrouted"),
])
def test_routes_by_severity(severity, receiver):
    labels = {"alertname": "DrawdownHigh", "account": "1001"}
    if severity:
        labels["severity"] = severity
    result = routes_to(mh.ALERTMANAGER_CONFIG, labels, receiver)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_routing_test_fails_on_the_wrong_receiver():
    result = routes_to(mh.ALERTMANAGER_CONFIG, {"alertname": "BotDown", "severity": "critical"}, "warning")
    assert result.returncode != 0


def test_every_receiver_keeps_the_alert_sink():
    config = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    for receiver in config["receivers"]:
        if receiver["name"] == "heartbeat":
            continue  # the Watchdog's pings only (tests/test_monitoring_watchdog.py)
        urls = [hook["url"] for hook in receiver.get("webhook_configs", [])]
        assert urls == ["http://exporter:9108/api/v1/alerts"], receiver["name"]
        assert receiver["webhook_configs"][0]["send_resolved"] is True


def test_grouping_and_inhibition_name_real_alerts_and_labels():
    config = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    assert config["route"]["group_by"] == ["alertname", "account"]
    alert_names = {rule.get("alert") for path in mh.prometheus_rule_files() for rule in mh.rules_of(path)}
    bot_down_rules = [r for r in config["inhibit_rules"] if r["source_matchers"] == ['alertname="BotDown"']]
    silenced = set()
    for rule in bot_down_rules:
        (matcher,) = rule["target_matchers"]
        silenced |= set(matcher.split('"')[1].split("|"))
    assert silenced <= alert_names
    assert {"BrokerDisconnected", "BotLoopStalled", "AccountSnapshotStale"} <= silenced
    assert "BotDown" not in silenced


def test_render_without_channels_is_the_committed_config(render):
    base = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    assert render.render(base, {}) == base


def test_render_with_every_channel_passes_amtool_and_keeps_routing(render, tmp_path):
    base = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    config = render.render(base, ALL_CHANNELS)
    path = tmp_path / "alertmanager.yml"
    path.write_text(render.dump(config), encoding="utf-8")
    check_config(path)
    receivers = {r["name"]: r for r in config["receivers"]}
    for name in ("critical", "warning"):
        assert receivers[name]["telegram_configs"] == [
            {"bot_token": "123456:AAH-secret_token", "chat_id": -1001234567890, "send_resolved": True}]
        assert receivers[name]["slack_configs"][0]["channel"] == "#trading-alerts"
        email = receivers[name]["email_configs"][0]
        assert email["to"] == "ops@example.org, me@example.org"
        assert email["auth_password"] == ALL_CHANNELS["SMTP_PASSWORD"]
        assert email["require_tls"] is True
        assert receivers[name]["webhook_configs"] == base["receivers"][0]["webhook_configs"]
    for name in ("info", "unrouted"):
        assert set(receivers[name]) == {"name", "webhook_configs"}
    for severity in ("critical", "warning", "info"):
        result = routes_to(path, {"alertname": "X", "severity": severity}, severity)
        assert result.returncode == 0, result.stdout + result.stderr
    assert base == mh.load_yaml(mh.ALERTMANAGER_CONFIG), "render() must not modify its input"


def test_notify_severities_chooses_the_receivers(render):
    env = {"TELEGRAM_BOT_TOKEN": "1:abc", "TELEGRAM_CHAT_ID": "42", "NOTIFY_SEVERITIES": "critical, info"}
    receivers = {r["name"]: r for r in render.render(mh.load_yaml(mh.ALERTMANAGER_CONFIG), env)["receivers"]}
    assert "telegram_configs" in receivers["critical"]
    assert "telegram_configs" in receivers["info"]
    assert "telegram_configs" not in receivers["warning"]


def test_the_sink_can_be_repointed(render):
    config = render.render(mh.load_yaml(mh.ALERTMANAGER_CONFIG), {}, sink_url="http://127.0.0.1:19108/api/v1/alerts")
    urls = {hook["url"] for r in config["receivers"] for hook in r.get("webhook_configs", [])}
    assert urls == {"http://127.0.0.1:19108/api/v1/alerts"}


@pytest.mark.parametrize(("env", "message"), [
    ({"TELEGRAM_BOT_TOKEN": "123:abc"}, "TELEGRAM_CHAT_ID is required when TELEGRAM_BOT_TOKEN is set"),
    ({"TELEGRAM_BOT_TOKEN": "123:abc", "TELEGRAM_CHAT_ID": "@channel"}, "TELEGRAM_CHAT_ID must be an integer"),
    ({"TELEGRAM_BOT_TOKEN": "not a token", "TELEGRAM_CHAT_ID": "1"}, "TELEGRAM_BOT_TOKEN must look like"),
    ({"SLACK_WEBHOOK_URL": "http://hooks.slack.com/x"}, "SLACK_WEBHOOK_URL must be an https:// URL"),
    ({"SMTP_SMARTHOST": "smtp.example.org", "SMTP_FROM": "a@b.c", "SMTP_TO": "d@e.f"}, "SMTP_SMARTHOST must be host:port"),
    ({"SMTP_SMARTHOST": "smtp.example.org:25", "SMTP_TO": "d@e.f"}, "SMTP_FROM is required"),
    ({"SMTP_SMARTHOST": "smtp.example.org:25", "SMTP_FROM": "a@b.c", "SMTP_TO": "nobody"}, "SMTP_TO must be an e-mail"),
    ({"SMTP_SMARTHOST": "h:25", "SMTP_FROM": "a@b.c", "SMTP_TO": "d@e.f", "SMTP_USERNAME": "u"},
     "SMTP_USERNAME and SMTP_PASSWORD must be set together"),
    ({"SMTP_SMARTHOST": "h:25", "SMTP_FROM": "a@b.c", "SMTP_TO": "d@e.f", "SMTP_REQUIRE_TLS": "maybe"},
     "SMTP_REQUIRE_TLS must be true or false"),
    ({"TELEGRAM_BOT_TOKEN": "1:a", "TELEGRAM_CHAT_ID": "1", "NOTIFY_SEVERITIES": "critical,urgent"},
     "NOTIFY_SEVERITIES must list some of"),
])
def test_bad_settings_give_one_clear_line(render, env, message):
    with pytest.raises(render.RenderError) as caught:
        render.render(mh.load_yaml(mh.ALERTMANAGER_CONFIG), env)
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_cli_writes_a_private_file_and_never_logs_secrets(render, tmp_path, caplog):
    output = tmp_path / "rendered" / "alertmanager.yml"
    argv = ["--source", str(mh.ALERTMANAGER_CONFIG), "--output", str(output)]
    with caplog.at_level(logging.INFO, logger="render_alertmanager"):
        assert render.main(argv, environ=ALL_CHANNELS) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    check_config(output)
    assert "telegram, slack, email" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


def test_cli_refuses_bad_settings_with_exit_2_and_no_secret_in_the_log(render, tmp_path, caplog):
    output = tmp_path / "alertmanager.yml"
    env = {"SLACK_WEBHOOK_URL": "ftp://slacksecret", "TELEGRAM_BOT_TOKEN": "123456:AAH-secret_token"}
    argv = ["--source", str(mh.ALERTMANAGER_CONFIG), "--output", str(output)]
    with caplog.at_level(logging.INFO, logger="render_alertmanager"):
        assert render.main(argv, environ=env) == 2
    assert not output.exists()
    assert "TELEGRAM_CHAT_ID is required" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


def sink_webhooks(config) -> list[dict]:
    return [hook for r in config["receivers"] for hook in r.get("webhook_configs", [])]


def test_every_sink_delivery_carries_the_sink_token(render, tmp_path):
    """The exporter refuses writes without EXPORTER_SINK_TOKEN: Alertmanager reads it from a file
    (http_config.authorization.credentials_file, Alertmanager >= 0.22), never from this config."""
    committed = mh.load_yaml(mh.ALERTMANAGER_CONFIG)
    for hook in sink_webhooks(committed):
        assert hook["http_config"] == {"authorization": {"type": "Bearer",
                                                         "credentials_file": "/run/secrets/exporter_sink_token"}}
    config = render.render(committed, {}, sink_url="http://127.0.0.1:19108/api/v1/alerts",
                           sink_token_file=str(tmp_path / "sink_token"))
    assert {hook["http_config"]["authorization"]["credentials_file"] for hook in sink_webhooks(config)} == {
        str(tmp_path / "sink_token")}
    path = tmp_path / "alertmanager.yml"
    path.write_text(render.dump(config), encoding="utf-8")
    check_config(path)
    with pytest.raises(render.RenderError, match="ALERT_SINK_TOKEN_FILE must be an absolute path"):
        render.render(committed, {}, sink_token_file="relative/token")
