"""The bridge client's pipeline and the gateway's read-ahead on it (issue 16: fewer round trips a cycle).

Against a real bridge server (TLS, in a thread) in front of the stepped simulator: what a
pipeline answers must be what the calls one by one answer, in order, whatever is called in
between; and a gateway reading ahead must give the cycle exactly what it gives without.
"""

from datetime import timedelta

import pytest
from bridge_thread import connect_bridge, start_bridge, stop_bridge

from bot.gateway import OrderRequest
from bot.gateway.mt5api import Mt5ApiGateway
from mt5bridge.backends import make_backend
from mt5bridge.client import MAX_PIPELINE
from mt5bridge.errors import BridgeCallError, BridgeConnectionLost

TOKEN = "pipeline-test-token-0123456789abcdef"
SYMBOLS = ("EURUSD", "GBPUSD", "XAUUSD")


@pytest.fixture
def bridge():
    server, thread = start_bridge(make_backend("sim", stepped=True, seed=23), TOKEN, allow_sim_control=True)
    clients = []

    def client():
        made = connect_bridge(server, TOKEN)
        clients.append(made)
        return made

    yield server, client
    for made in clients:
        made.close()
    stop_bridge(server, thread)


def _ready(client):
    assert client.initialize()
    for symbol in SYMBOLS:
        assert client.symbol_select(symbol, True)
    return client


def test_a_pipeline_answers_each_call_as_the_call_alone_does_in_order(bridge):
    _server, make = bridge
    client = _ready(make())
    calls = [("symbol_info_tick", (s,), {}) for s in SYMBOLS] + [
        ("copy_rates_from_pos", ("EURUSD", 1, 0, 13), {}), ("account_info", (), {}), ("positions_get", (), {}),
        ("positions_get", (), {"symbol": "XAUUSD"}), ("terminal_info", (), {}),
    ]
    alone = [getattr(client, name)(*args, **kwargs) for name, args, kwargs in calls]
    piped = client.pipeline(calls)
    assert len(piped) == len(calls)
    answers = [piped.result(i) for i in range(len(calls))]
    assert [error for _result, error in answers] == [None] * len(calls)
    assert [result for result, _error in answers] == alone
    assert answers[0][0]["bid"] != answers[2][0]["bid"]  # not one answer repeated: each call its own


def test_a_call_made_while_replies_are_owed_gets_its_own_answer(bridge):
    _server, make = bridge
    client = _ready(make())
    tick = client.symbol_info_tick("GBPUSD")
    piped = client.pipeline([("symbol_info_tick", ("GBPUSD",), {}), ("copy_rates_from_pos", ("XAUUSD", 1, 0, 5), {})])
    account = client.account_info()  # the two replies before it are read (and kept) first
    assert set(account) >= {"login", "balance", "equity"}
    assert piped.result(0) == (tick, None)
    rates, error = piped.result(1)
    assert error is None and len(rates["time"]) == 5
    assert client.symbol_info_tick("EURUSD")["bid"] > 0  # the connection is still in step


def test_refused_and_failed_calls_are_error_items_and_the_others_still_answer(bridge):
    _server, make = bridge
    client = _ready(make())
    piped = client.pipeline([
        ("no_such_call", (), {}),  # not a MetaTrader5 function: never sent
        ("symbol_info_tick", ("EURUSD",), {}),
        ("copy_rates_from_pos", ("EURUSD", 1, 0, float("nan")), {}),  # not plain finite data: never sent
        ("symbol_info_tick", ("NOSUCH",), {}),  # the terminal's answer: None
        ("copy_rates_from_pos", ("EURUSD",), {}),  # a call shape the package refuses: TypeError
        ("account_info", (), {}),
    ])
    outcomes = [piped.result(i) for i in range(6)]
    assert isinstance(outcomes[0][1], BridgeCallError) and isinstance(outcomes[2][1], BridgeCallError)
    assert outcomes[1][0]["ask"] > 0
    assert outcomes[3] == (None, None)
    assert isinstance(outcomes[4][1], TypeError)
    assert outcomes[5][0]["login"] == client.account_info()["login"]
    with pytest.raises(ValueError, match="at most"):
        client.pipeline([("terminal_info", (), {})] * (MAX_PIPELINE + 1))


def test_a_lost_connection_fails_the_owed_replies_and_the_client_stays_dead(bridge):
    server, make = bridge
    client = _ready(make())
    client.symbol_info_tick("EURUSD")
    for sock in list(server.clients):  # the server drops every session, as a killed bridge does
        sock.close()
    piped = client.pipeline([("symbol_info_tick", ("EURUSD",), {}), ("account_info", (), {})])
    result, error = piped.result(1)
    assert result is None and isinstance(error, BridgeConnectionLost)
    assert piped.result(0)[1] is not None
    assert client.closed
    with pytest.raises(BridgeConnectionLost):
        client.terminal_info()


class _Counting:
    """The bridge client with a count of the calls that crossed one by one and of its pipelines."""

    def __init__(self, client):
        self._client = client
        self.alone: list[str] = []
        self.pipelines: list[list[str]] = []

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if name == "pipeline":
            def pipeline(calls):
                self.pipelines.append([call for call, _args, _kwargs in calls])
                return attribute(calls)
            return pipeline
        if callable(attribute) and name.islower() and not name.startswith("_"):
            def call(*args, **kwargs):
                self.alone.append(name)
                return attribute(*args, **kwargs)
            return call
        return attribute


class _NoPipeline:
    """The bridge client as the real package looks to the gateway: no pipeline."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        if name == "pipeline":
            raise AttributeError(name)
        return getattr(self._client, name)


def _cycle(gateway, count=13):
    """A cycle's reads in the engine's order; returns what the gateway gave."""
    with gateway.cycle_reads():
        terminal = gateway.terminal()
        now = gateway.quote("EURUSD").time
        positions = gateway.positions()
        total = gateway.deals_total(now - timedelta(hours=1), now + timedelta(days=1))
        account = gateway.account()
        market = [(gateway.bars(s, 1, count), gateway.quote(s)) for s in SYMBOLS]
    return terminal, positions, total, account, [(b.time.tolist(), b.close.tolist(), q) for b, q in market]


def test_the_gateway_reads_a_cycle_ahead_and_gives_what_the_calls_give(bridge):
    _server, make = bridge
    control = _ready(make())
    counted = {}

    def api():
        counted["api"] = _Counting(make())
        return counted["api"]

    ahead = Mt5ApiGateway(api, name="ahead")
    ahead.connect()
    plain = Mt5ApiGateway(lambda: _NoPipeline(make()), name="plain")
    plain.connect()
    for symbol in SYMBOLS:
        ahead.ensure_selected(symbol)
        plain.ensure_selected(symbol)
    api_calls = counted["api"]
    for number in range(4):
        api_calls.alone.clear()
        got = _cycle(ahead)
        assert got == _cycle(plain)  # the same terminal state, read without a pipeline
        if number:  # the last cycle's reads were sent at this one's start, the deal count split them
            assert api_calls.alone == ["history_deals_total"]
            assert api_calls.pipelines[-2:] == [
                ["terminal_info", "symbol_info_tick", "positions_get"],
                ["account_info"] + ["copy_rates_from_pos", "symbol_info_tick"] * len(SYMBOLS)]
        control.sim_control("advance", seconds=60)
    assert ahead.read_ahead.stats["served"] == 3 * 10 and ahead.read_ahead.stats["unused"] == 0
    assert plain.read_ahead.stats["pipelines"] == 0

    api_calls.alone.clear()  # a read with other arguments than the last cycle's is made, not served stale
    assert _cycle(ahead, count=20) == _cycle(plain, count=20)
    assert api_calls.alone.count("copy_rates_from_pos") == len(SYMBOLS)


def test_after_an_order_nothing_read_ahead_is_served(bridge):
    _server, make = bridge
    control = _ready(make())
    gateway = Mt5ApiGateway(make, name="ahead")
    gateway.connect()
    gateway.ensure_selected("EURUSD")
    for _ in range(2):
        with gateway.cycle_reads():
            assert gateway.positions() == []
            gateway.account()
        control.sim_control("advance", seconds=60)
    served = gateway.read_ahead.stats["served"]
    with gateway.cycle_reads():
        quote = gateway.quote("EURUSD")
        result = gateway.order_send(OrderRequest(symbol="EURUSD", side="BUY", volume=gateway.symbol("EURUSD").volume_min,
                                                 price=quote.ask, sl=None, tp=None, deviation=50, magic=7,
                                                 comment="tw-readahead"))
        assert result.retcode == 10009
        held = gateway.positions()  # read ahead before the order: must come from the terminal now
        account = gateway.account()
    assert [p.comment for p in held] == ["tw-readahead"]
    assert account.margin > 0
    assert gateway.read_ahead.stats["served"] == served  # neither read was served from the pipeline
