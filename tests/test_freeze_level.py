"""The freeze level (bot.gateway.freeze): a close the broker would refuse 10029 because the position's SL
or TP is within `trade_freeze_level` points of the market is skipped and counted, never sent.

The rule is checked against the simulator's own (mt5bridge.sim.broker), distance by distance on both
sides, and on a short request-exotic run (15-point freeze levels, a 0.001 volume step): the bot meets
a frozen close within 30 cycles, skips it with reason "freeze_level", the broker never answers 10029,
and the stored trades' volumes equal the broker's to the 0.001 lot (NUMERIC(18, 8), revision 0008).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.gateway import NotExpressible
from bot.gateway.convert import symbol_spec
from bot.gateway.freeze import REASON, check_close, frozen_by
from bot.gateway.types import Position, Quote, SymbolSpec
from mt5bridge import constants as mt5
from mt5bridge.sim.broker import Broker
from mt5bridge.sim.orderrequest import Rejected

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import profiles as bench  # noqa: E402

POINT = Decimal("0.00001")
FREEZE = 15
BID, ASK = 110_000, 110_012  # in points: a 12-point spread
CYCLES = 30  # the first frozen close on request-exotic (seed bench.SEED) comes at cycle 25


def spec(freeze: int = FREEZE) -> SymbolSpec:
    return SymbolSpec(name="EURUSDi", digits=5, point=POINT, contract_size=Decimal(100_000), tick_size=POINT,
                      tick_value=Decimal(1), volume_min=Decimal("0.001"), volume_max=Decimal(100),
                      volume_step=Decimal("0.001"), stops_level=0, currency_profit="USD", freeze_level=freeze)


def position(direction: str, sl: int | None, tp: int | None) -> Position:
    return Position(ticket=7, symbol="EURUSDi", direction=direction, volume=Decimal("0.579"),
                    price_open=Decimal("1.1"), price_current=Decimal("1.1"),
                    sl=None if sl is None else sl * POINT, tp=None if tp is None else tp * POINT,
                    profit=Decimal(0), swap=Decimal(0), magic=1, comment="", time=datetime(2025, 1, 1, tzinfo=UTC))


def sim_refuses(direction: str, sl: int | None, tp: int | None, freeze: int = FREEZE) -> bool:
    """The simulator's verdict on closing that position (its prices are integer points, 0 = no stop)."""
    kind = mt5.POSITION_TYPE_BUY if direction == "BUY" else mt5.POSITION_TYPE_SELL
    try:
        Broker._check_freeze(SimpleNamespace(freeze_level=freeze), SimpleNamespace(type=kind, sl=sl or 0, tp=tp or 0),
                             BID, ASK)
    except Rejected as exc:
        assert exc.retcode == mt5.TRADE_RETCODE_FROZEN
        return True
    return False


@pytest.mark.parametrize("direction", ["BUY", "SELL"])
def test_the_rule_is_the_simulators_at_every_distance(direction):
    market = BID if direction == "BUY" else ASK  # where a long's / a short's stops trigger
    below, above = (-1, 1) if direction == "BUY" else (1, -1)  # SL side, TP side
    cases = [(None, None)]
    for distance in range(-3, 2 * FREEZE):
        cases += [(market + below * distance, None), (None, market + above * distance),
                  (market + below * distance, market + above * 40), (market + below * 40, market + above * distance)]
    verdicts = {True: 0, False: 0}
    for sl, tp in cases:
        ours = frozen_by(spec(), position(direction, sl, tp), BID * POINT, ASK * POINT) is not None
        assert ours == sim_refuses(direction, sl, tp), (direction, sl, tp)
        verdicts[ours] += 1
    assert verdicts[True] > 10 and verdicts[False] > 10  # both answers were exercised


@pytest.mark.parametrize(("direction", "sl", "tp", "freeze", "expected"), [
    ("BUY", BID - FREEZE, None, FREEZE, None),  # exactly the freeze level away: allowed
    ("BUY", BID - FREEZE + 1, None, FREEZE, "SL"),
    ("BUY", None, BID + 3, FREEZE, "TP"),
    ("BUY", BID - 100, BID + 100, FREEZE, None),
    ("SELL", ASK + 14, None, FREEZE, "SL"),  # a short's SL is measured from the Ask, not the Bid
    ("SELL", BID + 20, None, FREEZE, "SL"),  # 20 points above the Bid, but only 8 above the Ask
    ("SELL", None, ASK - 20, FREEZE, None),
    ("BUY", BID - 1, BID + 1, 0, None),  # no freeze level on the symbol
])
def test_which_stop_freezes_a_close(direction, sl, tp, freeze, expected):
    assert frozen_by(spec(freeze), position(direction, sl, tp), BID * POINT, ASK * POINT) == expected
    assert sim_refuses(direction, sl, tp, freeze) == (expected is not None)


def test_a_frozen_close_raises_the_skip_with_its_reason():
    quote = Quote("EURUSDi", datetime(2025, 1, 1, tzinfo=UTC), BID * POINT, ASK * POINT)
    with pytest.raises(NotExpressible) as caught:
        check_close(spec(), position("SELL", ASK + 7, None), quote)
    assert caught.value.reason == REASON == "freeze_level"
    assert "SL 1.10019" in str(caught.value) and "15 points" in str(caught.value)
    check_close(spec(), position("SELL", ASK + 15, None), quote)  # free: nothing raised


def test_the_freeze_level_is_read_from_the_symbol_info():
    info = {"digits": 5, "point": 0.00001, "trade_contract_size": 100000.0, "trade_tick_size": 0.00001,
            "trade_tick_value": 1.0, "volume_min": 0.001, "volume_max": 100.0, "volume_step": 0.001}
    assert symbol_spec("EURUSDi", info).freeze_level == 0  # a terminal that does not report it
    assert symbol_spec("EURUSDi", {**info, "trade_freeze_level": 15}).freeze_level == 15


@pytest.fixture(scope="module")
def exotic_run(tmp_path_factory):
    profile_run = bench.ProfileRun("request-exotic", tmp_path_factory.mktemp("freeze"))
    skips: list[tuple[int, str]] = []
    skip = profile_run.app.engine._skip

    def spy(symbol, strategy, exc):
        skips.append((len(profile_run.cycle_times), exc.reason))
        skip(symbol, strategy, exc)

    profile_run.app.engine._skip = spy
    profile_run.run(CYCLES)
    yield profile_run, skips
    profile_run.close()


def test_on_request_exotic_a_frozen_close_is_skipped_counted_and_never_sent(exotic_run):
    run, skips = exotic_run
    frozen_cycles = [cycle for cycle, reason in skips if reason == REASON]
    assert frozen_cycles, skips  # the run did meet a close inside the freeze level
    counted = run.app.metrics.registry.get_sample_value(
        "tradewatch_orders_skipped_total",
        {"account": run.app.metrics.account, "symbol": "EURUSDi", "reason": REASON})
    assert counted == len(frozen_cycles)
    retcodes = [sent.retcode for sent in run.tap.sent]
    assert mt5.TRADE_RETCODE_FROZEN not in retcodes and mt5.TRADE_RETCODE_DONE in retcodes


def test_on_request_exotic_stored_volumes_are_the_brokers_to_the_thousandth_lot(exotic_run):
    run, _ = exotic_run
    figures = bench.check(run.record())
    assert figures.positions_compared >= 3 and figures.mismatches == [], figures.lines()
    volumes = [trade["volume"] for trade in run.record().stored_trades]
    fine = [v for v in volumes if v != v.quantize(Decimal("0.01"))]
    assert fine and all(v.as_tuple().exponent == -3 for v in fine), volumes  # 0.579, not 0.58 nor 0.57900000


class _ReplayHarness:
    """Just enough of an engine for ReplayStep._replay: the judge it hands the order flow is the subject."""

    def __init__(self, positions, quote):
        from bot.engine.replay import ReplayStep
        self._replay = ReplayStep._replay.__get__(self)
        self.order_queue = SimpleNamespace(depth=1, in_state=lambda state: [])
        self.specs = {"EURUSDi": spec()}
        self.gateway = SimpleNamespace(quote=lambda symbol: quote)
        self._our_positions = lambda: positions
        self.verdicts = []
        self.flow = SimpleNamespace(replay=lambda now, judge, at_broker, on_sent: self.verdicts.append(judge))


def _queued_close(position_ticket: int, price: Decimal):
    from bot.resilience.order_queue import QueuedOrder
    when = datetime(2025, 1, 1, tzinfo=UTC)
    return QueuedOrder(client_order_id="c1", account="1", correlation_id="x", signal_id=None, symbol="EURUSDi",
                       strategy="s", side="BUY", purpose="close", volume=Decimal("0.579"), price=price, sl=None,
                       tp=None, position_ticket=position_ticket, deviation_points=20, max_deviation=Decimal("0.001"),
                       decided_at=when, expires_at=when)


def test_a_queued_close_replayed_inside_the_freeze_level_expires_unsent():
    """A close queued while the terminal was away is judged again at replay: frozen, it is never sent."""
    quote = Quote("EURUSDi", datetime(2025, 1, 1, tzinfo=UTC), BID * POINT, ASK * POINT)
    frozen = position("SELL", ASK + 7, None)  # SL 7 points from the Ask, freeze level 15
    free = position("SELL", ASK + 40, None)
    for held, expected in ((frozen, (None, "freeze_level")), (free, (ASK * POINT, None))):
        harness = _ReplayHarness([held], quote)
        harness._replay(datetime(2025, 1, 1, tzinfo=UTC), report=None)
        (judge,) = harness.verdicts
        assert judge(_queued_close(held.ticket, ASK * POINT)) == expected
    harness = _ReplayHarness([], quote)  # the position is gone: nothing to close
    harness._replay(datetime(2025, 1, 1, tzinfo=UTC), report=None)
    assert harness.verdicts[0](_queued_close(7, ASK * POINT)) == (None, "position_closed")
