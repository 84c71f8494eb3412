"""The schema's compiled fast yes (bot.gateway.quickcheck) answers exactly as the per-field one.

`tests/quick_reference.py` (a function per field, itself checked against the full rules in
test_broker_schema) is the reference: on records of hostile values, missing fields and good ones,
the compiled function of each kind says the same, and asks `symbol_known` about the same names
in the same order (it may ask the terminal).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.gateway.schema import _RECORD_QUICK, SCHEMAS, Context, check
from mt5bridge.plain import to_plain
from mt5bridge.sim import SimTerminal
from tests.quick_reference import QUICK as _QUICK
from tests.test_broker_schema import KNOWN, NASTY

MISSING = object()


def _good_records() -> dict[str, dict]:
    """One plain record of each kind, as the simulated terminal answers (an order sent first)."""
    sim = SimTerminal(seed=5, stepped=True)
    assert sim.initialize()
    reply = sim.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "deviation": 10,
                            "type_filling": 1, "type_time": 0, "magic": 7, "comment": "tw"})
    sim.advance(60)
    deal = to_plain(sim.history_deals_get(0, 2_000_000_000)[0])
    deposit = {**deal, "symbol": "", "type": 2, "entry": 0, "volume": 0.0, "price": 0.0, "profit": 10000.0}
    return {
        "quote": to_plain(sim.symbol_info_tick("EURUSD")), "account": to_plain(sim.account_info()),
        "symbol": to_plain(sim.symbol_info("USDJPY")), "position": to_plain(sim.positions_get()[0]),
        "deal": deal, "balance_deal": deposit,
        "order": to_plain(sim.history_orders_get(0, 2_000_000_000)[0]), "order_result": to_plain(reply),
    }


GOOD = _good_records()
CLOCK = datetime.fromtimestamp(GOOD["quote"]["time"], UTC)


def _judge_both(kind: str, record: dict, clock: datetime | None) -> tuple:
    asked: list[list[str]] = [[], []]

    def known(index: int):
        def symbol_known(name: str) -> bool:
            asked[index].append(name)
            return name in KNOWN
        return symbol_known

    reference = all(ok(record.get(name), Context(clock, known(0))) for name, ok in _QUICK[kind])
    compiled = _RECORD_QUICK[kind](record, Context(clock, known(1)))
    return (reference, asked[0]), (compiled, asked[1])


@pytest.mark.parametrize("clock", [None, CLOCK])
@pytest.mark.parametrize("kind", sorted(_QUICK))
def test_compiled_fast_yes_is_the_per_field_one(kind, clock):
    pick = random.Random(f"{kind}{clock}")
    names = [rule.name for rule in SCHEMAS[kind][0]]
    good = GOOD[kind]
    yes = 0
    for trial in range(4000):
        if trial % 2:  # a good record with one or two fields spoiled or left out
            record = dict(good)
            for name in pick.sample(names, pick.choice((0, 1, 2))):
                record[name] = pick.choice(NASTY + [MISSING])
        else:
            record = {name: pick.choice(NASTY + [MISSING] * 6) for name in names}
        record = {name: value for name, value in record.items() if value is not MISSING}
        reference, compiled = _judge_both(kind, record, clock)
        assert compiled == reference, (record, reference, compiled)
        yes += reference[0]
    assert yes > 0  # the good records do get the fast yes


def test_the_terminals_records_get_the_compiled_yes():
    """What the simulated terminal really answers is plainly good (or the fast yes would save nothing)."""
    assert set(GOOD) == set(_RECORD_QUICK)
    context = Context(CLOCK, lambda name: name in KNOWN)
    for kind, record in GOOD.items():
        assert _RECORD_QUICK[kind](record, context), kind
        assert check(kind, record, context) is None, kind


def test_the_bars_fast_yes_says_no_to_every_odd_column(monkeypatch):
    """Columns that are not 1-d numeric arrays of one length never get the fast yes, and the full
    checks judge them as before (schema._bars_plainly_good asks these of all five columns at once)."""
    from bot.gateway import schema

    n, t0 = 5, int(CLOCK.timestamp()) // 60 * 60 - 600
    good = {"time": np.arange(t0, t0 + 60 * n, 60), "open": np.full(n, 1.1), "high": np.full(n, 1.2),
            "low": np.full(n, 1.0), "close": np.full(n, 1.15)}
    context = Context(CLOCK, lambda name: name in KNOWN)
    assert schema._bars_plainly_good(good, context)
    for dtype in (np.int32, np.uint64, np.float64):
        assert schema._bars_plainly_good({**good, "time": good["time"].astype(dtype)}, context), dtype
    odd = [("high", list(good["high"])), ("high", good["high"].reshape(1, n)), ("high", good["high"].astype(object)),
           ("high", good["high"].astype(str)), ("high", good["high"] > 0), ("time", None), ("low", good["low"][:-1]),
           ("close", np.float64(1.15))]
    judged = []
    for column, values in odd:
        record = {**good, column: values}
        assert not schema._bars_plainly_good(record, context), (column, values)
        judged.append(check("bars", record, context))
    assert not schema._bars_plainly_good({name: values[:0] for name, values in good.items()}, context)
    monkeypatch.setattr(schema, "_bars_plainly_good", lambda record, context: False)
    assert judged == [check("bars", {**good, column: values}, context) for column, values in odd]
