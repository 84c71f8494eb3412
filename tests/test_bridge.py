"""End-to-end tests of the MT5 bridge: the real server as a subprocess over the real SimTerminal.

Each server runs `python -m mt5bridge.server --backend sim --stepped --port 0`, announces its
port in its JSON log, and is killed in teardown whatever happens.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import rpyc
from bridge_tls import bridge_cert, raw_tls
from rpyc.core.stream import SocketStream

from db.pgcluster import free_port
from mt5bridge import constants as mt5
from mt5bridge.client import connect
from mt5bridge.errors import (
    BridgeAuthError,
    BridgeCallError,
    BridgeConnectionLost,
    BridgeTimeout,
    BridgeUnavailable,
)
from mt5bridge.frames import FrameStream
from mt5bridge.server import AUTH_OK, TOKEN_LENGTH

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-" + uuid.uuid4().hex
PASSWORD = "sim-pass-" + uuid.uuid4().hex
STARTUP_SECONDS = 30


def server_env(token: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MT5_BRIDGE_", "MT5_"))}
    if token is not None:
        env["MT5_BRIDGE_TOKEN"] = token
    return env


class BridgeProcess:
    """A bridge server subprocess whose stderr (JSON log lines) goes to a file."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.log_path = workdir / f"bridge-{uuid.uuid4().hex[:8]}.log"
        self._log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mt5bridge.server",
                "--backend",
                "sim",
                "--stepped",
                "--seed",
                "42",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--log-level",
                "DEBUG",
                *bridge_cert().server_args(),
                *extra_args,
            ],
            cwd=REPO,
            env=server_env(TOKEN),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if '"mt5bridge listening"' in line:
                    return json.loads(line)["port"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"bridge server did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, token: str | None = TOKEN, timeout: float = 10.0):
        return connect("127.0.0.1", self.port, token=token, timeout=timeout, fingerprint=bridge_cert().fingerprint)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log_file.close()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory):
    server = BridgeProcess(tmp_path_factory.mktemp("bridge"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_bridge(tmp_path):
    """A server of its own, for tests that kill it."""
    server = BridgeProcess(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(bridge):
    with bridge.connect() as bridge_client:
        assert bridge_client.initialize() is True  # the server's own credentials (none over the bridge)
        yield bridge_client


def assert_plain(value):
    """Exact JSON types only: a netref or a namedtuple fails the `type(...) is` checks."""
    if type(value) is dict:
        for key, item in value.items():
            assert type(key) is str
            assert_plain(item)
    elif type(value) is list:
        for item in value:
            assert_plain(item)
    else:
        assert type(value) in (str, int, float, bool, type(None)), type(value)


def market_buy(client, comment: str, volume: float = 0.1) -> dict:
    tick = client.symbol_info_tick("EURUSD")
    return {
        "action": mt5.TRADE_ACTION_DEAL,
        "symbol": "EURUSD",
        "volume": volume,
        "type": mt5.ORDER_TYPE_BUY,
        "price": tick["ask"],
        "deviation": 20,
        "magic": 4242,
        "comment": comment,
        "type_time": mt5.ORDER_TIME_GTC,
        "type_filling": mt5.ORDER_FILLING_IOC,
    }


def with_comment(rows, comment: str) -> list[dict]:
    return [row for row in rows or [] if row["comment"] == comment]



# --- calls and plain data ---------------------------------------------------------------------


def test_reads_return_plain_data(client):
    account = client.account_info()
    assert type(account) is dict and account["login"] == 5001234
    info = client.symbol_info("EURUSD")
    assert type(info) is dict and info["digits"] == 5
    tick = client.symbol_info_tick("EURUSD")
    assert type(tick) is dict and 0 < tick["bid"] < tick["ask"]
    rates = client.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 5)  # by column, not a dict per bar
    assert type(rates) is dict
    assert list(rates) == ["time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume"]
    assert all(type(column) is list and len(column) == 5 for column in rates.values())
    assert type(rates["time"][0]) is int and type(rates["close"][0]) is float
    terminal = client.terminal_info()
    assert terminal["connected"] is True
    symbols = client.symbols_get()
    assert "EURUSD" in {row["name"] for row in symbols}
    version = client.version()
    assert type(version) is tuple and len(version) == 3
    assert client.last_error()[0] == mt5.RES_S_OK
    for value in (account, info, tick, rates, terminal, symbols):
        assert_plain(value)


def test_order_send_round_trip_shows_position_and_deal(client):
    comment = "tw:" + uuid.uuid4().hex[:10]
    request = market_buy(client, comment)
    check = client.order_check(request)
    assert_plain(check)
    assert check["retcode"] == 0, check
    result = client.order_send(request)
    assert_plain(result)
    assert result["retcode"] == mt5.TRADE_RETCODE_DONE, result
    assert type(result["request"]) is dict and result["request"]["comment"] == comment
    [position] = with_comment(client.positions_get(symbol="EURUSD"), comment)
    assert position["volume"] == 0.1 and position["magic"] == 4242
    assert client.positions_get(ticket=position["ticket"])[0]["ticket"] == position["ticket"]
    [deal] = with_comment(client.history_deals_get(position=position["ticket"]), comment)
    assert deal["entry"] == mt5.DEAL_ENTRY_IN and deal["order"] == result["order"]
    now = client.sim_control("now")
    assert_plain(now)
    by_dates = client.history_deals_get(int(now["epoch"]) - 30 * 86400, int(now["epoch"]) + 86400)
    assert deal["ticket"] in {row["ticket"] for row in by_dates}
    assert with_comment(client.history_orders_get(ticket=result["order"]), comment)


def test_a_password_over_the_bridge_is_refused_and_never_reaches_the_log(bridge, client):
    """The broker password lives on the terminal side: a client sending one is told so."""
    with pytest.raises(BridgeCallError, match="password is not accepted over the bridge") as refused:
        client.initialize(login=5001234, password=PASSWORD, server="TradewatchSim-Demo")
    assert refused.value.kind == "bad_request"
    with pytest.raises(BridgeCallError, match="password is not accepted over the bridge"):
        client.login(5001234, password=PASSWORD, server="TradewatchSim-Demo")
    assert client.initialize() is True
    log_text = bridge.log_text()
    assert '"call": "initialize"' in log_text  # calls are logged (name + latency) ...
    assert PASSWORD not in log_text  # ... never their secret arguments
    assert TOKEN not in log_text


# --- authentication ----------------------------------------------------------------------------


def test_wrong_and_missing_tokens_are_refused_and_good_clients_still_served(bridge, monkeypatch):
    with pytest.raises(BridgeAuthError, match="mt5bridge refused the token"):
        bridge.connect(token="not-" + TOKEN)
    with pytest.raises(BridgeAuthError, match="mt5bridge refused the token"):
        bridge.connect(token="")
    monkeypatch.delenv("MT5_BRIDGE_TOKEN", raising=False)
    with pytest.raises(BridgeAuthError, match="none was given"):
        bridge.connect(token=None)
    with bridge.connect() as good:
        assert good.symbol_info("EURUSD")["name"] == "EURUSD"
    assert "wrong or missing token" in bridge.log_text()


def test_plain_rpyc_without_the_handshake_gets_nothing(bridge):
    conn = rpyc.connect("127.0.0.1", bridge.port, config={"sync_request_timeout": 5})
    try:
        with pytest.raises(EOFError):
            conn.root.call("account_info", "{}")
    finally:
        conn.close()
    with bridge.connect() as good:
        assert good.account_info()["login"] == 5001234


def _authenticated(bridge):
    sock = raw_tls(socket.create_connection(("127.0.0.1", bridge.port), timeout=5))
    sock.sendall(TOKEN_LENGTH.pack(len(TOKEN)) + TOKEN.encode())
    assert sock.recv(2) == AUTH_OK
    return sock


def test_an_authenticated_peer_can_reach_only_call(bridge):
    """Even with the token, a peer can only send a call name and JSON arguments: anything else in a
    frame (rpyc's object protocol, a name outside the allowlist, arguments that are not a JSON
    object, bytes that are not text) gets a one-line refusal as JSON, and the session goes on."""
    sock = _authenticated(bridge)
    stream = FrameStream(sock, 1 << 20, "test")
    try:
        refused = {
            b"\x00\x01\x02\x03rpyc-like binary request": "a request is a call name",
            b"_dispatcher\n{}": "is not an allowed call",
            b"__class__\n{}": "is not an allowed call",
            b"exposed_call\n{}": "is not an allowed call",
            b"serve_frame\n{}": "is not an allowed call",
            b"account_info\n[]": "payload must be a JSON object",
            b"account_info\nimport os": "payload is not valid JSON",
            b"\xff\xfe\n{}": "a request is a call name",
        }
        for body, message in refused.items():
            stream.send(body)
            reply = json.loads(stream.recv())
            assert reply["ok"] is False and reply["error"]["kind"] == "bad_request", body
            assert message in reply["error"]["message"] and "\n" not in reply["error"]["message"]
        stream.send(b"account_info\n{}")
        assert json.loads(stream.recv())["result"]["login"] == 5001234
    finally:
        sock.close()


def test_an_rpyc_peer_with_the_token_gets_nothing(bridge):
    """rpyc (the bridge's old protocol, mt5linux's classic server) cannot even fetch a root object."""
    sock = _authenticated(bridge)
    sock.settimeout(None)
    with pytest.raises(ValueError, match="invalid message type"):  # a JSON refusal is no rpyc message
        _ = rpyc.utils.factory.connect_stream(SocketStream(sock), config={"sync_request_timeout": 5}).root
    sock.close()
    with bridge.connect() as good:
        assert good.account_info()["login"] == 5001234


# --- hostile input -------------------------------------------------------------------------------


def test_code_in_a_symbol_is_just_an_unknown_symbol(client):
    marker = Path(f"/tmp/pwned_{uuid.uuid4().hex}")
    hostile = [
        f"EURUSD'); import os; os.system('touch {marker}'); ('",
        f"__import__('os').system('touch {marker}')",
        f'EURUSD"); __import__("os").system("touch {marker}"); ("',
    ]
    for symbol in hostile:
        assert client.symbol_info(symbol) is None
        assert client.symbol_info_tick(symbol) is None
        assert client.copy_rates_from_pos(symbol, mt5.TIMEFRAME_M1, 0, 5) is None
        assert client.positions_get(symbol=symbol) in (None, [])
        request = {
            "action": mt5.TRADE_ACTION_DEAL,
            "symbol": symbol,
            "volume": 0.1,
            "type": mt5.ORDER_TYPE_BUY,
            "price": 1.1,
            "deviation": 20,
            "type_filling": mt5.ORDER_FILLING_IOC,
        }
        result = client.order_send(request)
        assert result is None or result["retcode"] == mt5.TRADE_RETCODE_INVALID, result
    assert not marker.exists()


@pytest.mark.parametrize(
    "name",
    [
        "__class__",
        "eval",
        "exec",
        "__import__",
        "control",
        "_dispatcher",
        "exposed_call",
        "order_send; import os",
    ],
)
def test_names_outside_the_allowlist_are_refused(client, name):
    with pytest.raises(BridgeCallError, match="is not an allowed call") as refused:
        client._call(name)
    assert refused.value.kind == "bad_request"
    assert client.symbol_info("EURUSD")["name"] == "EURUSD"  # the client is still usable


def test_bad_arguments_come_back_as_a_one_line_call_error(client):
    """Unsafe input is refused by the bridge itself; a wrong type is refused as the package does."""
    before = len(client.positions_get() or [])
    assert client.symbol_info(123) is None
    assert client.last_error() == (-2, 'Invalid "symbol" argument')
    with pytest.raises(BridgeCallError, match="unknown request field 'code'") as refused:
        client.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1, "code": "x"})
    assert "\n" not in str(refused.value)
    with pytest.raises(BridgeCallError, match="not plain finite data"):
        client.order_send(dict(market_buy(client, "tw:nan"), price=float("nan")))
    assert len(client.positions_get() or []) == before


def test_backend_exceptions_come_back_as_call_errors(client):
    with pytest.raises(BridgeCallError, match="unknown control command 'os.system'") as failed:
        client.sim_control("os.system", command="id")
    assert failed.value.kind == "backend_error" and "\n" not in str(failed.value)
    with pytest.raises(BridgeCallError, match="fault_latency"):
        client.sim_control("fault_latency", seconds="soon")
    assert client.account_info()["login"] == 5001234


# --- transport failures ----------------------------------------------------------------------------


def test_killed_server_gives_connection_lost_and_the_client_stays_dead(own_bridge):
    bridge_client = own_bridge.connect()
    assert bridge_client.initialize() is True
    own_bridge.proc.send_signal(signal.SIGKILL)
    own_bridge.proc.wait(10)
    with pytest.raises(BridgeConnectionLost):
        bridge_client.account_info()
    assert bridge_client.closed
    with pytest.raises(BridgeConnectionLost, match="client is dead"):
        bridge_client.version()
    with pytest.raises(BridgeUnavailable):
        own_bridge.connect()


def test_nothing_listening_gives_unavailable():
    with pytest.raises(BridgeUnavailable, match="not reachable"):
        connect("127.0.0.1", free_port(), token=TOKEN, timeout=2, fingerprint=bridge_cert().fingerprint)


def test_order_executed_then_timed_out_is_not_resent(bridge):
    """The order executes, the reply comes too late: BridgeTimeout, and exactly one position/deal."""
    comment = "tw:" + uuid.uuid4().hex[:10]
    slow = bridge.connect(timeout=1.0)
    assert slow.initialize() is True
    slow.sim_control("fault_timeout_after_execute", count=1, delay=3.0)
    request = market_buy(slow, comment)
    started = time.monotonic()
    with pytest.raises(BridgeTimeout, match="outcome is unknown"):
        slow.order_send(request)
    assert time.monotonic() - started < 2.5  # the client gave up at its 1 s, not at the server's reply
    assert slow.closed
    with pytest.raises(BridgeConnectionLost):
        slow.positions_get()

    with bridge.connect(timeout=10.0) as fresh:
        positions = with_comment(fresh.positions_get(symbol="EURUSD"), comment)
        assert len(positions) == 1
        deals = with_comment(fresh.history_deals_get(position=positions[0]["ticket"]), comment)
        assert len(deals) == 1
        fresh.sim_control("clear_faults")
        # A second look later still finds exactly one: nothing resent the order behind our back.
        assert len(with_comment(fresh.positions_get(symbol="EURUSD"), comment)) == 1


# --- start-up and shutdown -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "token"),
    [("mt5bridge.server", None), ("mt5bridge.server", ""), ("mt5bridge.server", "   "), ("mt5bridge", None)],
)
def test_server_refuses_to_start_without_a_token(module, token):
    done = subprocess.run(
        [sys.executable, "-m", module, "--backend", "sim", "--port", str(free_port())],
        cwd=REPO,
        env=server_env(token),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MT5_BRIDGE_TOKEN: is not set" in lines[0]


def test_server_with_the_metatrader5_backend_fails_cleanly_where_it_is_missing():
    """Where MetaTrader5 cannot be imported (here: blocked), the server says so in one line, exit 2."""
    blocked = (
        "import sys; sys.modules['MetaTrader5'] = None; from mt5bridge.server import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "--backend", "metatrader5", "--port", str(free_port()), "--insecure"],
        cwd=REPO,
        env=server_env(TOKEN),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MetaTrader5 package is not importable" in lines[0]


def test_sigterm_stops_the_server_cleanly(own_bridge):
    with own_bridge.connect() as bridge_client:
        assert bridge_client.initialize() is True
        own_bridge.proc.send_signal(signal.SIGTERM)
        assert own_bridge.proc.wait(15) == 0
        with pytest.raises(BridgeConnectionLost):
            bridge_client.account_info()
    assert '"mt5bridge stopped"' in own_bridge.log_text()


def test_a_protocol_level_refusal_becomes_a_one_line_call_error(client):
    """A request the server cannot read (here: a frame that is not a call name and JSON arguments)
    comes back as a one-line BridgeCallError and the client stays usable, no remote traceback."""
    with pytest.raises(BridgeCallError, match="a request is a call name, a newline and JSON arguments") as refused:
        client._result("raw", client._transport("raw", lambda: client._exchange(b"no call name here")))
    assert "\n" not in str(refused.value) and refused.value.kind == "bad_request"
    assert client.account_info()["login"] == 5001234
