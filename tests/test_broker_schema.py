"""The gateway's broker-data schemas, its guard's memory, and the equity check that halts sizing.

Records start from what the simulated terminal really answers (converted to plain data as the
gateway sees it), so a schema that refused good data would fail here first.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import text

from bot.engine.books import Books
from bot.engine.equity import CONFIRM_CYCLES, EquityGuard
from bot.gateway import AccountState, BrokerFault, Deal, OrderRequest
from bot.gateway.convert import bar_columns
from bot.gateway.guard import BrokerDataGuard, raw_text
from bot.gateway.mt5api import Mt5ApiGateway
from bot.gateway.schema import REASONS, SCHEMAS, Context, check
from db import DealRecord, Repository, init_db
from mt5bridge import constants as mt5
from mt5bridge.plain import to_plain
from mt5bridge.sim import SimTerminal

KNOWN = {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD"}
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2099, 1, 1, tzinfo=UTC)


class Recorder:
    """The simulated terminal, keeping the raw reply of the last order_send."""

    def __init__(self, sim):
        self.sim = sim
        self.sent = None

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def order_send(self, request):
        self.sent = self.sim.order_send(request)
        return self.sent


@pytest.fixture(scope="module")
def real():
    """One record of every kind, as the simulated terminal answers after some trading."""
    sim = SimTerminal(seed=3, stepped=True)
    terminal = Recorder(sim)
    gateway = Mt5ApiGateway(lambda: terminal)
    gateway.connect()
    sim.advance(3600)
    ask = gateway.quote("EURUSD").ask
    gateway.order_send(OrderRequest(symbol="EURUSD", side="BUY", volume=Decimal("0.10"), price=ask, sl=None,
                                    tp=None, deviation=20, magic=7, comment="tw-test"))  # as the bot sends
    sim.advance(60)
    deposit = sim.deposit(250)  # a balance operation: symbol "", volume 0, price 0
    records = {
        "balance_deal": next(to_plain(d) for d in sim.history_deals_get(EPOCH, FAR) if d.ticket == deposit),
        "deal": next(to_plain(d) for d in sim.history_deals_get(EPOCH, FAR) if d.ticket != deposit),
        "position": to_plain(sim.positions_get()[0]),
        "order": to_plain(sim.history_orders_get(EPOCH, FAR)[-1]),
        "quote": to_plain(sim.symbol_info_tick("EURUSD")),
        "bars": bar_columns(sim.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M1, 0, 50)),
        "account": to_plain(sim.account_info()),
        "symbol": to_plain(sim.symbol_info("EURUSD")),
        "order_result": to_plain(terminal.sent),
    }
    return records, datetime.fromtimestamp(records["quote"]["time"], UTC)


def context(clock):
    return Context(clock, lambda name: name in KNOWN)


def test_every_record_the_terminal_really_sends_passes_its_schema(real):
    records, clock = real
    assert set(records) == set(SCHEMAS)
    for kind, record in records.items():
        assert check(kind, record, context(clock)) is None, kind


# (kind, field, bad value, reason): one row per rule the schemas apply.
CASES = [
    ("deal", "profit", math.nan, "not_finite"),
    ("deal", "profit", math.inf, "not_finite"),
    ("deal", "profit", 1e20, "range"),
    ("deal", "commission", "12", "type"),
    ("deal", "volume", 0.0, "sign"),
    ("deal", "volume", -0.1, "sign"),
    ("deal", "price", 0.0, "sign"),
    ("deal", "type", 99, "enum"),
    ("deal", "type", mt5.DEAL_TYPE_BALANCE, "enum"),  # a balance operation is never a trade deal
    ("deal", "entry", 99, "enum"),
    ("deal", "reason", 99, "enum"),
    ("deal", "ticket", True, "type"),
    ("deal", "ticket", 0, "sign"),
    ("deal", "ticket", 2**64, "range"),
    ("deal", "comment", "x" * 65, "length"),
    ("deal", "symbol", "NOTASYMBOL", "unknown_symbol"),
    ("deal", "symbol", "", "unknown_symbol"),
    ("deal", "symbol", "S" * 33, "length"),
    ("deal", "time", 86_400, "time_window"),  # 1970
    ("deal", "time", 32_503_680_000, "time_window"),  # year 3000
    ("deal", "time", None, "missing"),
    ("position", "volume", math.nan, "not_finite"),
    ("position", "price_current", -1.0, "sign"),
    ("position", "type", 5, "enum"),
    ("position", "sl", -0.5, "sign"),
    ("order", "state", 42, "enum"),
    ("order", "type", 99, "enum"),
    ("order", "time_setup", 32_503_680_000, "time_window"),
    ("quote", "bid", 0.0, "sign"),
    ("quote", "ask", math.nan, "not_finite"),
    ("quote", "time", 0, "time_window"),
    ("account", "equity", 1e20, "range"),
    ("account", "balance", math.nan, "not_finite"),
    ("account", "margin", -5.0, "sign"),
    ("account", "equity", None, "missing"),
    ("symbol", "trade_tick_value", 0.0, "sign"),
    ("symbol", "digits", 2.5, "type"),
    ("symbol", "volume_step", 0.0, "sign"),
    ("order_result", "price", math.nan, "not_finite"),
    ("order_result", "volume", -1.0, "sign"),
]


@pytest.mark.parametrize(("kind", "field", "value", "reason"), CASES, ids=[f"{c[0]}.{c[1]}={c[2]!r}"[:60] for c in CASES])
def test_a_bad_field_is_refused_with_its_reason(real, kind, field, value, reason):
    records, clock = real
    record = dict(records[kind])
    if value is None:
        del record[field]
    else:
        record[field] = value
    problem = check(kind, record, context(clock))
    assert problem is not None and (problem.reason, problem.field) == (reason, field), problem
    assert problem.reason in REASONS


def test_record_level_rules(real):
    records, clock = real
    quote = dict(records["quote"], ask=records["quote"]["bid"] - 0.001)
    assert check("quote", quote, context(clock)).reason == "crossed"
    symbol = dict(records["symbol"], volume_max=0.001)
    assert check("symbol", symbol, context(clock)).reason == "range"
    assert check("deal", ["not", "a", "dict"], context(clock)).reason == "type"


@pytest.mark.parametrize(("change", "reason"), [
    (lambda c: c["close"].__setitem__(3, math.nan), "not_finite"),
    (lambda c: [c[n].__setitem__(slice(None), 1.1) for n in ("open", "high", "low", "close")], "flat"),
    (lambda c: [c[n].__setitem__(slice(None), 0.0) for n in ("open", "high", "low", "close")], "sign"),
    (lambda c: c["time"].__setitem__(slice(None), c["time"][::-1].copy()), "not_monotonic"),
    (lambda c: c["high"].__setitem__(4, c["low"][4] - 0.01), "crossed"),
    (lambda c: c.__setitem__("close", np.array([], dtype=float)), "missing"),
    # columns of different lengths (a hostile or broken bridge reply): never built into bars
    (lambda c: c.__setitem__("time", c["time"][1:]), "length"),
    (lambda c: c.__setitem__("low", c["low"][:-1]), "length"),
    (lambda c: c.__setitem__("close", c["close"][:2]), "length"),
])
def test_bad_bars_are_refused(real, change, reason):
    records, clock = real
    columns = {name: np.array(values, copy=True) for name, values in records["bars"].items()}
    change(columns)
    assert check("bars", columns, context(clock)).reason == reason


def test_time_window_follows_the_broker_clock(real):
    records, clock = real
    deal = dict(records["deal"])
    deal["time"] = int((clock - timedelta(days=400)).timestamp())
    assert check("deal", deal, context(clock)) is None  # a deal of last year: fine
    deal["time"] = int((clock + timedelta(days=2)).timestamp())
    assert check("deal", deal, context(clock)).reason == "time_window"
    assert check("deal", deal, context(None)) is None  # clock unknown: only 2000..2100


def test_the_quarantined_copy_is_plain_json_text():
    text = raw_text({"profit": math.nan, "swap": -math.inf, "comment": "c" * 1000 + "\x00", "n": np.int64(3)})
    assert '"profit": "nan"' in text and '"swap": "-inf"' in text and "(1001 characters)" in text
    assert "NaN" not in text and "\x00" not in text


# -- the guard's memory ---------------------------------------------------------------------------------


class Sink(list):
    def __call__(self, rejection):
        self.append(rejection)


def guard_with_sink(clock):
    guard = BrokerDataGuard(lambda name: name in KNOWN)
    guard.clock = clock
    guard.on_reject = Sink()
    return guard


def test_a_refused_history_record_is_judged_and_reported_once(real):
    records, clock = real
    guard = guard_with_sink(clock)
    bad = dict(records["deal"], ticket=777, profit=math.nan)
    for _ in range(5):
        assert guard.judge("deal", bad, "ticket 777") is not None
    assert [(r.reason, r.key) for r in guard.on_reject] == [("not_finite", "ticket 777")]
    fixed = dict(bad, profit=1.0)
    assert guard.judge("deal", fixed, "ticket 777") is None  # the broker fixed it: judged afresh, accepted


def test_a_deal_ticket_with_other_content_is_a_conflict_and_the_first_is_kept(real):
    records, clock = real
    guard = guard_with_sink(clock)
    first = dict(records["deal"], ticket=888)
    other = dict(first, profit=first["profit"] + 100)
    assert guard.judge("deal", first, "ticket 888") is None
    for _ in range(3):  # both versions keep coming back in the history window
        assert guard.judge("deal", first, "ticket 888") is None
        assert guard.judge("deal", other, "ticket 888").reason == "ticket_conflict"
    assert [(r.reason, r.conflict) for r in guard.on_reject] == [("ticket_conflict", True)]


def test_changing_records_are_reported_once_per_streak(real):
    records, clock = real
    guard = guard_with_sink(clock)
    good = records["quote"]
    zero_bid = dict(good, bid=0.0)
    for step in range(4):  # the time moves every cycle: still one streak
        assert guard.judge("quote", dict(zero_bid, time=good["time"] + step), "EURUSD").reason == "sign"
    assert guard.judge("quote", dict(good, ask=math.nan), "EURUSD").reason == "not_finite"  # another reason
    assert guard.judge("quote", good, "EURUSD") is None
    assert guard.judge("quote", zero_bid, "EURUSD").reason == "sign"  # a new streak
    assert [r.reason for r in guard.on_reject] == ["sign", "not_finite", "sign"]


def test_the_guard_memory_is_bounded(real):
    records, clock = real
    guard = guard_with_sink(clock)
    guard.memory = 50
    for ticket in range(1, 500):
        guard.note_deal(ticket)
        guard.judge("deal", dict(records["deal"], ticket=ticket), f"ticket {ticket}")
        guard.judge("deal", dict(records["deal"], ticket=ticket, volume=-1.0), f"ticket {ticket}")
    assert len(guard._deals) <= 50 and len(guard._refused) <= 50
    assert guard.deals_seen >= 499


def test_none_with_no_error_is_a_broker_fault_naming_last_error():
    class Terminal:
        def initialize(self, **_):
            return True

        def positions_get(self, **_):
            return None

        def last_error(self):
            return (mt5.RES_S_OK, "Success")

    errors = []
    gateway = Mt5ApiGateway(Terminal, observer=lambda call, seconds, error: errors.append((call, error)))
    gateway.connect()
    with pytest.raises(BrokerFault, match="positions_get returned None although last_error says 1 'Success'"):
        gateway.positions()
    assert errors[-1][0] == "positions_get" and errors[-1][1].kind == "broker_fault"


# -- the equity check ----------------------------------------------------------------------------------


def state(equity, balance=10_000):
    return AccountState(login=1, currency="USD", balance=Decimal(balance), equity=Decimal(equity),
                        profit=Decimal(0), margin=Decimal(0), free_margin=Decimal(equity), margin_level=None,
                        leverage=100)


def test_equity_that_jumps_without_a_deal_halts_new_orders_until_plausible_again():
    guard = EquityGuard(Decimal("0.5"))
    assert guard.check(state(10_000), deals_seen=5) is None
    assert guard.check(state(14_000), deals_seen=5) is None  # within half of the reference
    assert guard.check(state(45_000), deals_seen=5) == "equity_jump"
    assert guard.check(state(14_500), deals_seen=5) is None  # back: resumes
    assert guard.reference == Decimal(14_500)
    assert guard.check(None, deals_seen=5) == "account_invalid"


def test_a_deal_explains_only_the_balance_it_moved():
    guard = EquityGuard(Decimal("0.5"))
    guard.check(state(10_000), deals_seen=1)
    assert guard.check(state(30_000, balance=10_050), deals_seen=2) == "equity_jump"  # a small close: no excuse
    assert guard.check(state(40_000, balance=40_000), deals_seen=3) is None  # a deposit of 30 000


def test_a_new_level_that_holds_is_believed_after_the_confirm_cycles():
    guard = EquityGuard(Decimal("0.5"))
    guard.check(state(10_000), deals_seen=0)
    verdicts = [guard.check(state(25_000 + step), deals_seen=0) for step in range(CONFIRM_CYCLES)]
    assert verdicts[:-1] == ["equity_jump"] * (CONFIRM_CYCLES - 1) and verdicts[-1] is None


def test_the_gateway_filters_refused_deals_and_never_builds_a_position_from_part_of_them(real):
    records, _clock = real
    good = dict(records["deal"], ticket=11, position_id=5)
    bad = dict(good, ticket=12, profit=math.nan)
    balance = dict(good, ticket=13, symbol="", type=mt5.DEAL_TYPE_BALANCE, profit=500.0)

    class Terminal:
        def initialize(self, **_):
            return True

        def history_deals_get(self, *args, position=None, **_):
            return [good, bad, balance]

        def symbol_info(self, name):
            return records["symbol"] if name in KNOWN else None

        def last_error(self):
            return (mt5.RES_E_INVALID_PARAMS, "Invalid params")

    reported = Sink()
    gateway = Mt5ApiGateway(Terminal)
    gateway.set_rejection_sink(reported)
    gateway.connect()
    gateway.clock.observe(0, 0)  # a UTC server: times convert only once the broker clock is measured (issue 12)
    for _ in range(3):
        assert [d.ticket for d in gateway.deals(EPOCH, FAR)] == [11]
    assert gateway.deals_for_position(5) == []  # one of its deals is refused: no trade from the rest
    assert [(r.key, r.reason) for r in reported] == [("ticket 12", "not_finite")]
    assert gateway.deals_seen == 3  # the balance operation counts as a deal for the equity check


# -- the store's side: a deal the store holds with other content ------------------------------------


def test_books_never_overwrite_a_stored_deal_and_say_the_conflict_once(tmp_path, caplog):
    now = datetime(2026, 1, 20, 12, tzinfo=UTC)
    database = init_db(f"sqlite:///{tmp_path}/books.db")
    repo = Repository(database)

    def deal(ticket, entry, time, profit="0.00"):
        return Deal(ticket=ticket, order=ticket, position_id=50, symbol="EURUSD", type=mt5.DEAL_TYPE_BUY,
                    entry=entry, volume=Decimal("0.10"), price=Decimal("1.10000"), profit=Decimal(profit),
                    commission=Decimal("0.00"), swap=Decimal("0.00"), magic=7, comment="tw-x", reason=0, time=time)

    opened = deal(1, mt5.DEAL_ENTRY_IN, now - timedelta(days=30))  # older than the deal window
    closed = deal(2, mt5.DEAL_ENTRY_OUT, now - timedelta(minutes=5), profit="12.00")
    repo.record_deal(DealRecord("5001", 1, 1, 50, "EURUSD", mt5.DEAL_TYPE_BUY, mt5.DEAL_ENTRY_IN, Decimal("0.10"),
                                Decimal("1.10000"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), 7, "tw-x", 0,
                                opened.time))
    rewritten = Deal(**{**opened.__dict__, "price": Decimal("1.20000")})

    class History:
        def deals(self, since, until):
            return [closed]

        def deals_for_position(self, position_id):
            return [rewritten, closed]

    conflicts = []
    books = Books(History(), repo, "5001", 7, {"EURUSD": 5}, on_conflict=lambda: conflicts.append(1))
    with caplog.at_level("ERROR", logger="bot.books"):
        for _ in range(3):
            books.sync(now, 7, open_tickets=set())
    said = [r for r in caplog.records if "conflict" in r.getMessage()]
    assert len(said) == 1 and conflicts == [1]
    assert repo.get_trade("5001", 50) is None  # no trade built from a deal that contradicts the store
    with database.engine.connect() as connection:
        assert connection.execute(text("select price from deals where ticket = 1")).scalar_one() == 1.1
    database.dispose()


def test_the_gateways_own_enum_values_agree_with_mt5bridge_constants():
    """Fallback values, for names mt5bridge.constants may not define yet, never contradict it."""
    from bot.gateway import enums

    defined = [name for name in enums._PACKAGE if hasattr(mt5, name)]
    assert all(getattr(mt5, name) == enums._PACKAGE[name] for name in defined), defined
    assert enums.DEAL_REASONS >= {mt5.DEAL_REASON_CLIENT, mt5.DEAL_REASON_EXPERT, mt5.DEAL_REASON_SL,
                                  mt5.DEAL_REASON_TP, mt5.DEAL_REASON_SO}
    assert not enums.TRADE_DEAL_TYPES & enums.NON_TRADE_DEAL_TYPES


def test_balance_deal_shape_is_accepted_only_for_balance_types(real):
    """symbol "" and volume 0 are a balance operation's; a BUY/SELL deal so shaped is refused."""
    records, clock = real
    balance = records["balance_deal"]
    assert (balance["symbol"], balance["volume"], balance["type"]) == ("", 0.0, mt5.DEAL_TYPE_BALANCE)
    assert check("balance_deal", balance, context(clock)) is None
    for kind in (mt5.DEAL_TYPE_CREDIT, mt5.DEAL_TYPE_CHARGE, mt5.DEAL_TYPE_COMMISSION):
        assert check("balance_deal", {**balance, "type": kind}, context(clock)) is None
    as_trade = {**balance, "type": mt5.DEAL_TYPE_BUY}
    assert check("deal", as_trade, context(clock)).reason == "unknown_symbol"
    assert check("deal", {**as_trade, "symbol": "EURUSD"}, context(clock)).reason == "sign"  # volume 0
    assert check("balance_deal", as_trade, context(clock)).reason == "enum"


# -- the fast path of the schema check ---------------------------------------------------------

NASTY = [None, 0, 1, -1, 7, 0.5, -0.0, 1.0, 2.5, 1e7, 1e8, 1e9, 1e12, 1e13, 2**63, -(2**63), float("nan"),
         float("inf"), float("-inf"), True, False, "", "x", "EURUSD", "NOPE", "A" * 40, "B" * 300, [1], {"a": 1},
         np.int64(3), np.float64(1.5), np.float64("nan"), Decimal("1.5"), EPOCH.timestamp(), FAR.timestamp() + 1,
         datetime(2026, 1, 5, tzinfo=UTC).timestamp(), datetime(2026, 1, 9, tzinfo=UTC).timestamp(),
         datetime(1990, 1, 1, tzinfo=UTC).timestamp(), 3000000000.0]


@pytest.mark.parametrize("clock", [None, datetime(2026, 1, 6, tzinfo=UTC)])
def test_the_quick_yes_only_says_yes_where_the_full_rule_finds_no_problem(clock):
    from bot.gateway.schema import _scalar
    from tests.quick_reference import QUICK as _QUICK

    context = Context(clock, lambda name: name in KNOWN)
    for kind, quick in _QUICK.items():
        rules = {rule.name: rule for rule in SCHEMAS[kind][0]}
        for name, plainly_good in quick:
            for value in NASTY:
                if plainly_good(value, context):
                    assert _scalar(rules[name], value, context) is None, (kind, name, value)
    # ... and it does say yes to the good records the terminal gives (or it saves nothing)
    good = {"ticket": 5, "symbol": "EURUSD", "type": 0, "volume": 0.1, "price_open": 1.1, "price_current": 1.2,
            "sl": 0.0, "tp": 1.3, "profit": -2.5, "swap": 0.0, "magic": 7, "comment": "tw", "time": 1767600000}
    assert all(ok(good.get(name), context) for name, ok in _QUICK["position"])


def test_a_record_with_one_bad_field_gets_the_same_problem_as_before():
    context = Context(datetime(2026, 1, 6, tzinfo=UTC), lambda name: name in KNOWN)
    good = {"ticket": 5, "symbol": "EURUSD", "type": 0, "volume": 0.1, "price_open": 1.1, "price_current": 1.2,
            "sl": 0.0, "tp": 1.3, "profit": -2.5, "swap": 0.0, "magic": 7, "comment": "tw", "time": 1767600000}
    assert check("position", good, context) is None
    for field, value, reason in [("volume", float("nan"), "not_finite"), ("volume", 0, "sign"),
                                 ("price_open", 1e9, "range"), ("type", 9, "enum"), ("symbol", "NOPE", "unknown_symbol"),
                                 ("comment", "c" * 300, "length"), ("time", 10, "time_window"),
                                 ("ticket", True, "type"), ("magic", np.int64(7), "type"), ("ticket", None, "missing")]:
        problem = check("position", {**good, field: value}, context)
        assert (problem.reason, problem.field) == (reason, field), (field, value, problem)


def _bar_batch(rng, n, clock):
    t0 = int(clock.timestamp()) // 60 * 60 - 60 * n
    close = 1.1 + rng.normal(0, 0.001, n).cumsum()
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) + rng.uniform(0, 0.0005, n)
    low = np.minimum(open_, close) - rng.uniform(0, 0.0005, n)
    return {"time": np.arange(t0, t0 + 60 * n, 60, dtype=np.int64), "open": open_, "high": high, "low": low,
            "close": close}


def _spoil(rng, bars):
    """One of the faults a broker's bars can have (or none), in a random column and row."""
    bars = {k: v.copy() for k, v in bars.items()}
    n, row = len(bars["time"]), int(rng.integers(len(bars["time"])))
    price = ("open", "high", "low", "close")[int(rng.integers(4))]
    faults = {
        0: lambda: bars[price].__setitem__(row, math.nan),
        1: lambda: bars[price].__setitem__(row, math.inf),
        2: lambda: bars[price].__setitem__(row, -1.0),
        3: lambda: bars["high"].__setitem__(row, bars["low"][row] - 0.001),  # crossed
        4: lambda: bars["time"].__setitem__(row, bars["time"][max(0, row - 1)]),  # not monotonic (or the first)
        5: lambda: bars["time"].__setitem__(row, bars["time"][row] + 400 * 86400),  # out of the time window
        6: lambda: bars.update({k: np.full(n, 1.1) for k in ("open", "high", "low", "close")}),  # flat
        7: lambda: bars[price].__setitem__(row, 1e30),  # beyond the price limit
    }
    faults.get(int(rng.integers(9)), lambda: None)()
    return bars


@pytest.mark.parametrize("n", [1, 2, 6, 32, 121])
def test_a_bar_batch_is_judged_as_the_full_checks_judge_it(n, monkeypatch):
    """With the fast yes (schema._bars_plainly_good) a spoiled batch gets the same first problem, or none."""
    from bot.gateway import schema

    rng = np.random.default_rng(n)
    clock = datetime(2026, 1, 6, 12, tzinfo=UTC)
    context = Context(clock, lambda name: name in KNOWN)
    batches = [_spoil(rng, _bar_batch(rng, n, clock)) for _ in range(400)]
    fast = [check("bars", b, context) for b in batches]
    monkeypatch.setattr(schema, "_bars_plainly_good", lambda record, context: False)
    slow = [check("bars", b, context) for b in batches]
    assert fast == slow
    assert sum(p is None for p in fast) > 20 and len({p.reason for p in fast if p is not None}) >= 5


def _odd(bars, n):
    """Batches of another shape or dtype than the terminal's (each must be judged as ever)."""
    as_ = lambda dtype: {k: v.astype(dtype) for k, v in bars.items()}  # noqa: E731
    return [
        as_(np.float32), as_(np.int64), as_(np.uint32), as_(np.float16), as_(bool), as_(object),
        {**bars, "time": bars["time"].astype(float)}, {**bars, "time": bars["time"].astype(np.uint64)},
        {**bars, "time": bars["time"][::-1].astype(np.uint64)}, {**bars, "open": bars["open"].astype(np.int16)},
        {**bars, "high": bars["high"].reshape(1, n)},
        {**bars, "low": bars["low"].tolist()}, {**bars, "open": None}, {k: v for k, v in bars.items() if k != "close"},
        {**bars, "time": bars["time"].view(np.ma.MaskedArray)}, {**bars, "close": np.array([], dtype=float)},
        {k: v[::-1].copy() for k, v in bars.items()}, {k: np.ascontiguousarray(v[::2]) for k, v in bars.items()},
        {**bars, "high": bars["high"].astype(">f8")},
    ]


#: A fault in one row of one column: (column, what the row becomes given the batch and the row).
BAR_FAULTS = [
    (price, fault) for price in ("open", "high", "low", "close") for fault in (
        lambda b, r: math.nan, lambda b, r: math.inf, lambda b, r: -math.inf, lambda b, r: 0.0,
        lambda b, r: -0.0, lambda b, r: -1.0, lambda b, r: 1e9, lambda b, r: 1e9 - 1, lambda b, r: 5e-324,
        lambda b, r: b["high"][r] + 1e-9, lambda b, r: b["low"][r] - 1e-9, lambda b, r: b["high"][r],
        lambda b, r: b["low"][r],
    )] + [
    ("time", lambda b, r: b["time"][max(0, r - 1)]), ("time", lambda b, r: b["time"][r] + 59),
    ("time", lambda b, r: b["time"][r] - 61), ("time", lambda b, r: b["time"][r] + 400 * 86400),
    ("time", lambda b, r: b["time"][r] - 4000 * 86400), ("time", lambda b, r: 0), ("time", lambda b, r: -1),
    ("time", lambda b, r: 2**62),
]


@pytest.mark.parametrize("n", [1, 2, 13, 121])
def test_the_bars_quick_yes_changes_no_judgement(n, monkeypatch):
    """Every batch with one fault (first, middle and last row of every column, table above) or of an
    odd shape or dtype gets the same first problem (reason, field, detail) from `check` as from the
    checks without the quick yes (the short-batch lists, the numpy columns), and the quick yes says
    yes only to batches those find no problem in."""
    from bot.gateway import schema

    rng = np.random.default_rng(40 + n)
    clock = datetime(2026, 1, 6, 12, tzinfo=UTC)
    context = Context(clock, lambda name: name in KNOWN)
    good = _bar_batch(rng, n, clock)
    with np.errstate(all="ignore"):  # times as float16 overflow, as a broker's could
        batches = [good, {k: np.full(n, 1.1) if k != "time" else v for k, v in good.items()}, *_odd(good, n)]
    for column, fault in BAR_FAULTS:
        for row in sorted({0, n // 2, n - 1}):
            bad = {k: v.copy() for k, v in good.items()}
            bad[column] = bad[column].astype(float) if column != "time" else bad[column]
            bad[column][row] = fault(good, row)
            batches.append(bad)
    with np.errstate(all="ignore"):
        fast = [check("bars", b, context) for b in batches]
        said_yes = [schema._bars_plainly_good(b, context) for b in batches]
        monkeypatch.setattr(schema, "_bars_plainly_good", lambda record, context: False)
        slow = [check("bars", b, context) for b in batches]  # the checks as they were before the quick yes
    assert fast == slow
    assert said_yes[0] and all(p is None for p, yes in zip(slow, said_yes, strict=True) if yes)
    reasons = {p.reason for p in slow if p is not None}
    assert reasons >= {"not_finite", "sign", "range", "crossed", "time_window", "type", "missing", "flat"}, reasons
    assert n == 1 or "not_monotonic" in reasons
    # Columns of other lengths are never a quick yes (the general path refuses them: reason "length").
    for column in ("time", "close"):
        assert not schema._bars_plainly_good({**good, column: good[column][:-1]}, context)
        assert not schema._bars_plainly_good({**good, column: good[column][:1]}, context) or n == 1


@pytest.mark.parametrize("n", [5, 40, 121])
def test_falling_unsigned_bar_times_are_refused_at_any_length(n):
    """Times in falling order are refused whatever their integer type and however many bars (np.diff
    of unsigned times wraps: a check on it passed falling uint64 times in long batches)."""
    from bot.gateway import schema

    rng = np.random.default_rng(n)
    clock = datetime(2026, 1, 6, 12, tzinfo=UTC)
    context = Context(clock, lambda name: name in KNOWN)
    bars = _bar_batch(rng, n, clock)
    for dtype in (np.int64, np.uint64, np.uint32):
        falling = {k: v[::-1].copy() for k, v in bars.items()}
        falling["time"] = falling["time"].astype(dtype)
        problem = check("bars", falling, context)
        assert problem is not None and problem.reason == "not_monotonic", (dtype, problem)
        assert schema.check("bars", {**bars, "time": bars["time"].astype(dtype)}, context) is None, dtype
