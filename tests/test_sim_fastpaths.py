"""The simulator's shortcuts answer exactly what the long way answers.

The simulator is the project's measuring instrument, so its per-call shortcuts must not change a
single answer: bind()'s memo of accepted call shapes (a call with a memoised shape must still be
refused for each bad value, and a refused shape is never memoised), the stand-in's way past bind()
for plainly good arguments, the forming bar summarised in Python for short bars against numpy for
long ones, and bars of a one-day window (one copy) against the same rows read through a window
that spans two days (the general loop).
"""

import datetime as dt
import itertools
import random

import numpy as np
import pytest

from mt5bridge.constants import TIMEFRAME_H1, TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M30, TIMEFRAME_SECONDS
from mt5bridge.plain import to_plain
from mt5bridge.signatures import (
    KW,
    NO_ARGUMENTS,
    SIGNATURES,
    Refused,
    Signature,
    _shape,
    bind,
    plain_positional_types,
)
from mt5bridge.sim import pricepath
from mt5bridge.sim.pricepath import _long_bar, _short_bar
from mt5bridge.sim.records import RATES_DTYPE, OrderSendResult, TerminalInfo, Tick, TradeRequest
from mt5bridge.sim.terminal import SimTerminal
from mt5bridge.sim.tradingtime import DAY_SECONDS

#: One value of each kind the package tells apart, and some it refuses everywhere.
VALUES = (
    "EURUSD", 1, 0, 2.5, True, None, dt.datetime(2026, 1, 5, tzinfo=dt.UTC), {"action": 1, "volume": 0.1},
    {"volume": 1}, {"symbol": 7}, [1], b"x",
)  # fmt: skip


def outcome(sig: Signature, args: tuple, kwargs: dict):
    try:
        bound = bind(sig, args, kwargs)
    except TypeError as exc:
        return "TypeError", str(exc)
    except Refused as refused:
        return "Refused", refused.error
    return "bound", [(name, id(value)) for name, value in bound.items()]


def shapes(sig: Signature):
    """(number of positional arguments, keyword names in order) around the signature's own."""
    names = [p.name for p in sig.params] + ["bogus"]
    keywords = [()] + [(n,) for n in names] + list(itertools.permutations(names, 2))
    for given in range(len(sig.params) + 2):
        for words in keywords:
            yield given, words


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_memoised_shapes_bind_and_refuse_like_a_cold_binder(name):
    table = SIGNATURES[name]
    warm = Signature(table.name, table.form, table.params, table.failure)  # its memo fills up below
    pick = random.Random(name).choice
    checked = refused_values = 0
    for given, words in shapes(table):
        for _ in range(6):  # the same shape with other values: the memo must not skip a check
            args = tuple(pick(VALUES) for _ in range(given))
            kwargs = {word: pick(VALUES) for word in words}
            cold = Signature(table.name, table.form, table.params, table.failure)
            expected = outcome(cold, args, kwargs)
            assert outcome(warm, args, kwargs) == expected, (args, kwargs)
            assert outcome(warm, args, kwargs) == expected, (args, kwargs)  # now from the memo
            checked += 1
            refused_values += expected[0] == "Refused" and (given, *words) in warm.shapes
    assert checked > 0
    if table.params:
        assert refused_values > 0  # a memoised shape still refused a bad value
    accepted = set()
    for given, words in shapes(table):
        try:
            _shape(table, given, words)
        except (TypeError, Refused):
            continue
        accepted.add((given, *words))
    assert set(warm.shapes) == accepted  # every accepted shape met, and only those memoised


def test_a_refused_shape_is_refused_again_and_not_memoised():
    sig = Signature("copy_rates_from_pos", SIGNATURES["copy_rates_from_pos"].form, SIGNATURES["copy_rates_from_pos"].params)
    for _ in range(2):
        with pytest.raises(TypeError, match=r"takes no keyword arguments"):
            bind(sig, ("EURUSD", 1, 0), {"count": 10})
        with pytest.raises(TypeError, match=r"takes exactly 4 arguments \(3 given\)"):
            bind(sig, ("EURUSD", 1, 0), {})
    assert sig.shapes == {}
    assert bind(sig, ("EURUSD", 1, 0, 10), {}) == {"symbol": "EURUSD", "timeframe": 1, "start_pos": 0, "count": 10}
    with pytest.raises(Refused) as refused:
        bind(sig, ("EURUSD", 1, 0, 10.0), {})  # memoised shape, bad value
    assert refused.value.error == (-2, 'Invalid "count" argument')


def _row(summary: tuple) -> bytes:
    return np.array((0, *summary), dtype=RATES_DTYPE).tobytes()


def test_short_bar_summary_is_numpys_to_the_bit():
    rng = np.random.default_rng(7)
    windows = [np.full(5, 123_456, np.int32), np.array([1, 2] * 30, np.int32), np.array([7], np.int32)]
    windows += [(100_000 + rng.integers(-3, 4, size=n).cumsum()).astype(np.int32) for n in range(1, 301, 7)]
    windows += [rng.integers(0, 2**31 - 1, size=50).astype(np.int32)]
    for bid in windows:
        spread = rng.integers(0, 400, size=bid.size).astype(np.int16)
        for scale in (1, 100, 1000, 100_000):
            assert _row(_short_bar(bid, spread, scale)) == _row(_long_bar(bid, spread, scale))


@pytest.fixture(scope="module")
def terminal():
    term = SimTerminal(seed=11, stepped=True, start=dt.datetime(2026, 1, 7, 13, 17, 29, tzinfo=dt.UTC))
    assert term.initialize()
    return term


@pytest.mark.parametrize("symbol", ["EURUSD", "USDJPY", "XAUUSD"])
@pytest.mark.parametrize("timeframe", [TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M30, TIMEFRAME_H1])  # M30, H1: long forming bars
def test_one_day_window_is_the_general_loops_rows(terminal, symbol, timeframe):
    seconds = TIMEFRAME_SECONDS[timeframe]
    path = terminal._quotes.path(symbol)
    k = terminal._k
    forming = k // seconds
    per_day = DAY_SECONDS // seconds
    day_start = forming - forming % per_day
    span = path.bars(seconds, day_start - per_day, forming, k)  # crosses a day: the general loop
    assert span.dtype == RATES_DTYPE
    for first in sorted({forming, forming - 1, max(day_start, forming - 12), day_start}):
        for last in sorted({first, forming - 1, forming}):
            if last < first:
                continue
            got = path.bars(seconds, first, last, k)
            want = span[first - (day_start - per_day) : last - (day_start - per_day) + 1]
            assert got.dtype == RATES_DTYPE and got.tobytes() == want.tobytes(), (first, last)


def test_day_lookup_shortcut_keeps_answers_and_lru(monkeypatch, terminal):
    monkeypatch.setattr(pricepath, "DAY_CACHE_SIZE", 2)
    path = pricepath.PricePath(5, terminal._symbols["EURUSD"])  # not the shared cached path
    first = path.day(0)
    assert path.day(0) is first
    second = path.day(1)
    assert path.day(0) is first  # still cached: 1 day was added, capacity 2
    path.day(2)  # evicts day 1, the least recent
    assert path.day(1) is not second
    assert path.day(1).bid.tobytes() == second.bid.tobytes()


def test_records_and_plain_fast_paths():
    fields = {name: float(i) for i, name in enumerate(Tick.FIELDS)}
    tick = Tick(**fields)
    assert tuple(tick) == tuple(fields.values()) and type(tick) is Tick
    for bad in ({**fields, "bogus": 1.0}, {k: v for k, v in fields.items() if k != "bid"}):
        with pytest.raises(TypeError, match="missing fields"):
            Tick(**bad)
    swapped = {**{k: v for k, v in fields.items() if k != "ask"}, "bogus": 1.0}  # as many, one wrong
    with pytest.raises(TypeError, match=r"missing fields \['ask'\], unknown fields \['bogus'\]"):
        Tick(**swapped)
    info = TerminalInfo(connected=False)  # a type with DEFAULTS: the rest filled in
    assert info.connected is False and info.maxbars == 100_000
    known = TerminalInfo.from_known({"connected": False, "build": 7})  # the merge, against the long way
    assert known == TerminalInfo(**{**TerminalInfo.DEFAULTS, "connected": False, "build": 7}) and type(known) is TerminalInfo
    for bad in ({"connected": False, "bogus": 1}, {"bogus": 1}):
        with pytest.raises(TypeError, match=r"has no fields \['bogus'\]"):
            TerminalInfo.from_known(bad)
    with pytest.raises(KeyError):
        Tick.from_known({"bid": 1.0})  # no DEFAULTS: every field must be known
    flat = to_plain(tick)
    assert flat == fields and list(flat) == list(Tick.FIELDS)
    assert flat is not to_plain(tick)
    request = TradeRequest(*range(len(TradeRequest.FIELDS)))
    sent = OrderSendResult(*([np.float64(1.5)] + [0] * 9 + [request]))
    plain = to_plain(sent)
    assert type(plain["retcode"]) is float and plain["request"] == dict(zip(TradeRequest.FIELDS, range(17), strict=True))


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_plain_positional_types_only_name_calls_bind_accepts_in_order(name):
    """The stand-in's fast way in (mt5module._method) skips bind() for these type tuples: each must
    bind every argument, positionally and in order, whatever the values; and the common calls are in."""
    sig = SIGNATURES[name]
    plain = plain_positional_types(sig)
    samples = VALUES + (dt.datetime(2030, 1, 1), -5, 10**30, -0.0, float("nan"), "", "x" * 300, False)
    met = set()
    for given in range(len(sig.params) + 2):
        for args in itertools.product(samples, repeat=given) if given <= 3 else (
                tuple(random.Random(i).choice(samples) for _ in range(given)) for i in range(3000)):
            if tuple(map(type, args)) not in plain:
                continue
            met.add(tuple(map(type, args)))
            bound = bind(Signature(sig.name, sig.form, sig.params, sig.failure), args, {})
            assert list(bound.values()) == list(args) and len(bound) == len(args), args
            assert list(bound) == [p.name for p in sig.params if p.how != KW][:len(args)]
    assert met == plain or len(sig.params) > 3  # every tuple of the set was tried
    if sig.form == NO_ARGUMENTS:
        assert plain == {()}
    assert (name in ("order_send", "order_check")) == (not plain)


READS = (
    ("terminal_info", ()), ("account_info", ()), ("version", ()), ("symbols_total", ()), ("positions_total", ()),
    ("orders_total", ()), ("positions_get", ()), ("orders_get", ()), ("symbols_get", ()), ("last_error", ()),
    ("symbol_info", ("EURUSD",)), ("symbol_info", ("NOPE",)), ("symbol_info_tick", ("XAUUSD",)),
    ("copy_rates_from_pos", ("EURUSD", TIMEFRAME_M1, 0, 13)), ("copy_rates_from_pos", ("EURUSD", 12345, 0, 13)),
    ("copy_rates_from_pos", ("EURUSD", TIMEFRAME_M5, -1, 13)),
    ("history_deals_total", (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 9, tzinfo=dt.UTC))),
    ("history_deals_get", (dt.datetime(2026, 1, 1), 1_800_000_000)),
    ("history_orders_total", (1_700_000_000, dt.datetime(2026, 1, 9, tzinfo=dt.UTC))),
    ("history_orders_get", (1_700_000_000,)), ("history_deals_get", ()),
    ("symbol_select", ("EURUSD",)), ("symbol_select", ("EURUSD", True)),
)


def _answer(value):
    return value.tobytes() if isinstance(value, np.ndarray) else value


def test_fast_way_in_answers_as_the_full_binder(monkeypatch):
    """Every read the bot makes, with plain and with refused values: the fast way (the module's
    method) and the full way (_invoke: bind, then route) give the same answer and last_error.
    Off UTC, so that a naive datetime converted otherwise than the package does (local time) shows."""
    import time

    from mt5bridge.sim.mt5module import Mt5Module

    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()

    terminal = SimTerminal(seed=3, stepped=True)
    module = Mt5Module(terminal)
    assert module.initialize()
    request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "deviation": 10,
               "type_filling": 1, "type_time": 0, "magic": 7, "comment": "t"}
    assert module.order_send(request).retcode == 10009  # a position and a deal for the reads to show
    terminal.advance(90)
    deal_time = module.history_deals_get(0, 2_000_000_000)[-1].time
    local = dt.datetime.fromtimestamp(deal_time)  # naive: local time, as the package reads it
    around = (local - dt.timedelta(minutes=30), local + dt.timedelta(minutes=30))
    assert module.history_deals_total(*around) == 1
    for name, args in READS + (("history_deals_total", around), ("history_orders_get", around)):
        fast = _answer(getattr(module, name)(*args))
        fast_error = module.last_error()
        full = _answer(module._invoke(name, args, {}))
        assert (fast, fast_error) == (full, module.last_error()), name
    monkeypatch.undo()
    time.tzset()


def test_the_kept_account_state_is_a_fresh_one_after_every_change():
    """Broker.account keeps its last state for the inputs it was worked out from: after each thing
    that moves the account (ticks, fills, partial closes, SL/TP edits, pins, swaps, deposits) it
    answers what a fresh computation (explicit zero extras, never kept) answers."""
    from decimal import Decimal

    terminal = SimTerminal(seed=11, stepped=True)
    broker = terminal._broker
    assert terminal.initialize()

    def same():
        with terminal._lock:
            terminal._sync()
            k = terminal._k
            kept = broker.account(k)
            assert broker.account(k) is kept  # asked again: kept
            fresh = broker.account(k, Decimal(0), Decimal(0))  # a fresh computation: the same, written alike
            assert repr(kept) == repr(fresh), (k, kept, fresh)

    def send(**fields):
        request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "deviation": 20, "type_filling": 1,
                   "type_time": 0, "magic": 7, "comment": "t", **fields}
        result = terminal.order_send(request)
        assert result.retcode == 10009, result

    same()
    send()
    same()
    send(symbol="USDJPY", type=1, volume=0.3)  # a short, converted at its own price
    same()
    terminal.advance(30)
    same()
    eur = next(p for p in terminal.positions_get() if p.symbol == "EURUSD")
    send(type=1, volume=0.04, position=eur.ticket)  # a partial close: volume and balance move
    same()
    send(action=6, position=eur.ticket, sl=round(eur.price_open - 0.01, 5), tp=0.0, volume=0.06)  # SL only
    same()
    terminal.set_price("USDJPY", 150.5)
    same()
    terminal.set_price("USDJPY", 151.5)  # the same symbol pinned elsewhere
    same()
    terminal.clear_price("USDJPY")
    same()
    # Half a second before Friday's close, then past the rollover into the weekend: the tick
    # stands still (the weekend maps to Friday's last tick) while the swap is charged.
    server = terminal.server_now()
    friday_close = dt.datetime(server.year, server.month, server.day) + dt.timedelta(days=4 - server.weekday(), hours=24)
    terminal.advance((friday_close - server).total_seconds() - 0.5)
    same()
    swaps = [p.swap for p in terminal.positions_get()]
    k = terminal._k
    terminal.advance(1)
    assert terminal._k == k and [p.swap for p in terminal.positions_get()] != swaps
    same()
    terminal.deposit(250.0)
    same()
    broker.books.balance = broker.books.balance.quantize(Decimal("0.001"))  # the same amount, written otherwise
    same()
    assert broker.account(terminal._k).balance.as_tuple().exponent == -3
