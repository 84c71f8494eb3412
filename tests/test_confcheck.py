"""confcheck, the settings vocabulary: what each parser takes and refuses, and how errors read."""

import socket
import subprocess
import sys
from decimal import Decimal

import pytest

import confcheck
from bot.config import ConfigError
from bot.engine.symbols import check_offered
from bot.gateway import GatewayError


@pytest.mark.parametrize(
    ("parse", "raw", "expected"),
    [
        (confcheck.port(), "18812", 18812),
        (confcheck.port(), " 1 ", 1),
        (confcheck.port(allow_zero=True), "0", 0),
        (confcheck.integer(-5, 5), "-5", -5),
        (confcheck.integer(0, 10), "+7", 7),
        (confcheck.number(0, 10), "2.5", 2.5),
        (confcheck.number(0, 10), ".5", 0.5),
        (confcheck.number(0, 1e6), "1e3", 1000.0),
        (confcheck.decimal("0.01", "10"), "1.10", Decimal("1.10")),
        (confcheck.boolean, "Yes", True),
        (confcheck.boolean, "off", False),
        (confcheck.choice(("M1", "H1"), upper=True), "h1", "H1"),
        (confcheck.names(), "EURUSD, XAUUSD.m", ("EURUSD", "XAUUSD.m")),
        (confcheck.host, "mt5.example.com", "mt5.example.com"),
        (confcheck.host, "::1", "::1"),
        (confcheck.url(), "https://loki.example.com:3100/prefix/", "https://loki.example.com:3100/prefix"),
        (confcheck.url(), "http://user:pw@[::1]:3100", "http://user:pw@[::1]:3100"),
        (confcheck.optional(confcheck.url()), "  ", None),
        (confcheck.label(), "prod-eu.1", "prod-eu.1"),
    ],
)
def test_accepted_values(parse, raw, expected):
    assert parse(raw) == expected


@pytest.mark.parametrize(
    ("parse", "raw", "reason"),
    [
        (confcheck.port(), "1_000", "ASCII digits"),
        (confcheck.port(), "١٢", "ASCII digits"),
        (confcheck.port(), "²", "ASCII digits"),
        (confcheck.port(), "65536", "1 to 65535"),
        (confcheck.port(), "0", "1 to 65535"),
        (confcheck.integer(1, 10), "1.0", "whole number"),
        (confcheck.integer(1, 10), "0", "at least 1"),
        (confcheck.integer(1, 10), "11", "at most 10"),
        (confcheck.number(0, 10), "nan", "ASCII digits"),
        (confcheck.number(0, 10), "1e999", "finite"),
        (confcheck.number(0, 10, above=True), "0", "above 0"),
        (confcheck.decimal("0", "1"), "Infinity", "ASCII digits"),
        (confcheck.boolean, "maybe", "expected one of"),
        (confcheck.boolean, "", "expected one of"),
        (confcheck.choice(("a", "b")), "c", "one of a, b"),
        (confcheck.names(), "A,B C", "invalid name"),
        (confcheck.names(max_items=2), "A,B,C", "at most 2"),
        (confcheck.host, "", "empty"),
        (confcheck.host, "under_score.example", "host name"),
        (confcheck.host, "1.2.3.999", "host name"),
        (confcheck.url(), "http://", "no host"),
        (confcheck.url(), "http://h:99999", "1 to 65535"),
        (confcheck.url(), "http://h:", "1 to 65535"),
        (confcheck.url(), "mailto:x@y", "http://"),
        (confcheck.url(), "http:/h", "http://"),
        (confcheck.url(), "http://h/?q", "query"),
        (confcheck.text(), "a\tb", "control character"),
        (confcheck.text(), "a\u2028b", "control character"),
        (confcheck.text(10), "x" * 11, "at most 10"),
        (confcheck.text(100, max_bytes=4), "ééé", "bytes"),
        (confcheck.text(required=True), "  ", "empty"),
    ],
)
def test_refused_values_say_why(parse, raw, reason):
    with pytest.raises(ValueError, match=reason):
        parse(raw)


def test_read_names_the_setting_shows_the_value_once_and_never_a_secret():
    with pytest.raises(confcheck.SettingError) as info:
        confcheck.read("MT5_PORT", "1_000", confcheck.port())
    assert str(info.value) == "MT5_PORT: must be a port number from 1 to 65535 in ASCII digits, got '1_000'"
    assert info.value.setting == "MT5_PORT"
    with pytest.raises(confcheck.SettingError) as info:
        confcheck.read("TOKEN", "s3cret\nx", confcheck.text(), secret=True)
    assert "s3cret" not in str(info.value) and str(info.value).startswith("TOKEN: contains a control character")


def test_shown_values_are_one_line_short_and_without_url_credentials():
    assert confcheck.shown("a\nb") == "'a\\nb'"
    assert confcheck.shown("http://user:pw@loki:3100") == "'http://***@loki:3100'"
    long = confcheck.shown("x" * 2000)
    assert len(long) < 80 and "2000 characters" in long


def test_bind_address_resolves_and_binds():
    assert confcheck.bind_address("127.0.0.1") == "127.0.0.1"
    assert confcheck.bind_address("localhost") == "localhost"
    assert confcheck.bind_address("0.0.0.0") == "0.0.0.0"
    with pytest.raises(ValueError, match="every interface"):
        confcheck.bind_address("")
    with pytest.raises(ValueError, match="not an address of this machine"):
        confcheck.bind_address("192.0.2.1")  # TEST-NET-1: never local


def test_free_to_listen_refuses_only_a_live_listener():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with pytest.raises(ValueError, match=f"port {port} on 127.0.0.1 is already in use"):
            confcheck.free_to_listen("127.0.0.1", port)
    confcheck.free_to_listen("127.0.0.1", port)  # closed again: free
    confcheck.free_to_listen("127.0.0.1", 0)


def test_writable_file_needs_an_existing_writable_folder(tmp_path):
    assert confcheck.writable_file(str(tmp_path / "new.db")) == tmp_path / "new.db"
    (tmp_path / "old.db").write_bytes(b"x")
    assert confcheck.writable_file(str(tmp_path / "old.db")) == tmp_path / "old.db"
    assert (tmp_path / "old.db").read_bytes() == b"x"  # probing does not touch it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db"]  # and leaves nothing behind
    with pytest.raises(ValueError, match="does not exist"):
        confcheck.writable_file(str(tmp_path / "no" / "x.db"))
    with pytest.raises(ValueError, match="is a folder"):
        confcheck.writable_file(str(tmp_path))


def test_native_terminal_needs_windows_and_the_package():
    with pytest.raises(ValueError, match="needs Windows"):
        confcheck.native_terminal("linux")
    with pytest.raises(ValueError, match="MetaTrader5 package, which is not importable"):
        confcheck.native_terminal("win32")  # the package is not installed here


def test_one_line_parser_errors_are_one_line(capsys):
    parser = confcheck.OneLineParser(prog="tool")
    parser.add_argument("--port", type=confcheck.arg(confcheck.port()))
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--port", "70000"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tool: error: argument --port: must be a port number")


def test_confcheck_imports_only_the_standard_library():
    """It ships beside mt5bridge/ to a Windows Python that has nothing else."""
    code = (
        "import sys, confcheck\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "sys.stdout.write(','.join(sorted(t for t in tops if t not in sys.stdlib_module_names and t[0] != '_')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == "confcheck"


# --- symbols against the terminal ------------------------------------------------------------------


def test_an_unknown_symbol_is_a_config_error_with_the_closest_names():
    refused = GatewayError("symbol_info failed")
    with pytest.raises(ConfigError, match=r"^SYMBOLS: EURUSDD is not offered by the terminal \(closest: EURUSD"):
        check_offered("EURUSDD", lambda: ["EURUSD", "GBPUSD", "XAUUSD"], refused)
    with pytest.raises(ConfigError, match="it offers EURUSD, GBPUSD"):
        check_offered("ZZZZ", lambda: ["EURUSD", "GBPUSD"], refused)


def test_a_listed_symbol_or_an_unlistable_terminal_is_the_original_failure():
    refused = GatewayError("symbol_info failed: timeout")
    with pytest.raises(GatewayError) as info:
        check_offered("EURUSD", lambda: ["EURUSD"], refused)
    assert info.value is refused
    with pytest.raises(GatewayError) as info:
        check_offered("EURUSD", lambda: None, refused)
    assert info.value is refused

    def broken():
        raise GatewayError("symbols_get failed")

    with pytest.raises(GatewayError) as info:
        check_offered("EURUSD", broken, refused)
    assert info.value is refused


def test_an_unknown_symbol_found_after_a_late_first_connect_stops_the_loop(tmp_path, monkeypatch):
    """Terminal away at start, then reachable: the first cycle that starts the engine stops the bot."""
    from bot.app import BotApp
    from bot.config import Settings
    from bot.gateway import BrokerUnavailable

    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "METRICS_PORT": "0",
                                  "METRICS_HOST": "127.0.0.1", "SYMBOLS": "EURUSD,EURUSDD",
                                  "LOG_LEVEL": "WARNING"}, dotenv_path=None)
    app = BotApp(settings, stepped=True)
    real_start, attempts = app.engine.start, []

    def late_start():
        attempts.append(1)
        if len(attempts) == 1:
            raise BrokerUnavailable("terminal not reachable")
        real_start()

    monkeypatch.setattr(app.engine, "start", late_start)
    with pytest.raises(ConfigError, match=r"^SYMBOLS: EURUSDD is not offered by the terminal \(closest: EURUSD"):
        app.run(cycles=5, serve=False)
    assert len(attempts) == 2 and app.engine.cycles == 1
