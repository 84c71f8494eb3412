"""Hostile broker suite: 30 kinds of bad broker data through real bot cycles, on SQLite.

The simulated terminal sits behind `HostileTerminal`, which corrupts what it answers (a deal
with NaN profit, a quote at 0, equity 1e20, positions_get answering None ...). One bot runs
every scenario in turn on a stepped clock: warm up, serve the bad data for a few cycles, take
it away, and wait until the bot fills a new opening order again. For each scenario it asserts
the expected outcome (quarantined with the right kind and reason, the symbol skipped, new
orders halted, the broker fault counted), that the refusal was logged once, and that no cycle
failed unexpectedly; at the end, that no bad row reached deals, trades, orders or snapshots
and that nothing logged a traceback. It prints the figures: broker records tried /
quarantined / stored, and cycles that failed.

On every shipped broker profile: the 30 scenarios are dealt out over the profiles in turn (each
profile gets deals, a position, a quote and bars scenario; all 30 run once), so the suite costs
about one run of all 30 plus a warm-up per profile. A scenario names its symbol by role (the
table's EURUSD, GBPUSD, USDJPY, XAUUSD); the profile's own symbol in that role gets the bad data.
"""

from __future__ import annotations

import logging
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sim_profile_helpers import broker_positions_history, broker_symbols, shipped_profiles
from sqlalchemy import text

from bot.app import BotApp
from bot.config import Settings
from mt5bridge import constants as mt5
from mt5bridge.plain import to_plain
from mt5bridge.sim import SimTerminal

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")  # the roles; the profile's names via World.name
PROFILES = shipped_profiles()
CENT = Decimal("0.01")
FAKE_TICKET = 9_000_000  # tickets of the deals and positions the hostile terminal makes up
BAD_CYCLES = 6
RECOVERY_CYCLES = 80
YEAR_3000 = int(datetime(3000, 1, 1, tzinfo=UTC).timestamp())
EPOCH_1970 = 86_400
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2099, 1, 1, tzinfo=UTC)


class HostileTerminal:
    """The simulated terminal, answering with whatever corruption is switched on.

    Corrupted answers are plain dicts (what the gateway turns every result into): the real
    package's result types, and the simulator's, cannot be changed field by field.
    """

    def __init__(self, sim: SimTerminal):
        self._sim = sim
        self.clear()

    def clear(self) -> None:
        self.extra_deals: list = []
        self.extra_positions: list = []
        self.ticks: dict[str, Callable] = {}
        self.rates: dict[str, Callable] = {}
        self.account: Callable | None = None
        self.positions_none = False

    def __getattr__(self, name):
        return getattr(self._sim, name)

    def history_deals_get(self, *args, **kwargs):
        rows = self._sim.history_deals_get(*args, **kwargs)
        position = kwargs.get("position")
        extra = [d for d in self.extra_deals if position is None or d["position_id"] == position]
        return rows if rows is None else tuple(rows) + tuple(extra)

    def positions_get(self, *args, **kwargs):
        if self.positions_none:
            return None
        rows = self._sim.positions_get(*args, **kwargs)
        if rows is None or kwargs.get("ticket") is not None:
            return rows
        return tuple(rows) + tuple(p for p in self.extra_positions if kwargs.get("symbol") in (None, p["symbol"]))

    def last_error(self):
        return (mt5.RES_S_OK, "Success") if self.positions_none else self._sim.last_error()

    def symbol_info_tick(self, symbol):
        tick = self._sim.symbol_info_tick(symbol)
        change = self.ticks.get(symbol)
        return change(to_plain(tick)) if change and tick is not None else tick

    def copy_rates_from_pos(self, symbol, *args):
        rates = self._sim.copy_rates_from_pos(symbol, *args)
        change = self.rates.get(symbol)
        return change(rates.copy()) if change and rates is not None else rates

    def account_info(self):
        info = self._sim.account_info()
        return self.account(to_plain(info)) if self.account and info is not None else info


@dataclass
class World:
    """What a scenario builds its bad data from: real records of the run, the clock, the bot's magic."""

    hostile: HostileTerminal
    magic: int
    deal: dict  # a real deal of the bot (IN), the template of made-up deals
    position: dict  # a real position of the bot, the template of made-up positions
    symbols: tuple[str, ...]  # the profile's names of the SYMBOLS roles

    def name(self, role: str) -> str:
        return self.symbols[SYMBOLS.index(role)]

    @property
    def epoch(self) -> int:
        return int(self.hostile.now().timestamp())

    def fake_deal(self, n: int, **changes):
        return {**self.deal, "ticket": FAKE_TICKET + n, "order": FAKE_TICKET + n, "position_id": FAKE_TICKET + n,
                "time": self.epoch, "time_msc": self.epoch * 1000, "magic": self.magic, "comment": f"hostile-{n}",
                "entry": mt5.DEAL_ENTRY_IN, **changes}

    def fake_position(self, n: int, **changes):
        return {**self.position, "ticket": FAKE_TICKET + n, "identifier": FAKE_TICKET + n, "magic": self.magic,
                "comment": f"hostile-{n}", "symbol": self.name("GBPUSD"), **changes}

    def reused_ticket(self, n: int):
        """The bot's newest real deal, with other content under the same ticket."""
        ours = [d for d in to_plain(self.hostile.history_deals_get(EPOCH, FAR)) if d["magic"] == self.magic and d["symbol"]]
        newest = max(ours, key=lambda d: (d["time_msc"], d["ticket"]))
        return {**newest, "profit": newest["profit"] + 1234.5, "comment": f"hostile-{n}"}


def _deal(**changes):
    return lambda w, n: w.hostile.extra_deals.append(w.fake_deal(n, **changes))


def _position(**changes):
    return lambda w, n: w.hostile.extra_positions.append(w.fake_position(n, **changes))


def _tick(role, change):
    return lambda w, n: w.hostile.ticks.__setitem__(w.name(role), change)


def _rates(role, change):
    return lambda w, n: w.hostile.rates.__setitem__(w.name(role), change)


def _set_rates(**columns):
    def change(rates):
        for name, value in columns.items():
            rates[name] = value
        return rates

    return change


def _nan_close(rates):
    rates["close"][-10] = math.nan
    return rates


def _time_backwards(rates):
    rates["time"][-5], rates["time"][-6] = rates["time"][-6], rates["time"][-5]
    return rates


def _account(change):
    return lambda w, n: setattr(w.hostile, "account", change)


def _positions_none(w, n):
    w.hostile.positions_none = True


def _reuse_ticket(w, n):
    w.hostile.extra_deals.append(w.reused_ticket(n))


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[World, int], None]
    kind: str | None = None  # quarantined record kind ...
    reason: str | None = None  # ... and reason
    skipped: tuple[str, str] | None = None  # (symbol, reason) of tradewatch_symbol_cycles_skipped_total
    halted: str | None = None  # reason of tradewatch_new_orders_halted
    fault: str | None = None  # call whose broker_fault is counted
    conflict: bool = False


SCENARIOS = [
    Scenario("deal profit NaN", _deal(profit=math.nan), "deal", "not_finite"),
    Scenario("deal profit +inf", _deal(profit=math.inf), "deal", "not_finite"),
    Scenario("deal profit 1e20", _deal(profit=1e20), "deal", "range"),
    Scenario("deal swap -inf", _deal(swap=-math.inf), "deal", "not_finite"),
    Scenario("deal comment over 64 characters", _deal(comment="tw-" + "x" * 200), "deal", "length"),
    Scenario("deal on an unknown symbol", _deal(symbol="NOTASYMBOL"), "deal", "unknown_symbol"),
    Scenario("deal volume negative", _deal(volume=-0.1), "deal", "sign"),
    Scenario("deal volume zero", _deal(volume=0.0), "deal", "sign"),
    Scenario("deal price zero", _deal(price=0.0), "deal", "sign"),
    Scenario("deal price negative", _deal(price=-1.1), "deal", "sign"),
    Scenario("deal time 1970", _deal(time=EPOCH_1970, time_msc=EPOCH_1970 * 1000), "deal", "time_window"),
    Scenario("deal time year 3000", _deal(time=YEAR_3000, time_msc=YEAR_3000 * 1000), "deal", "time_window"),
    Scenario("deal type 99", _deal(type=99), "deal", "enum"),
    Scenario("deal entry 99", _deal(entry=99), "deal", "enum"),
    Scenario("deal ticket reused with other content", _reuse_ticket, "deal", "ticket_conflict", conflict=True),
    Scenario("position volume NaN", _position(volume=math.nan), "position", "not_finite",
             skipped=("GBPUSD", "bad_position")),
    Scenario("position price 0", _position(price_open=0.0), "position", "sign", skipped=("GBPUSD", "bad_position")),
    Scenario("position time year 3000", _position(time=YEAR_3000), "position", "time_window",
             skipped=("GBPUSD", "bad_position")),
    Scenario("position on an unknown symbol", _position(symbol="NOTASYMBOL"), "position", "unknown_symbol"),
    Scenario("quote bid 0 (first symbol)", _tick("EURUSD", lambda t: {**t, "bid": 0.0}), "quote", "sign",
             skipped=("EURUSD", "sign")),
    Scenario("quote bid/ask negative", _tick("GBPUSD", lambda t: {**t, "bid": -1.2, "ask": -1.1}), "quote", "sign",
             skipped=("GBPUSD", "sign")),
    Scenario("quote ask NaN", _tick("USDJPY", lambda t: {**t, "ask": math.nan}), "quote", "not_finite",
             skipped=("USDJPY", "not_finite")),
    Scenario("quote ask below bid", _tick("XAUUSD", lambda t: {**t, "ask": t["bid"] - 1.0}), "quote", "crossed",
             skipped=("XAUUSD", "crossed")),
    Scenario("bars with a NaN close", _rates("GBPUSD", _nan_close), "bars", "not_finite",
             skipped=("GBPUSD", "not_finite")),
    Scenario("bars flat", _rates("USDJPY", _set_rates(open=150.0, high=150.0, low=150.0, close=150.0)), "bars",
             "flat", skipped=("USDJPY", "flat")),
    Scenario("bars all zero", _rates("EURUSD", _set_rates(open=0.0, high=0.0, low=0.0, close=0.0)), "bars", "sign",
             skipped=("EURUSD", "sign")),
    Scenario("bars time not increasing", _rates("XAUUSD", _time_backwards), "bars", "not_monotonic",
             skipped=("XAUUSD", "not_monotonic")),
    Scenario("equity 1e20", _account(lambda a: {**a, "equity": 1e20, "margin_free": 1e20}), "account", "range",
             halted="account_invalid"),
    Scenario("equity tripled without a deal", _account(lambda a: {**a, "equity": a["equity"] * 3}), halted="equity_jump"),
    Scenario("positions_get returns None (last_error Success)", _positions_none, fault="positions_get"),
]


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _settings(url: str, symbols) -> Settings:
    return Settings.from_env({"DATABASE_URL": url, "SYMBOLS": ",".join(symbols), "TIMEFRAME": "M1",
                              "CYCLE_SECONDS": "60", "METRICS_PORT": "0", "LOG_LEVEL": "WARNING",
                              # broker data is under test, not losses: the risk guard's loss halts off
                              "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100",
                              # quick strategies: the warm-up and each recovery (a new fill) take few cycles
                              "STRATEGY_PARAMS": '{"ma_crossover": {"fast": 2, "slow": 3}}'}, dotenv_path=None)


def _rows(app, sql: str, **params) -> list:
    with app.database.engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def _sample(app, name: str, **labels) -> float:
    return app.metrics.registry.get_sample_value(name, {"account": app.account, **labels}) or 0.0


def _filled_opens(app) -> int:
    return _rows(app, "select count(*) as n from orders where purpose = 'open' and status = 'filled'")[0].n


@pytest.fixture(params=PROFILES)
def bot(tmp_path, request):
    captured = Captured()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    sim = SimTerminal(seed=7, stepped=True, profile=request.param)
    hostile = HostileTerminal(sim)
    hostile.profile, hostile.symbols = request.param, tuple(broker_symbols(request.param, SYMBOLS))
    app = BotApp(_settings(f"sqlite:///{tmp_path}/hostile.db", hostile.symbols), sim=hostile, stepped=True)
    app.connect()
    app.start_telemetry(serve=False)
    try:
        yield app, hostile, captured
    finally:
        app.close()
        root.removeHandler(captured)
        root.setLevel(old_level)


def test_hostile_broker_data_is_quarantined_and_never_halts_the_bot(bot, capsys):
    app, hostile, captured = bot
    reports = []

    def cycle():
        reports.append(app.engine.run_cycle())
        app.pacer.wait()

    while not (app.engine.books and hostile.positions_get() and _filled_opens(app) >= 2):
        cycle()
        assert len(reports) < 300, "the bot never traded in the warm-up"
    world = World(hostile, app.settings.magic,
                  deal=next(d for d in to_plain(hostile.history_deals_get(EPOCH, FAR)) if d["magic"] == app.settings.magic),
                  position=to_plain(hostile.positions_get()[0]), symbols=hostile.symbols)
    turn = PROFILES.index(hostile.profile)
    mine = [(number, s) for number, s in enumerate(SCENARIOS, start=1) if (number - 1) % len(PROFILES) == turn]

    table, tried, halts = [], 0, []
    for number, original in mine:
        scenario = original if not original.skipped else \
            replace(original, skipped=(world.name(original.skipped[0]), original.skipped[1]))
        quarantine_before = {(q.record_kind, q.record_key, q.reject_reason) for q in app.repo.quarantined(app.account)}
        logs_before, reports_before = len(captured.records), len(reports)
        skipped_before = _sample(app, "tradewatch_symbol_cycles_skipped_total",
                                 symbol=scenario.skipped[0], reason=scenario.skipped[1]) if scenario.skipped else 0
        rejected_before = _sample(app, "tradewatch_broker_records_rejected_total", kind=scenario.kind,
                                  reason=scenario.reason) if scenario.kind else 0
        halted_seen = False
        scenario.inject(world, number)
        tried += 1
        for _ in range(BAD_CYCLES):
            cycle()
            if scenario.halted:
                halted_seen |= _sample(app, "tradewatch_new_orders_halted", reason=scenario.halted) == 1
        hostile.clear()
        opens = _filled_opens(app)
        skipped_after_bad = _sample(app, "tradewatch_symbol_cycles_skipped_total",
                                    symbol=scenario.skipped[0], reason=scenario.skipped[1]) if scenario.skipped else 0
        recovery = 0
        while _filled_opens(app) == opens and recovery <= RECOVERY_CYCLES:
            cycle()
            recovery += 1
        if recovery > RECOVERY_CYCLES:
            halts.append(scenario.name)  # no new opening order once the bad data was gone

        new_rows = {(q.record_kind, q.record_key, q.reject_reason)
                    for q in app.repo.quarantined(app.account)} - quarantine_before
        ours = reports[reports_before:]
        failed = sum(1 for r in ours if r.error)
        unexpected = [r.error for r in ours if r.error and not r.error_expected]
        assert not unexpected, f"{scenario.name}: cycles failed unexpectedly: {unexpected}"
        said = [r for r in captured.records[logs_before:] if r.name == "bot.quarantine"]
        observed = []
        if scenario.kind:
            matching = [row for row in new_rows if row[0] == scenario.kind and row[2] == scenario.reason]
            assert len(matching) == 1, f"{scenario.name}: quarantined {sorted(new_rows)}"
            assert len(said) == 1, f"{scenario.name}: said {len(said)} times: {[r.getMessage() for r in said]}"
            assert (said[0].levelno == logging.ERROR) == scenario.conflict
            assert _sample(app, "tradewatch_broker_records_rejected_total", kind=scenario.kind,
                           reason=scenario.reason) == rejected_before + 1, f"{scenario.name}: not counted once"
            observed.append(f"quarantined {scenario.kind}/{scenario.reason}")
        if scenario.conflict:
            assert _sample(app, "tradewatch_broker_deal_conflicts_total") >= 1
        if scenario.skipped:
            assert skipped_after_bad - skipped_before >= BAD_CYCLES - 1, scenario.name
            symbol, reason = scenario.skipped
            assert _sample(app, "tradewatch_symbol_cycles_skipped_total", symbol=symbol, reason=reason) == \
                skipped_after_bad, f"{scenario.name}: {symbol} still skipped once the data is good"
            observed.append(f"{symbol} skipped ({reason})")
        if scenario.halted:
            assert halted_seen, f"{scenario.name}: new orders were not halted"
            assert _sample(app, "tradewatch_new_orders_halted", reason=scenario.halted) == 0
            observed.append(f"new orders halted ({scenario.halted})")
        if scenario.fault:
            assert _sample(app, "tradewatch_broker_errors_total", call=scenario.fault, kind="broker_fault") >= 1
            assert all("Success (1)" not in (r.error or "") for r in ours)
            observed.append(f"{scenario.fault} broker_fault counted")
        if scenario.kind in ("deal",) or scenario.kind == "position" and not scenario.skipped:
            assert failed == 0, f"{scenario.name}: a refused record failed {failed} cycles"
        assert app.engine.halted_reason is None and app.engine.equity_guard.refusal is None
        table.append((number, scenario.name, ", ".join(observed), failed, recovery))

    stored = _bad_rows(app, hostile)
    tracebacks = [r for r in captured.records if r.exc_info]
    errors = [r.getMessage() for r in captured.records
              if r.levelno >= logging.ERROR and not r.getMessage().startswith("broker deal ticket conflict")]
    quarantined = len(app.repo.quarantined(app.account))
    failed_cycles = sum(1 for r in reports if r.error)
    lines = ["", f"hostile broker scenarios on {hostile.profile} ({', '.join(hostile.symbols)})",
             f"{'#':>3}  {'scenario':<48} {'outcome':<66} {'failed':>6} {'recovery':>8}"]
    lines += [f"{n:>3}  {name:<48} {outcome:<66} {failed:>6} {recovery:>8}" for n, name, outcome, failed, recovery in table]
    lines.append(f"broker scenarios {len(table)}/{len(mine)} handled ({len(SCENARIOS)} over {len(PROFILES)} profiles); bad broker records tried {tried}, "
                 f"quarantined {quarantined}, bad rows stored {len(stored)}; cycles {len(reports)}, "
                 f"failed {failed_cycles} (all expected broker faults), unexpected errors {len(errors)}, "
                 f"tracebacks {len(tracebacks)}, permanent halts {len(halts)}")
    with capsys.disabled():  # the figures are the point of the suite: shown even when output is captured
        sys.stdout.write("\n".join(lines) + "\n")
    assert len(table) == len(mine) and len(SCENARIOS) == 30
    assert {s.kind for _, s in mine} >= {"deal", "position", "quote", "bars"}, "each kind on every profile"
    assert halts == [], f"the bot did not trade again after: {halts}"
    assert quarantined >= sum(1 for _, s in mine if s.kind)
    assert stored == [], stored
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert not errors, errors


def _as_stored(volume) -> Decimal:
    """A broker volume as the store keeps it: volume columns are NUMERIC(12, 2), so a 0.001-lot step
    (request-exotic) is rounded to the cent-lot (a known defect, asserted in test_engine_run)."""
    return Decimal(str(volume)).quantize(CENT, rounding=ROUND_HALF_UP)


def _bad_rows(app, hostile) -> list[str]:
    """Rows in the trading tables that came from bad data: made-up tickets, impossible values, or
    values other than the broker's own records (the simulator under the hostile wrapper)."""
    bad = []
    first = datetime(2025, 12, 1, tzinfo=UTC)
    last = hostile.now()
    sim = hostile._sim  # noqa: SLF001 - the truth behind the corruption
    real = {d.ticket: d for d in sim.history_deals_get(EPOCH, FAR)}
    history, reversals = broker_positions_history(sim)
    fine_steps = any(sim.symbol_info(s).volume_step < 0.01 for s in hostile.symbols)  # 0.001 lots store as 0.00
    for row in _rows(app, "select * from deals"):
        time = row.time if isinstance(row.time, datetime) else datetime.fromisoformat(str(row.time))
        if (row.ticket not in real or _as_stored(row.volume) != _as_stored(real[row.ticket].volume)
                or not real[row.ticket].volume > 0 or not float(row.price) > 0
                or not abs(float(row.profit)) < 1e6 or len(row.comment) > 64 or row.symbol not in hostile.symbols
                or row.type not in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL)
                or not first <= time.replace(tzinfo=UTC) <= last):
            bad.append(f"deal {row.ticket}")
    for row in _rows(app, "select * from trades"):
        position = history.get(reversals.get(row.ticket, row.ticket))
        if (position is None or not float(row.entry_price) > 0 or not float(row.volume) >= 0
                or position["count"] == 1 and _as_stored(row.volume) != _as_stored(position["volume"])):
            bad.append(f"trade {row.ticket}")
    for row in _rows(app, "select * from orders"):
        volume = float(row.volume)
        if not float(row.requested_price) > 0 or not 0 <= volume <= 10 or volume == 0 and not fine_steps:
            bad.append(f"order {row.client_order_id} price {row.requested_price} volume {row.volume}")
    for row in _rows(app, "select * from account_snapshots"):
        if not 5_000 < float(row.equity) < 20_000:  # the run starts at 10 000 and moves a few percent
            bad.append(f"account snapshot {row.time} equity {row.equity}")
    for row in _rows(app, "select * from position_snapshots"):
        volume = float(row.volume)
        if (row.ticket >= FAKE_TICKET or not volume >= 0 or volume == 0 and not fine_steps
                or not float(row.price_open) > 0):
            bad.append(f"position snapshot {row.ticket}")
    tickets = Counter(r.ticket for r in _rows(app, "select ticket from deals"))
    bad += [f"deal {t} stored {n} times" for t, n in tickets.items() if n > 1]
    return bad
