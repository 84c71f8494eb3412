"""Settings: defaults, parsing, one-line errors naming the setting, secrets masked."""

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, env_example

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_valid():
    s = Settings.from_env({}, dotenv_path=None)
    assert s.mt5_mode == "sim"
    assert s.cycle_seconds == 30
    assert s.risk_per_trade == Decimal("1.0")
    assert "EURUSD" in s.symbols and "XAUUSD" in s.symbols
    assert s.database_url is None


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"RISK_PER_TRADE": "abc"}, "RISK_PER_TRADE"),
        ({"RISK_PER_TRADE": "50"}, "RISK_PER_TRADE"),
        ({"MT5_MODE": "wine"}, "MT5_MODE"),
        ({"MT5_PORT": "70000"}, "MT5_PORT"),
        ({"CYCLE_SECONDS": "-1"}, "CYCLE_SECONDS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"LOKI_URL": "loki:3100"}, "LOKI_URL"),
        ({"SYMBOLS": " , "}, "SYMBOLS"),
        ({"SYMBOL_SUFFIX": ". m"}, "SYMBOL_SUFFIX"),
        ({"SYMBOL_SUFFIX": ".toolongsuffix"}, "SYMBOL_SUFFIX"),
        ({"MT5_MODE": "bridge"}, "MT5_BRIDGE_TOKEN"),
        ({"MT5_MODE": "bridge", "MT5_BRIDGE_TOKEN": "t" * 20}, "MT5_BRIDGE_CA_FILE"),
        ({"MT5_MODE": "bridge", "MT5_BRIDGE_TOKEN": "t" * 20, "MT5_BRIDGE_CA_FILE": "/nonexistent/ca.pem"},
         "MT5_BRIDGE_CA_FILE"),
        ({"MT5_BRIDGE_FINGERPRINT": "AB:CD"}, "MT5_BRIDGE_FINGERPRINT"),
        ({"MT5_MODE": "bridge", "MT5_BRIDGE_TOKEN": "t" * 20, "MT5_BRIDGE_INSECURE": "true",
          "MT5_BRIDGE_FINGERPRINT": "ab" * 32}, "MT5_BRIDGE_INSECURE"),
        ({"MT5_BRIDGE_INSECURE": "maybe"}, "MT5_BRIDGE_INSECURE"),
    ],
)
def test_invalid_setting_names_itself(env, setting):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, dotenv_path=None)
    message = str(info.value)
    assert message.startswith(setting + ":")
    assert "\n" not in message


def test_bridge_tls_settings_are_normalised():
    base = {"MT5_MODE": "bridge", "MT5_BRIDGE_TOKEN": "t" * 20}
    pinned = Settings.from_env({**base, "MT5_BRIDGE_FINGERPRINT": " sha256:" + "ab" * 32 + "\n"}, dotenv_path=None)
    assert pinned.mt5_bridge_fingerprint == ":".join(["AB"] * 32) and not pinned.mt5_bridge_insecure
    plain = Settings.from_env({**base, "MT5_BRIDGE_INSECURE": "true"}, dotenv_path=None)
    assert plain.mt5_bridge_insecure and plain.mt5_bridge_fingerprint is None


def test_dotenv_fills_only_unset(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("CYCLE_SECONDS=5\nSYMBOLS=eurusd\n")
    s = Settings.from_env({"CYCLE_SECONDS": "7"}, dotenv_path=dotenv)
    assert s.cycle_seconds == 7
    assert s.symbols == ("eurusd",)  # as written: brokers' names are case-sensitive
    assert Settings.from_env({"SYMBOLS": "EURUSDm,XAUUSD.a", "SYMBOL_SUFFIX": ".m"},
                             dotenv_path=None).symbols == ("EURUSDm", "XAUUSD.a")


def test_secrets_are_masked_and_listed():
    s = Settings.from_env(
        {"MT5_PASSWORD": "hunter22", "DATABASE_URL": "postgresql://tw:s3cretpw@db/tw", "MT5_BRIDGE_TOKEN": "tok-123456"},
        dotenv_path=None,
    )
    shown = s.describe()
    assert shown["MT5_PASSWORD"] == "***" and shown["MT5_BRIDGE_TOKEN"] == "***"
    assert "s3cretpw" not in str(shown)
    assert {"hunter22", "s3cretpw", "tok-123456"} <= set(s.secrets())


def test_env_example_lists_every_setting():
    import re

    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*(\w+)=", text, re.M))
    expected = set(re.findall(r"^#\s*(\w+)=", env_example(), re.M))
    assert len(expected) > 30
    assert expected <= documented, expected - documented


def test_cli_exits_2_with_one_line_on_bad_setting(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check-config"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "RISK_PER_TRADE": "lots", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "RISK_PER_TRADE" in lines[0]


def test_cli_check_config_ok(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "check-config"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MT5_PASSWORD": "pw-secret-9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "pw-secret-9" not in proc.stdout
    assert '"MT5_MODE": "sim"' in proc.stdout
