"""Resilience units against the in-process simulated terminal: reconnect backoff, the durable order
queue (at most one send per client order id), replay vs expiry, the order breaker, reconciliation.

The broker-facing cases run on every shipped broker profile, with the profile's own symbol names
and filling modes; a requote comes from the broker itself where its execution requotes (Instant,
Request) and is injected where it does not (Market execution ignores the deviation)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sim_profile_helpers import (
    broker_symbols,
    filling,
    load_profile,
    market_deal,
    profiles_where,
    shipped_profiles,
)

from bot.app import BotApp
from bot.config import Settings
from bot.engine.orders import new_client_order_id, order_comment
from bot.gateway import BrokerUnavailable, TerminalState
from bot.resilience.order_queue import OrderQueue, QueuedOrder
from bot.resilience.supervisor import ConnectionSupervisor
from db import OrderIntent
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _settings(tmp_path, symbols=("EURUSD", "USDJPY"), **extra) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SYMBOLS": ",".join(symbols), "LOG_LEVEL": "WARNING",
           "ORDER_BREAKER_FAILURES": "3", "ORDER_BREAKER_RESET_SECONDS": "300", **extra}
    return Settings.from_env(env, dotenv_path=None)


class FlakyGateway:
    """Fails `failures` reconnects, then connects; heartbeat answers while connected."""

    def __init__(self, failures: int):
        self.failures = failures
        self.connected = False
        self.attempts = 0

    def reconnect(self) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise BrokerUnavailable("nothing listening")
        self.connected = True
        return "transport"

    def terminal(self) -> TerminalState:
        return TerminalState(connected=True, trade_allowed=True)


def test_reconnect_backs_off_exponentially_with_a_cap_and_never_blocks():
    now = [0.0]
    outages = []
    gateway = FlakyGateway(failures=6)
    supervisor = ConnectionSupervisor(gateway, initial_backoff=1.0, max_backoff=8.0, jitter=0.0,
                                      clock=lambda: now[0], on_reconnect=outages.append)
    supervisor.ever_connected, supervisor.lost_at = True, 0.0  # an outage in progress
    schedule = []
    while not supervisor.check():
        schedule.append(supervisor.next_attempt_at - now[0])
        now[0] = supervisor.next_attempt_at  # checks before that time make no attempt:
        assert gateway.attempts == len(schedule)
    assert schedule == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert outages == [31.0] and supervisor.usable and supervisor.reason is None


def _order(account: str, now: datetime, price: str = "1.10000", ttl: int = 120, symbol: str = "EURUSD",
           **extra) -> QueuedOrder:
    values = dict(client_order_id=new_client_order_id(), account=account, correlation_id="c" * 12, signal_id=None,
                  symbol=symbol, strategy="ma_crossover", side="BUY", purpose="open", volume=Decimal("0.01"),
                  price=Decimal(price), sl=None, tp=None, position_ticket=None, deviation_points=20,
                  max_deviation=Decimal("0.00050"), decided_at=now, expires_at=now + timedelta(seconds=ttl))
    values.update(extra)
    return QueuedOrder(**values)


def test_queue_is_durable_and_hands_each_order_out_once(tmp_path):
    path = tmp_path / "q.db"
    queue = OrderQueue(path)
    order = _order("1", EPOCH)
    assert queue.put(order) and not queue.put(order)
    queue.close()
    queue = OrderQueue(path)  # a restart: still there, decimals and times intact
    assert queue.in_state("queued") == [order]
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(queue.claim(order.client_order_id))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and queue.depth == 0
    assert not queue.expire(order.client_order_id, "ttl")  # a claimed order cannot be expired...
    assert queue.release(order.client_order_id) and queue.expire(order.client_order_id, "ttl")
    assert not queue.claim(order.client_order_id)  # ...and an expired one is never sent


class On:
    """What a test needs of the profile it runs on: the broker's EURUSD and a filling it accepts."""

    def __init__(self, profile: str):
        self.profile = profile
        self.symbols = broker_symbols(profile, ("EURUSD", "USDJPY"), fill=("EURJPY",))
        self.eurusd = self.symbols[0]
        self.filling = filling(profile, self.eurusd)
        self.execution = load_profile(profile).symbols[self.eurusd].execution


@pytest.fixture(params=shipped_profiles())
def app(tmp_path, request):
    on = On(request.param)
    sim = SimTerminal(seed=7, stepped=True, profile=on.profile)
    app = BotApp(_settings(tmp_path, on.symbols), sim=sim, stepped=True)
    app.connect()
    app.engine.run_cycle()
    yield app, sim, on
    app.close()


def _broker_orders_by_client_id(sim) -> Counter:
    return Counter(o.comment.split()[0] for o in sim.history_orders_get(EPOCH, FAR) if o.comment.startswith("tw"))


def test_orders_decided_while_disconnected_are_queued_then_replayed_or_expired(app):
    app, sim, on = app
    engine = app.engine
    now = sim.now()
    ask = engine.gateway.quote(on.eurusd).ask
    fresh = _order(engine.account_id, symbol=on.eurusd, now=now, price=str(ask))
    stale = _order(engine.account_id, symbol=on.eurusd, now=now - timedelta(seconds=600), price=str(ask))
    moved = _order(engine.account_id, symbol=on.eurusd, now=now, price=str(ask - Decimal("0.01000")))
    sim.fault_disconnect(60)
    engine.run_cycle()
    assert not app.supervisor.usable
    for order in (fresh, stale, moved):
        assert engine.flow.submit(order, order.price).status == "queued"
    assert app.order_queue.depth == 3

    sim.advance(61)
    report = engine.run_cycle()  # reconnect, resolve, then replay what is still valid
    assert app.supervisor.usable and report.ok, report.error
    assert (report.replayed, report.expired) == (1, 2)
    ours = (fresh.client_order_id, stale.client_order_id, moved.client_order_id)
    sent = _broker_orders_by_client_id(sim)
    assert Counter({cid: n for cid, n in sent.items() if cid in ours}) == Counter({fresh.client_order_id: 1})
    rows = {cid: engine.repo.get_order(cid) for cid in (fresh.client_order_id, stale.client_order_id,
                                                         moved.client_order_id)}
    assert rows[fresh.client_order_id].status == "filled"
    assert rows[stale.client_order_id].status == "expired" and "ttl" in rows[stale.client_order_id].message
    assert rows[moved.client_order_id].status == "expired" and "deviation" in rows[moved.client_order_id].message
    for _ in range(3):  # nothing is ever sent twice, however often replay runs
        engine.run_cycle()
        sim.advance(30)
    assert _broker_orders_by_client_id(sim)[fresh.client_order_id] == 1


def test_replay_skips_an_order_the_broker_already_has(app):
    app, sim, on = app
    engine = app.engine
    order = _order(engine.account_id, symbol=on.eurusd, now=sim.now(), price=str(engine.gateway.quote(on.eurusd).ask))
    app.order_queue.put(order)
    tick = sim.symbol_info_tick(on.eurusd)
    sim.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": on.eurusd, "volume": 0.01, "type": mt5.ORDER_TYPE_BUY,
                    "price": tick.ask, "deviation": 20, "magic": app.settings.magic,
                    "comment": order_comment(order.client_order_id, order.strategy),
                    "type_filling": on.filling})
    report = engine.run_cycle()
    assert report.expired == 1 and report.replayed == 0
    assert _broker_orders_by_client_id(sim)[order.client_order_id] == 1
    assert "at_broker" in engine.repo.get_order(order.client_order_id).message


def test_order_breaker_opens_stops_trading_and_closes_after_a_half_open_trial(app):
    app, sim, on = app
    engine = app.engine
    fired = []
    app.start_telemetry(serve=False)
    app.instrumentation.alerts = type("Alerts", (), {"fire": lambda self, *a, **k: fired.append(a[0]),
                                                     "resolve": lambda self, *a, **k: fired.append("resolved")})()
    sim.fault_reject_next(3, mt5.TRADE_RETCODE_REJECT)
    price = engine.gateway.quote(on.eurusd).ask
    outcomes = [engine.flow.submit(_order(engine.account_id, symbol=on.eurusd, now=sim.now(), price=str(price), ttl=900,
                                          max_deviation=Decimal("1")), price).status for _ in range(4)]
    assert outcomes == ["rejected", "rejected", "rejected", "queued"]
    assert app.order_breaker.state == "open" and fired == ["BotCircuitOpen"]
    samples = {(s.labels.get("breaker"), s.name): s.value for m in app.metrics.registry.collect() for s in m.samples
               if s.name.startswith("tradewatch_circuit")}
    assert samples[("orders", "tradewatch_circuit_state")] == 2
    ready, details = app.readiness()
    assert not ready and details["orders_circuit_closed"] == "failing"

    sim.advance(301)  # reset timeout (simulated clock in a stepped run): one trial goes through and closes it
    report = engine.run_cycle()
    assert report.replayed == 1 and app.order_breaker.state == "closed" and fired[-1] == "resolved"


@pytest.mark.parametrize("profile", shipped_profiles())
def test_startup_reconciliation_adopts_closes_and_resolves(tmp_path, profile):
    # Three positions on three symbols: on a netting account the same symbol would net them into one.
    lost_symbol, adopted_symbol, known_symbol = symbols = broker_symbols(profile, ("EURUSD", "USDJPY", "GBPUSD"),
                                                                         fill=("EURJPY",))
    sim = SimTerminal(seed=7, stepped=True, profile=profile)
    settings = _settings(tmp_path, symbols)
    first = BotApp(settings, sim=sim, stepped=True)
    first.connect()
    first.engine.run_cycle()
    account = first.engine.account_id
    magic = settings.magic

    def buy(comment: str, symbol: str):
        result = market_deal(sim, symbol, "BUY", 0.01, magic=magic, comment=comment, deviation=20)
        assert result.retcode == mt5.TRADE_RETCODE_DONE, result
        return result

    # An order whose reply was lost in a crash: intent stored, no outcome, executed at the broker.
    lost = new_client_order_id()
    first.repo.record_order_intent(OrderIntent(
        client_order_id=lost, account=account, correlation_id="x" * 12, signal_id=None, symbol=lost_symbol,
        strategy="ma_crossover", side="BUY", purpose="open", position_ticket=None, volume=Decimal("0.01"),
        requested_price=Decimal("1.1"), sl=None, tp=None, deviation=20, magic=magic,
        comment=order_comment(lost, "ma_crossover"), created_at=sim.now()))
    buy(order_comment(lost, "ma_crossover"), lost_symbol)
    first.close()
    sim.initialize()  # the app shut its terminal session down on exit
    # While the bot is away: a position with our magic it never saw, and one closed behind its back.
    adopted = buy("manual", adopted_symbol).order
    known = buy(order_comment(new_client_order_id(), "ma_crossover"), known_symbol).order
    second = BotApp(settings, sim=sim, stepped=True)
    second.connect()
    second.engine.run_cycle()  # the store learns the known position
    second.close()
    sim.initialize()
    position = sim.positions_get(ticket=known)[0]
    closed_behind = market_deal(sim, known_symbol, "SELL", 0.01, magic=magic, position=position.ticket)
    assert closed_behind.retcode == mt5.TRADE_RETCODE_DONE, closed_behind
    sim.advance(3600)

    third = BotApp(settings, sim=sim, stepped=True)
    try:
        assert not third.readiness()[0]  # not reconciled yet
        third.connect()
        report = third.engine.run_cycle()
        assert report.ok and third.engine.reconciled, report.error
        assert third.repo.get_order(lost).status == "filled"
        assert third.repo.get_trade(account, sim.positions_get(ticket=adopted)[0].ticket) is not None
        closed = third.repo.get_trade(account, position.ticket)
        assert closed is not None and closed.is_closed
        assert not third.repo.orders_by_status(account, "pending")
    finally:
        third.close()


def test_a_failed_reconciliation_halts_trading_and_says_why(app, monkeypatch):
    app, sim, on = app
    engine = app.engine
    engine.reconciled = False

    def broken(*_args, **_kwargs):
        raise RuntimeError("store and broker disagree")

    monkeypatch.setattr(engine.books, "reconcile", broken)
    report = engine.run_cycle()
    assert not report.ok and not report.orders
    ready, details = app.readiness()
    assert not ready and "store and broker disagree" in details["halted_reason"]
    monkeypatch.undo()
    report = engine.run_cycle()
    assert report.ok and app.readiness()[0]


def test_a_requoted_order_is_resent_once_at_the_fresh_price(app):
    app, sim, on = app
    engine = app.engine
    # A Request dealer that requotes a share of requests anyway (request-exotic) may requote the resends
    # too: there, orders are tried until one fills, each within the same rules.
    tries = 6 if load_profile(on.profile).symbols[on.eurusd].requote_share else 1
    point = engine.specs[on.eurusd].point
    for _ in range(tries):
        ask = engine.gateway.quote(on.eurusd).ask
        order = _order(engine.account_id, symbol=on.eurusd, now=sim.now(), price=str(ask))
        # Sent at a price 100 points off the market, an Instant or Request broker requotes (deviation 20
        # points); Market execution ignores the deviation, so there the broker's requote is injected. The
        # decision itself is fresh, so the sender resends at the current ask under the same id.
        if on.execution == mt5.SYMBOL_TRADE_EXECUTION_MARKET:
            sim.fault_reject_next(1, mt5.TRADE_RETCODE_REQUOTE)
        outcome = engine.flow.submit(order, ask - Decimal("0.00100"))
        row = engine.repo.get_order(order.client_order_id)
        assert row.requested_price == ask and row.requotes >= 1, "resent at the fresh price"
        assert _broker_orders_by_client_id(sim)[order.client_order_id] == (outcome.status == "filled")
        if outcome.status != "filled":  # requoted on every resend as well
            assert (outcome.status, outcome.retcode) == ("rejected", mt5.TRADE_RETCODE_REQUOTE), outcome
            assert row.requotes == app.settings.requote_retries
            sim.advance(30)
            continue
        (deal,) = [d for d in sim.history_deals_get(EPOCH, FAR) if d.comment.startswith(order.client_order_id)]
        assert outcome.fill_price == Decimal(str(deal.price))  # the broker's fill (Market execution may slip)
        if on.execution != mt5.SYMBOL_TRADE_EXECUTION_MARKET:  # Instant / Request: within the deviation
            assert abs(outcome.fill_price - ask) <= point * app.settings.deviation_points
        assert row.status == "filled"
        break
    else:
        pytest.fail(f"no requoted order filled in {tries} tries")


def test_requotes_stop_after_the_retries_or_when_the_decision_went_stale(app):
    app, sim, on = app
    engine = app.engine
    ask = engine.gateway.quote(on.eurusd).ask
    sim.fault_reject_next(3, mt5.TRADE_RETCODE_REQUOTE)  # REQUOTE_RETRIES=2: three tries, all requoted
    gave_up = _order(engine.account_id, symbol=on.eurusd, now=sim.now(), price=str(ask))
    outcome = engine.flow.submit(gave_up, ask)
    assert (outcome.status, outcome.retcode) == ("rejected", mt5.TRADE_RETCODE_REQUOTE)
    assert sim._faults.reject_count == 0  # noqa: SLF001 - every retry reached the broker
    assert engine.repo.get_order(gave_up.client_order_id).status == "rejected"

    sim.clear_faults()
    sim.fault_reject_next(1, mt5.TRADE_RETCODE_PRICE_CHANGED)
    checks = []
    fresh_then_moved = engine.flow.freshness

    def judge(order):  # fresh at the first look, the price has run away by the requote
        checks.append(order.client_order_id)
        verdict = fresh_then_moved(order)
        return verdict if len(checks) == 1 else verdict._replace(stale="deviation")

    engine.flow.freshness = judge
    moved = _order(engine.account_id, symbol=on.eurusd, now=sim.now(), price=str(ask))
    outcome = engine.flow.submit(moved, ask)
    assert (outcome.status, outcome.retcode) == ("rejected", mt5.TRADE_RETCODE_PRICE_CHANGED)
    assert len(checks) == 2
    assert _broker_orders_by_client_id(sim)[gave_up.client_order_id] == 0
    assert _broker_orders_by_client_id(sim)[moved.client_order_id] == 0


def _finer_than_the_store(profile: str) -> bool:
    return any(s.volume_step < Decimal("0.01") for s in load_profile(profile).symbols.values())


@pytest.mark.parametrize("profile", profiles_where(_finer_than_the_store))
def test_a_restart_after_sub_cent_lots_is_not_taken_for_a_rewound_history(tmp_path, profile):
    """A 0.005-lot deal is kept at the store's two decimals; the next start compares the broker's deal
    with it at that precision, not as "the broker's history rewound" (which refuses to start)."""
    symbols = broker_symbols(profile, ("EURUSD", "USDJPY"), fill=("EURJPY",))
    sim = SimTerminal(seed=7, stepped=True, profile=profile)
    settings = _settings(tmp_path, symbols)
    first = BotApp(settings, sim=sim, stepped=True)
    first.connect()
    fine = market_deal(sim, symbols[0], "BUY", 0.005, magic=settings.magic, comment="manual")
    assert fine.retcode == mt5.TRADE_RETCODE_DONE, fine
    sim.advance(30)
    assert first.engine.run_cycle().ok
    assert first.repo.deals_since(first.engine.account_id, EPOCH), "the deal is stored"
    first.close()
    sim.initialize()
    second = BotApp(settings, sim=sim, stepped=True)
    try:
        second.connect()  # BrokerHistoryRewound here was the defect
        assert second.engine.run_cycle().ok
    finally:
        second.close()
