"""docker-compose.observers.yml: two watch-only observers beside the trading bot, parsed by a real
compose implementation (the helpers of test_monitoring_compose.py)."""

from __future__ import annotations

import monitoring_helpers as mh
import yaml
from test_monitoring_compose import dummy_secrets, empty_env_file, secrets_dir  # noqa: F401 - fixtures

OVERRIDE = mh.REPO / "docker-compose.observers.yml"
OBSERVER_ENV = {"OBSERVER_A_LOGIN": "5001", "OBSERVER_B_LOGIN": "5002", "OBSERVER_A_BRIDGE_TOKEN": "dummy-a",
                "OBSERVER_B_BRIDGE_TOKEN": "dummy-b"}


def _config(env_file, secret_files, **extra):
    binary = mh.find_tool("docker-compose", "apt-get install docker-compose (Debian), or make sysdeps")
    env = {"PATH": "/usr/bin:/bin", **dummy_secrets(), "TRADEWATCH_SECRETS_DIR": str(secret_files), **extra}
    return mh.run([binary, "--project-directory", str(mh.REPO), "--env-file", str(env_file), "-f", str(mh.COMPOSE_FILE),
                   "-f", str(OVERRIDE), "config"], cwd=mh.REPO, env=env)


def test_two_observers_and_one_trading_bot(empty_env_file, secrets_dir):  # noqa: F811
    result = _config(empty_env_file, secrets_dir, **OBSERVER_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    bots = {name: s for name, s in services.items() if s.get("command") == ["python", "-m", "bot", "run"]}
    assert set(bots) == {"bot", "observer-a", "observer-b"}
    assert bots["bot"]["environment"].get("TRADING", "on") == "on"  # the trading bot trades
    for name, login in (("observer-a", "5001"), ("observer-b", "5002")):
        env = bots[name]["environment"]
        assert env["TRADING"] == "off" and env["MT5_LOGIN"] == login
        assert env["MT5_HOST"] != bots["bot"]["environment"]["MT5_HOST"]  # its own terminal
        assert env["METRICS_PORT"] == "8000"  # scraped as job "bot" like the trading bot
        assert bots[name]["volumes"] != bots["bot"]["volumes"]  # its own queue, spool and backlog files
    targets = yaml.safe_load((mh.REPO / "prometheus/targets/observers.yml.example").read_text())
    assert targets == [{"targets": ["observer-a:8000", "observer-b:8000"]}]
    config = mh.load_yaml(mh.PROMETHEUS_CONFIG)
    bot_job = next(j for j in config["scrape_configs"] if j["job_name"] == "bot")
    assert bot_job["file_sd_configs"] == [{"files": ["targets/bots-*.yml"]}]
    assert not list((mh.REPO / "prometheus/targets").glob("bots-*.yml"))  # none scraped by default


def test_an_observer_without_its_account_is_refused(empty_env_file, secrets_dir):  # noqa: F811
    env = {k: v for k, v in OBSERVER_ENV.items() if k != "OBSERVER_B_LOGIN"}
    result = _config(empty_env_file, secrets_dir, **env)
    assert result.returncode != 0
    assert "set OBSERVER_B_LOGIN in .env" in result.stdout + result.stderr
