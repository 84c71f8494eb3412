"""Conformance of the simulated MetaTrader5 with the real package (wheel 5.0.6231).

The reference is tests/fixtures/mt5-api-5.0.6231.json (a copy of ../shared/mt5-api-5.0.6231.json:
every function with how it takes its arguments, every constant with its value, every result
type's fields in order). Everything is checked twice: against the module-shaped stand-in
(``mt5bridge.sim.mt5module``) and through the real bridge (server thread on a free port, real
client), on every broker profile (``broker_profiles()`` below is the hook).
"""

import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pytest
from bridge_thread import connect_bridge, start_bridge, stop_bridge

import mt5bridge.sim.mt5module as mt5module
from mt5bridge import constants
from mt5bridge.client import BridgeClient
from mt5bridge.signatures import (
    BOOL,
    DATE,
    FLOAT,
    INT,
    KW,
    NO_ARGUMENTS,
    POSITIONAL_ONLY,
    REQUEST,
    REQUEST_FIELDS,
    SIGNATURES,
    STR,
)
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.mt5module import Mt5Module

REPO = Path(__file__).resolve().parents[1]
API = json.loads((Path(__file__).parent / "fixtures" / "mt5-api-5.0.6231.json").read_text())
FUNCTIONS, TYPES, CONSTANTS = API["functions"], API["types"], API["constants"]
TOKEN = "conformance-" + uuid.uuid4().hex

#: The real package's numpy dtypes (not in the JSON: from the package's documented output).
RATES_FIELDS = [
    ("time", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("tick_volume", "<u8"),
    ("spread", "<i4"),
    ("real_volume", "<u8"),
]
TICKS_FIELDS = [
    ("time", "<i8"),
    ("bid", "<f8"),
    ("ask", "<f8"),
    ("last", "<f8"),
    ("volume", "<u8"),
    ("time_msc", "<i8"),
    ("flags", "<u4"),
    ("volume_real", "<f8"),
]
#: Parameters the JSON signature strings omit but the package's documentation has.
DOCUMENTED_EXTRAS = {"initialize": {"timeout", "portable"}, "login": {"timeout"}}
#: A value of the wrong kind for each kind (1 is not a float, 1.0 is not an int, ...).
WRONG = {STR: 1, INT: 1.0, FLOAT: 1, BOOL: 1, DATE: "2026-01-05", REQUEST: "action=1"}


# --- the profiles: the hook the lead extends -------------------------------------------------


def broker_profiles() -> list[str | None]:
    """Every shipped broker profile once the profile loader exists; else the default sim (None)."""
    try:
        from mt5bridge.sim import profiles
    except ImportError:
        return [None]
    return list(profiles.names())


def make_terminal(profile: str | None) -> SimTerminal:
    if profile is None:
        return SimTerminal(seed=3, stepped=True)
    return SimTerminal(seed=3, stepped=True, profile=profile)


# --- the two ways to reach the stand-in ----------------------------------------------------------


class Session:
    """One MetaTrader5-shaped API (stand-in or bridge client) with a prepared account."""

    def __init__(self, api, via: str, advance):
        self.api, self.via = api, via
        assert api.initialize() is True, api.last_error()
        advance(3600)  # an hour of history and a live market
        names = [s["name"] if via == "bridge" else s.name for s in api.symbols_get()]
        self.symbol = next((n for n in names if n.startswith("EURUSD")), names[0])
        assert api.symbol_select(self.symbol, True) is True
        self.info = self.get(api.symbol_info(self.symbol))
        tick = self.get(api.symbol_info_tick(self.symbol))
        self.now = dt.datetime.fromtimestamp(tick["time"], dt.UTC)
        self.sent = self.get(api.order_send(self.market_buy(tick["ask"])))
        assert self.sent["retcode"] == constants.TRADE_RETCODE_DONE, self.sent

    def get(self, result):
        """A result as a dict (the bridge already sends dicts)."""
        return result if self.via == "bridge" else result._asdict()

    def market_buy(self, ask: float) -> dict:
        filling = self.info["filling_mode"]
        if filling & constants.SYMBOL_FILLING_FOK:
            type_filling = constants.ORDER_FILLING_FOK
        elif filling & constants.SYMBOL_FILLING_IOC:
            type_filling = constants.ORDER_FILLING_IOC
        else:
            type_filling = constants.ORDER_FILLING_RETURN
        return {
            "action": constants.TRADE_ACTION_DEAL,
            "symbol": self.symbol,
            "volume": self.info["volume_min"],
            "type": constants.ORDER_TYPE_BUY,
            "price": ask,
            "deviation": 50,
            "magic": 77,
            "comment": "conformance",
            "type_time": constants.ORDER_TIME_GTC,
            "type_filling": type_filling,
        }

    def valid_calls(self) -> dict[str, tuple[tuple, dict]]:
        """A call of every function that succeeds, in the package's calling form."""
        s, now, minute = self.symbol, self.now, dt.timedelta(minutes=1)
        ask = self.get(self.api.symbol_info_tick(s))["ask"]
        day = dt.timedelta(days=1)
        return {
            "initialize": ((), {}),
            "shutdown": ((), {}),
            "login": ((self.get(self.api.account_info())["login"],), {}),
            "version": ((), {}),
            "terminal_info": ((), {}),
            "account_info": ((), {}),
            "copy_ticks_from": ((s, now - minute, 10, constants.COPY_TICKS_ALL), {}),
            "copy_ticks_range": ((s, now - minute, now, constants.COPY_TICKS_ALL), {}),
            "copy_rates_from": ((s, constants.TIMEFRAME_M1, now, 10), {}),
            "copy_rates_from_pos": ((s, constants.TIMEFRAME_M1, 0, 10), {}),
            "copy_rates_range": ((s, constants.TIMEFRAME_M1, now - 10 * minute, now), {}),
            "positions_total": ((), {}),
            "positions_get": ((), {"symbol": s}),
            "orders_total": ((), {}),
            "orders_get": ((), {"group": "*"}),
            "history_orders_total": ((now - day, now + day), {}),
            "history_orders_get": ((now - day, now + day), {"group": "*"}),
            "history_deals_total": ((now - day, now + day), {}),
            "history_deals_get": ((now - day, now + day), {"group": "*"}),
            "order_check": ((self.market_buy(ask),), {}),
            "order_send": ((), {"request": self.market_buy(ask)}),
            "order_calc_margin": ((constants.ORDER_TYPE_BUY, s, 1.0, ask), {}),
            "order_calc_profit": ((constants.ORDER_TYPE_BUY, s, 1.0, ask, ask * 1.001), {}),
            "symbol_info": ((s,), {}),
            "symbol_info_tick": ((s,), {}),
            "symbol_select": ((s, True), {}),
            "symbols_total": ((), {}),
            "symbols_get": ((), {"group": "*"}),
            "market_book_add": ((s,), {}),
            "market_book_release": ((s,), {}),
            "market_book_get": ((s,), {}),
            "last_error": ((), {}),
        }

    def call(self, name: str, args: tuple = (), kwargs: dict | None = None):
        if name in ("market_book_get", "market_book_release"):
            assert self.api.market_book_add(self.symbol) is True
        result = getattr(self.api, name)(*args, **(kwargs or {}))
        if name == "shutdown":
            assert self.api.initialize() is True
        return result


@pytest.fixture(scope="module", params=broker_profiles(), ids=lambda p: p or "default")
def profile(request):
    return request.param


@pytest.fixture(scope="module")
def direct(profile):
    terminal = make_terminal(profile)
    return Session(Mt5Module(terminal), "direct", terminal.advance)


@pytest.fixture(scope="module")
def bridged(profile):
    server, thread = start_bridge(Mt5Module(make_terminal(profile)), TOKEN, allow_sim_control=True)
    client = connect_bridge(server, TOKEN)
    try:
        yield Session(client, "bridge", lambda seconds: client.sim_control("advance", seconds=seconds))
    finally:
        client.close()
        stop_bridge(server, thread)


@pytest.fixture(params=["direct", "bridge"])
def session(request, profile) -> Session:
    return request.getfixturevalue("bridged" if request.param == "bridge" else "direct")


def failure_of(name: str):
    return SIGNATURES[name].failure


# --- the reference itself and our table of it ----------------------------------------------------


def test_the_fixture_describes_the_whole_package():
    assert (len(FUNCTIONS), len(CONSTANTS), len(TYPES), len(TYPES["SymbolInfo"])) == (32, 223, 11, 96)


def test_the_signature_table_is_the_packages():
    assert list(SIGNATURES) == list(FUNCTIONS)
    for name, spec in FUNCTIONS.items():
        sig = SIGNATURES[name]
        assert sig.form == spec["arguments"], name
        inside = spec["signature"][spec["signature"].index("(") + 1 : spec["signature"].rindex(")")]
        documented = set(re.findall(r"\b[a-z_]+\b", inside))
        assert set(sig.names) - DOCUMENTED_EXTRAS.get(name, set()) == documented, name


# --- constants ----------------------------------------------------------------------------------


def test_every_constant_with_its_value_and_no_others_on_the_stand_in():
    exported = {n: getattr(mt5module, n) for n in dir(mt5module) if n.isupper() and not n.startswith("_")}
    assert exported == CONSTANTS
    assert {name: getattr(constants, name) for name in CONSTANTS} == CONSTANTS
    assert constants.PACKAGE_CONSTANTS == CONSTANTS


def test_every_constant_on_the_bridge_client():
    assert {name: getattr(BridgeClient, name) for name in CONSTANTS} == CONSTANTS


def test_no_constant_is_defined_twice():
    """mt5bridge/constants.py is the only definition of each package constant in the repository."""
    pattern = re.compile(r"^\s*(" + "|".join(map(re.escape, CONSTANTS)) + r")[ \t]*(?::[^=\n]+)?=(?!=)", re.M)
    definitions: dict[str, list[str]] = {}
    for path in REPO.rglob("*.py"):
        if {".venv", "node_modules", ".git"} & set(path.relative_to(REPO).parts):
            continue
        for match in pattern.finditer(path.read_text(errors="replace")):
            definitions.setdefault(match.group(1), []).append(str(path.relative_to(REPO)))
    assert {name: where for name, where in definitions.items() if where != ["mt5bridge/constants.py"]} == {}
    assert set(definitions) == set(CONSTANTS)


def test_the_reported_mistakes_are_gone():
    """Issue 11: INSTANT was 0 and SYMBOL_ORDER_SL/TP 32/64 in the simulator."""
    assert mt5module.SYMBOL_TRADE_EXECUTION_INSTANT == 1 and mt5module.SYMBOL_TRADE_EXECUTION_REQUEST == 0
    assert (constants.SYMBOL_ORDER_SL, constants.SYMBOL_ORDER_TP, constants.SYMBOL_ORDER_CLOSEBY) == (
        16,
        32,
        64,
    )
    assert not hasattr(mt5module, "SYMBOL_ORDER_SL")  # MQL5 values the package does not export


# --- functions and their argument rules ----------------------------------------------------------


def test_every_function_exists(session):
    for name in FUNCTIONS:
        assert callable(getattr(session.api, name)), name
        assert callable(getattr(mt5module, name)), name


def test_every_function_answers_a_call_in_the_packages_form(session):
    for name, (args, kwargs) in session.valid_calls().items():
        result = session.call(name, args, kwargs)
        if name == "shutdown":
            assert result is None  # the package's shutdown() returns None
            continue
        assert result is not None and result is not False, (name, session.api.last_error())
        if name != "last_error":
            assert session.api.last_error()[0] == constants.RES_S_OK, name


@pytest.mark.parametrize("name", [n for n, s in FUNCTIONS.items() if s["arguments"] == NO_ARGUMENTS])
def test_no_argument_functions_refuse_arguments(session, name):
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no arguments \(1 given\)"):
        session.call(name, (1,))
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no keyword arguments"):
        session.call(name, (), {"x": 1})


@pytest.mark.parametrize("name", [n for n, s in FUNCTIONS.items() if s["arguments"] == POSITIONAL_ONLY])
def test_positional_only_functions_refuse_keywords_and_wrong_counts(session, name):
    args, _ = session.valid_calls()[name]
    by_name = dict(zip(SIGNATURES[name].names, args, strict=False))
    with pytest.raises(TypeError, match=rf"{name}\(\) takes no keyword arguments"):
        session.call(name, (), by_name)
    with pytest.raises(TypeError, match=rf"{name}\(\) takes (exactly|at least) \d+ arguments? \(0 given\)"):
        session.call(name, ())
    with pytest.raises(TypeError, match=rf"{name}\(\) takes (exactly|at most) \d+ arguments? \(\d+ given\)"):
        session.call(name, (*args, *args))


@pytest.mark.parametrize("name", ["positions_get", "orders_get", "symbols_get"])
def test_filters_refuse_unnamed_arguments(session, name):
    failure = session.call(name, ("*",))
    assert failure is None
    assert session.api.last_error() == (-2, "Unnamed arguments not allowed")
    assert session.call(name, (), {"group": "*"}) is not None


def test_history_by_ticket_or_position_takes_them_by_name_only(session):
    order = session.sent["order"]
    assert session.api.history_deals_get(ticket=order)
    assert session.api.history_orders_get(ticket=order)
    assert session.api.history_deals_get(order) is None  # one positional date is not a selection
    with pytest.raises(TypeError, match="'date_from' is an invalid keyword argument"):
        session.api.history_deals_get(date_from=session.now, date_to=session.now)


def _wrong_type_cases():
    for name, sig in SIGNATURES.items():
        for param in sig.params:
            yield pytest.param(name, param.name, id=f"{name}-{param.name}")


def _with_wrong(sig, param: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The valid call with ``param`` set to a value of the wrong kind, passed the way it can be."""
    wrong = WRONG[sig.param(param).kind]
    slots = [p.name for p in sig.params if p.how != KW]
    if sig.param(param).how == KW or param in kwargs:
        return args, dict(kwargs, **{param: wrong})
    index = slots.index(param)
    if index < len(args):
        return (*args[:index], wrong, *args[index + 1 :]), kwargs
    assert index == len(args), (sig.name, param)
    return (*args, wrong), kwargs


@pytest.mark.parametrize(("name", "param"), list(_wrong_type_cases()))
def test_a_wrong_value_type_gives_the_failure_value_and_invalid_argument(session, name, param):
    args, kwargs = _with_wrong(SIGNATURES[name], param, *session.valid_calls()[name])
    assert session.call(name, args, kwargs) is failure_of(name)
    assert session.api.last_error() == (-2, f'Invalid "{param}" argument')


@pytest.mark.parametrize(("field", "kind"), list(REQUEST_FIELDS.items()))
@pytest.mark.parametrize("name", ["order_send", "order_check"])
def test_request_fields_must_have_the_packages_types(session, name, field, kind):
    ask = session.get(session.api.symbol_info_tick(session.symbol))["ask"]
    request = dict(session.market_buy(ask), **{field: WRONG[kind]})
    before = session.api.positions_total()
    assert session.call(name, (request,)) is None
    assert session.api.last_error() == (-2, f'Invalid "{field}" argument')
    assert session.api.positions_total() == before  # nothing was executed


def test_an_int_volume_is_refused_and_a_float_one_fills(session):
    """The issue's first example: ``volume=1`` is not ``volume=1.0`` for the package."""
    ask = session.get(session.api.symbol_info_tick(session.symbol))["ask"]
    before = session.api.positions_total()
    request = dict(session.market_buy(ask), volume=1)
    assert session.api.order_send(request) is None
    assert session.api.last_error() == (-2, 'Invalid "volume" argument')
    assert session.api.positions_total() == before


# --- result types ------------------------------------------------------------------------------


def _results(session) -> dict[str, object]:
    api, s = session.api, session.symbol
    order = session.sent["order"]
    assert api.market_book_add(s) is True
    ask = session.get(api.symbol_info_tick(s))["ask"]
    sent = api.history_orders_get(ticket=order)
    results = {
        "TerminalInfo": api.terminal_info(),
        "AccountInfo": api.account_info(),
        "SymbolInfo": api.symbol_info(s),
        "Tick": api.symbol_info_tick(s),
        "OrderCheckResult": api.order_check(session.market_buy(ask)),
        "TradePosition": api.positions_get(symbol=s)[0],
        "TradeOrder": sent[0],
        "TradeDeal": api.history_deals_get(ticket=order)[0],
        "BookInfo": api.market_book_get(s)[0],
    }
    results["OrderSendResult"] = api.order_send(session.market_buy(ask))
    results["TradeRequest"] = (
        results["OrderSendResult"]["request"]
        if session.via == "bridge"
        else results["OrderSendResult"].request
    )
    assert api.market_book_release(s) is True
    return results


def test_every_result_type_has_the_real_fields_in_the_real_order(session):
    results = _results(session)
    assert set(results) == set(TYPES)
    for type_name, fields in TYPES.items():
        result = results[type_name]
        if session.via == "bridge":
            assert type(result) is dict and list(result) == fields, type_name
            continue
        assert type(result).__name__ == type_name and isinstance(result, tuple)
        assert list(result._asdict()) == fields and len(result) == len(fields), type_name
        assert [getattr(result, field) for field in fields] == list(result)
        assert not hasattr(result, "_fields") and not hasattr(result, "_replace")  # as in the package


def test_rates_and_ticks_have_the_real_dtypes(session):
    s, now, minute = session.symbol, session.now, dt.timedelta(minutes=1)
    api = session.api
    rates = [
        api.copy_rates_from_pos(s, constants.TIMEFRAME_M1, 0, 5),
        api.copy_rates_from(s, constants.TIMEFRAME_M1, now, 5),
        api.copy_rates_range(s, constants.TIMEFRAME_M1, now - 5 * minute, now),
    ]
    ticks = [
        api.copy_ticks_from(s, now - minute, 5, constants.COPY_TICKS_ALL),
        api.copy_ticks_range(s, now - minute, now, constants.COPY_TICKS_ALL),
    ]
    for rows, fields in [(r, RATES_FIELDS) for r in rates] + [(t, TICKS_FIELDS) for t in ticks]:
        if session.via == "bridge":  # by column, in the dtype's field order, every column as long
            assert list(rows) == [name for name, _ in fields]
            assert len({len(column) for column in rows.values()}) == 1 and len(rows["time"]) > 0
        else:
            assert len(rows) > 0
            assert rows.dtype.descr == fields
