"""In-process unit tests of the bridge pieces: to_plain, argument validation, dispatch, backends.

The end-to-end behaviour (real server subprocess, real SimTerminal) is in test_bridge.py;
these pin down the small rules that are awkward to reach through a socket.
"""

import collections
import datetime as dt
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mt5bridge import constants as mt5
from mt5bridge.backends import BackendUnavailable, Metatrader5Backend, make_backend
from mt5bridge.handshake import HandshakeRefused, PendingHandshake, normalise_token
from mt5bridge.plain import to_plain
from mt5bridge.server import (
    AUTH_OK,
    AUTH_REFUSED,
    CALLS,
    TOKEN_LENGTH,
    Dispatcher,
    JsonLineFormatter,
    resolve_timeout,
)
from mt5bridge.transport import BridgeServer

Request = collections.namedtuple("Request", "action symbol volume price")
OrderSendResult = collections.namedtuple("OrderSendResult", "retcode deal order volume price comment request")
Tick = collections.namedtuple("Tick", "time bid ask last volume time_msc flags volume_real")


def assert_plain(value):
    """Only exact JSON types: a netref or namedtuple would fail the `type(...) is` checks."""
    if type(value) is dict:
        for key, item in value.items():
            assert type(key) is str
            assert_plain(item)
    elif type(value) is list:
        for item in value:
            assert_plain(item)
    else:
        assert type(value) in (str, int, float, bool, type(None)), type(value)


# --- to_plain ------------------------------------------------------------------------------


def test_to_plain_nested_namedtuple_becomes_nested_dict():
    result = OrderSendResult(
        mt5.TRADE_RETCODE_DONE, 7, 8, 0.1, 1.1, "done", Request(mt5.TRADE_ACTION_DEAL, "EURUSD", 0.1, 1.1)
    )
    plain = to_plain(result)
    assert plain["request"] == {"action": 1, "symbol": "EURUSD", "volume": 0.1, "price": 1.1}
    assert plain["retcode"] == 10009
    assert_plain(plain)


def test_to_plain_tuple_of_namedtuples_and_numpy_scalars():
    ticks = (Tick(np.int64(1700000000), np.float64(1.08512), 1.08514, 0.0, np.uint64(3), 1, 2, 3.0),)
    plain = to_plain(ticks)
    assert plain == [
        {
            "time": 1700000000,
            "bid": 1.08512,
            "ask": 1.08514,
            "last": 0.0,
            "volume": 3,
            "time_msc": 1,
            "flags": 2,
            "volume_real": 3.0,
        }
    ]
    assert_plain(plain)


def test_to_plain_structured_array_gives_python_scalars():
    rates = np.array(
        [(1700000000, 1.1, 1.2, 1.0, 1.15, 42, 3, 0)],
        dtype=[
            ("time", "<i8"),
            ("open", "<f8"),
            ("high", "<f8"),
            ("low", "<f8"),
            ("close", "<f8"),
            ("tick_volume", "<u8"),
            ("spread", "<i4"),
            ("real_volume", "<u8"),
        ],
    )
    plain = to_plain(rates)
    assert plain == [
        {
            "time": 1700000000,
            "open": 1.1,
            "high": 1.2,
            "low": 1.0,
            "close": 1.15,
            "tick_volume": 42,
            "spread": 3,
            "real_volume": 0,
        }
    ]
    assert_plain(plain)
    assert to_plain(rates[0]) == plain[0]


def test_to_plain_keeps_none_and_plain_arrays():
    assert to_plain(None) is None
    assert to_plain(np.arange(4).reshape(2, 2)) == [[0, 1], [2, 3]]
    assert to_plain((500, 4321, "01 Jan 2025")) == [500, 4321, "01 Jan 2025"]


# --- dispatch and validation with a recording fake terminal ----------------------------------


class RecordingTerminal:
    """Records calls; enough of the MT5 surface to see what reached the 'terminal'."""

    def __init__(self):
        self.calls = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def symbol_info(self, symbol):
        self.calls.append(("symbol_info", symbol))
        return None

    def order_send(self, request):
        self.calls.append(("order_send", request))
        return OrderSendResult(
            mt5.TRADE_RETCODE_DONE, 1, 2, request["volume"], 1.1, "", Request(1, "X", 0.1, 1.1)
        )

    def history_deals_get(self, *args, **kwargs):
        self.calls.append(("history_deals_get", args, kwargs))
        return ()

    def account_info(self):
        raise RuntimeError("terminal exploded")

    def terminal_info(self):
        self.entered.set()
        self.release.wait(5)
        return None

    def control(self, command, params):
        self.calls.append(("control", command, params))
        return {"ok": True}


def run(dispatcher, name, payload):
    return json.loads(dispatcher.dispatch(name, payload if isinstance(payload, str) else json.dumps(payload)))


@pytest.fixture
def terminal():
    return RecordingTerminal()


@pytest.fixture
def dispatcher(terminal):
    return Dispatcher(terminal, allow_sim_control=False, lock_timeout=0.3)


def test_allowlist_is_exactly_the_mt5_calls_plus_sim_control():
    """Every function of the real package (tests/fixtures/mt5-api-5.0.6231.json), and sim_control."""
    api = json.loads((Path(__file__).parent / "fixtures" / "mt5-api-5.0.6231.json").read_text())
    assert len(api["functions"]) == 32
    assert set(CALLS) == set(api["functions"]) | {"sim_control", "sim_clock"}


@pytest.mark.parametrize(
    "name", ["eval", "__class__", "__init__", "control", "_run", "exposed_call", 42, None]
)
def test_names_outside_the_allowlist_never_reach_the_terminal(dispatcher, terminal, name):
    reply = json.loads(dispatcher.dispatch(name, "{}"))
    assert reply["ok"] is False and reply["error"]["kind"] == "bad_request"
    assert terminal.calls == []


def test_sim_control_refused_unless_the_backend_is_the_sim(dispatcher, terminal):
    reply = run(dispatcher, "sim_control", {"command": "clear_faults"})
    assert reply["error"]["message"] == "'sim_control' is not an allowed call"
    allowed = Dispatcher(terminal, allow_sim_control=True, lock_timeout=0.3)
    assert run(allowed, "sim_control", {"command": "clear_faults", "params": {}}) == {
        "ok": True,
        "result": {"ok": True},
    }
    assert terminal.calls == [("control", "clear_faults", {})]


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("symbol_info", {"symbol": "EURUSD", "extra": 1}, "symbol_info: unexpected argument(s) 'extra'"),
        ("symbol_info", "[1, 2]", "symbol_info: payload must be a JSON object"),
        ("symbol_info", "not json", "symbol_info: payload is not valid JSON"),
        ("symbol_info", {"symbol": ["EURUSD"]}, "symbol_info: symbol must be a plain value, got list"),
        ("symbol_info", {"symbol": "X" * 257}, "symbol_info: symbol is longer than 256 characters"),
        ("symbol_info", {"args": "EURUSD"}, "symbol_info: args must be a list and kwargs an object"),
        (
            "order_send",
            '{"request": {"action": 1, "price": NaN}}',
            "order_send: request.price must be a finite number",
        ),
        (
            "order_send",
            {"request": {"action": 1, "__class__": 1}},
            "order_send: unknown request field '__class__'",
        ),
        (
            "order_send",
            {"request": {"action": 1, "comment": {"nested": 1}}},
            "order_send: request.comment must be a plain value, got dict",
        ),
    ],
)
def test_unsafe_arguments_are_refused_before_the_terminal(dispatcher, terminal, name, payload, message):
    reply = run(dispatcher, name, payload)
    assert reply == {"ok": False, "error": {"kind": "bad_request", "message": message}}
    assert terminal.calls == []


@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("symbol_info", {}, "symbol_info() takes exactly 1 argument (0 given)"),
        (
            "symbol_info",
            {"args": [], "kwargs": {"symbol": "EURUSD"}},
            "symbol_info() takes no keyword arguments",
        ),
        ("account_info", {"args": [1]}, "account_info() takes no arguments (1 given)"),
        (
            "positions_get",
            {"kwargs": {"sym": "EURUSD"}},
            "'sym' is an invalid keyword argument for positions_get()",
        ),
        (
            "copy_rates_from_pos",
            {"symbol": "EURUSD", "timeframe": 1, "count": 5},
            "copy_rates_from_pos() takes no keyword arguments",
        ),
    ],
)
def test_call_shapes_python_refuses_come_back_as_type_errors(dispatcher, terminal, name, payload, message):
    """Keywords to a positional-only function and the like raise TypeError in the real package."""
    reply = run(dispatcher, name, payload)
    assert reply == {"ok": False, "error": {"kind": "type_error", "message": message}}
    assert terminal.calls == []


def test_wrong_value_types_reach_the_terminal_unchanged(dispatcher, terminal):
    """The package refuses them itself (None + last_error): the bridge must not coerce or pre-empt."""
    assert run(dispatcher, "symbol_info", {"symbol": 5}) == {"ok": True, "result": None}
    request = {
        "action": 1,
        "symbol": "EURUSD",
        "volume": 1,
        "magic": 1.5,
        "price": 1.0851,
        "comment": "tw:abc",
    }
    reply = run(dispatcher, "order_send", {"args": [request]})
    assert reply["ok"] is True and reply["result"]["request"]["symbol"] == "X"
    assert terminal.calls == [("symbol_info", 5), ("order_send", request)]
    sent = terminal.calls[1][1]
    assert type(sent["volume"]) is int and type(sent["magic"]) is float


def test_the_sim_backend_refuses_wrong_types_as_the_package_does():
    dispatcher = Dispatcher(make_backend("sim", stepped=True), allow_sim_control=False, lock_timeout=5)
    assert run(dispatcher, "initialize", {"args": []})["result"] is True
    assert run(dispatcher, "positions_get", {"args": ["EURUSD"]}) == {"ok": True, "result": None}
    assert run(dispatcher, "last_error", {})["result"] == [-2, "Unnamed arguments not allowed"]
    margin = {"args": [mt5.ORDER_TYPE_BUY, "EURUSD", 1, 1.1]}
    assert run(dispatcher, "order_calc_margin", margin) == {"ok": True, "result": None}
    assert run(dispatcher, "last_error", {})["result"] == [-2, 'Invalid "volume" argument']
    margin["args"][2] = 1.0
    assert run(dispatcher, "order_calc_margin", margin) == {"ok": True, "result": 1100.0}


def test_history_dates_reach_the_backend_as_utc_datetimes(dispatcher, terminal):
    assert run(
        dispatcher, "history_deals_get", {"date_from": 1700000000, "date_to": 1700003600, "group": "*USD*"}
    ) == {"ok": True, "result": []}
    assert run(dispatcher, "history_deals_get", {"position": 77})["ok"] is True
    assert terminal.calls == [
        (
            "history_deals_get",
            (
                dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC),
                dt.datetime(2023, 11, 14, 23, 13, 20, tzinfo=dt.UTC),
            ),
            {"group": "*USD*"},
        ),
        ("history_deals_get", (), {"position": 77}),
    ]


def test_backend_exception_comes_back_as_data_without_traceback(dispatcher):
    reply = run(dispatcher, "account_info", {})
    assert reply == {
        "ok": False,
        "error": {"kind": "backend_error", "message": "account_info: RuntimeError: terminal exploded"},
    }


def test_calls_are_serialised_and_a_hung_terminal_reports_busy(dispatcher, terminal):
    first = threading.Thread(target=dispatcher.dispatch, args=("terminal_info", "{}"))
    first.start()
    try:
        assert terminal.entered.wait(5)
        reply = run(dispatcher, "symbol_info", {"symbol": "EURUSD"})
        assert reply["error"]["kind"] == "busy"
        assert terminal.calls == []
    finally:
        terminal.release.set()
        first.join(5)
    assert run(dispatcher, "symbol_info", {"symbol": "EURUSD"}) == {"ok": True, "result": None}


# --- backends -----------------------------------------------------------------------------------


class FakeMetaTrader5:
    def __init__(self):
        self.initialize_calls = []

    def initialize(self, *args, **kwargs):
        self.initialize_calls.append((args, kwargs))
        return True


def test_metatrader5_backend_initialises_with_environment_credentials(caplog):
    module = FakeMetaTrader5()
    backend = Metatrader5Backend(
        module,
        environ={
            "MT5_LOGIN": "5001234",
            "MT5_PASSWORD": "pa55-word",
            "MT5_SERVER": "Broker-Demo",
            "MT5_PATH": r"C:\mt5\terminal64.exe",
        },
    )
    with caplog.at_level(logging.DEBUG):
        assert backend.initialize() is True
    assert module.initialize_calls == [
        ((r"C:\mt5\terminal64.exe",), {"login": 5001234, "password": "pa55-word", "server": "Broker-Demo"})
    ]
    assert "pa55-word" not in caplog.text


def test_metatrader5_backend_prefers_credentials_from_the_caller():
    module = FakeMetaTrader5()
    backend = Metatrader5Backend(module, environ={"MT5_LOGIN": "1", "MT5_PASSWORD": "env"})
    backend.initialize(login=2, password="given", server="S")
    assert module.initialize_calls == [((), {"login": 2, "password": "given", "server": "S"})]


def test_metatrader5_backend_rejects_a_non_numeric_login():
    backend = Metatrader5Backend(FakeMetaTrader5(), environ={"MT5_LOGIN": "abc"})
    with pytest.raises(ValueError, match="MT5_LOGIN must be an integer account number"):
        backend.initialize()


def test_make_backend_rejects_unknown_names_and_missing_metatrader5(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend 'mt4'"):
        make_backend("mt4")
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # as on Linux: the import fails
    with pytest.raises(BackendUnavailable, match="runs only in Windows Python"):
        make_backend("metatrader5")
    with pytest.raises(ValueError, match="takes no options"):
        make_backend("metatrader5", seed=1)


def test_bridge_modules_import_only_stdlib():
    """The server must run on a Windows Python with only MetaTrader5 (+ numpy) installed.

    confcheck (the settings vocabulary, stdlib only) is copied beside mt5bridge/.
    """
    code = (
        "import sys\n"
        "import mt5bridge.server, mt5bridge.client, mt5bridge.plain, mt5bridge.errors, mt5bridge.backends\n"
        "tops = {name.split('.')[0] for name in sys.modules}\n"
        "extra = sorted(t for t in tops if t not in sys.stdlib_module_names and not t.startswith('_'))\n"
        "sys.stdout.write(','.join(extra))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert set(out.stdout.split(",")) == {"mt5bridge", "confcheck"}


def test_json_line_formatter_writes_one_object_with_extras():
    record = logging.LogRecord("mt5bridge.server", logging.INFO, __file__, 1, "call %s", ("x",), None)
    record.latency_ms = 1.5
    line = JsonLineFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "call x" and entry["latency_ms"] == 1.5 and entry["level"] == "INFO"


def test_timeout_comes_from_the_argument_then_the_environment_then_ten_seconds():
    assert resolve_timeout(2.5, {"MT5_BRIDGE_TIMEOUT": "7"}) == 2.5
    assert resolve_timeout(None, {"MT5_BRIDGE_TIMEOUT": "7"}) == 7.0
    assert resolve_timeout(None, {}) == 10.0
    with pytest.raises(ValueError, match="MT5_BRIDGE_TIMEOUT must be a number of seconds, got 'soon'"):
        resolve_timeout(None, {"MT5_BRIDGE_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        resolve_timeout(0, {})


# --- token handshake ----------------------------------------------------------------------------


@pytest.fixture
def socket_pair():
    server_side, client_side = socket.socketpair()
    yield server_side, client_side
    server_side.close()
    client_side.close()


def _handshake(server_side, token="s3cret"):
    """Drive a plain (--insecure) handshake on one socket until it is decided."""
    pending = PendingHandshake(server_side, "peer", deadline=time.monotonic() + 5, context=None,
                               token=normalise_token(token))
    server_side.settimeout(1)
    for _ in range(100):
        if pending.advance():
            return pending
        socket_wait(server_side)
    raise AssertionError("handshake undecided")


def socket_wait(sock):
    import select

    select.select([sock], [], [], 1)


def test_handshake_accepts_the_right_token(socket_pair):
    server_side, client_side = socket_pair
    client_side.sendall(TOKEN_LENGTH.pack(6) + b"s3cret")
    pending = _handshake(server_side)
    pending.answer(AUTH_OK)
    assert pending.sock is server_side and server_side.gettimeout() is None
    assert client_side.recv(2) == AUTH_OK


def test_handshake_normalises_the_token_on_both_sides(socket_pair):
    """A token read from a file carries a newline: stripped on both sides before comparing."""
    server_side, client_side = socket_pair
    client_side.sendall(TOKEN_LENGTH.pack(8) + b" s3cret\n")
    assert _handshake(server_side, token="s3cret\n") is not None


@pytest.mark.parametrize(
    "offer",
    [TOKEN_LENGTH.pack(6) + b"s3creT", TOKEN_LENGTH.pack(0), TOKEN_LENGTH.pack(10**6) + b"s3cret",
     TOKEN_LENGTH.pack(3) + b"   ", TOKEN_LENGTH.pack(2) + b"\xff\xfe"],
)
def test_handshake_refuses_wrong_empty_and_oversized_tokens(socket_pair, offer, caplog):
    server_side, client_side = socket_pair
    client_side.sendall(offer)
    with pytest.raises(HandshakeRefused, match="wrong or missing token") as refused:
        _handshake(server_side)
    assert refused.value.answer == AUTH_REFUSED
    assert "s3cret" not in caplog.text and "s3creT" not in caplog.text


def test_a_peer_closing_mid_handshake_is_refused(socket_pair):
    server_side, client_side = socket_pair
    client_side.sendall(TOKEN_LENGTH.pack(6) + b"s3")
    client_side.close()
    with pytest.raises(HandshakeRefused, match="closed the connection during the handshake"):
        _handshake(server_side)


def test_an_empty_server_token_is_rejected():
    with pytest.raises(ValueError, match="an empty token would let anyone in"):
        BridgeServer(object(), host="127.0.0.1", port=0, token="  \n", tls=None, protocol_config={})


def test_calls_without_arguments_take_the_short_path_and_match_the_full_one(monkeypatch):
    """terminal_info, account_info, last_error, version and sim_clock sent without arguments skip the
    argument checks (nothing to check): the same reply as the full path, and anything given to them is
    still refused as before."""
    from mt5bridge import calls
    from mt5bridge.signatures import NO_ARGUMENTS, SIGNATURES

    empty = [name for name, sig in SIGNATURES.items() if sig.form == NO_ARGUMENTS]
    assert {"terminal_info", "account_info", "last_error", "version"} <= set(empty)
    sim = make_backend("sim", stepped=True)
    fast = Dispatcher(sim, allow_sim_control=False, lock_timeout=1.0)
    sim.initialize()
    def decoded(*_args):
        raise AssertionError("the short path decodes nothing")

    monkeypatch.setattr(calls, "_decode", decoded)
    short = {name: run(fast, name, '{"args": []}') for name in [*empty, "sim_clock"]}
    short["sim_clock{}"] = run(fast, "sim_clock", "{}")
    monkeypatch.undo()
    monkeypatch.setattr(calls, "_EMPTY_CALL", {"args": ["never equal"]})  # the full path for every call
    full = {name: run(fast, name, json.dumps({"args": [], "kwargs": {}}) if name != "sim_clock" else '{"args": []}')
            for name in [*empty, "sim_clock"]}
    full["sim_clock{}"] = run(fast, "sim_clock", " {}")  # parsed as JSON, checked by Arguments
    assert short == full and all(reply["ok"] for name, reply in short.items() if name != "sim_clock"), short
    assert short["sim_clock"]["error"]["message"] == "sim_clock: unexpected argument(s) 'args'"
    monkeypatch.undo()
    assert run(fast, "last_error", {"args": [1]})["error"] == {
        "kind": "type_error", "message": "last_error() takes no arguments (1 given)"}
    assert run(fast, "sim_clock", {"at": 1})["error"]["message"] == "sim_clock: unexpected argument(s) 'at'"
