"""The whole bot on every shipped broker profile: what a real account would refuse, misdate or misbook.

Why: each profile (mt5bridge/sim/profiles) plays one broker style - suffixed names, FOK-only
Instant execution, a GMT+2/+3 or GMT+3 server clock, netting, Request execution with requotes,
0.001 lots, tick-size CFDs. On each, an accelerated in-process run (BotApp on a stepped simulator,
as the engine tests run it) of `CYCLES` cycles is judged on three figures the issue asks for:

- orders the broker refused, by retcode, and of those the *avoidable* ones (filling mode, stops,
  volume: what the symbol's specification says in advance) - must be 0. Every ``order_send`` that
  reaches the simulator is counted at the simulator (a tap on the terminal), so a 10030 the bot
  retried with another filling mode still counts: the store only shows the final outcome;
- the largest distance between any stored time (every UTC column of every table with rows) and
  the simulator's true UTC of that event - must be within 1 s. Deal times are checked against the
  simulator's own deal, converted with the profile's server-time rule (not with the offset the bot
  measured); trade open/close against the deals that opened and closed them; everything the bot
  stamps in a cycle (signals, orders, snapshots, ...) against the simulator's clock at that cycle;
- the trades in the store against the broker's positions history, rebuilt here from the
  simulator's deals grouped by position (count, total volume, net profit to the cent) - must be
  equal for every closed position.

`python -m bench profiles` (part of `make bench`) runs every profile; `python -m bench.profiles
--cycles N --profile NAME` runs a chosen subset. tests/test_bench_profiles.py proves the checks
on a short run, including a doctored store they must catch.
"""

from __future__ import annotations

import bisect
import logging
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from mt5bridge import constants as mt5

CYCLES = 2000
SEED = 4242
#: Monday noon UTC: the run (2 000 x 30 s = 16.7 h) crosses every profile's server midnight
#: (rollover, swaps, the gold break on retail-hedging) while all markets are open.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TIME_TOLERANCE_SECONDS = 1.0
CENT = Decimal("0.01")
EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

#: Refusals the bot could have avoided from the symbol's specification alone.
AVOIDABLE = {
    mt5.TRADE_RETCODE_INVALID_FILL: "filling mode",
    mt5.TRADE_RETCODE_INVALID_STOPS: "stops",
    mt5.TRADE_RETCODE_INVALID_VOLUME: "volume",
}
RETCODE_NAMES = {v: k.removeprefix("TRADE_RETCODE_") for k, v in vars(mt5).items()
                 if k.startswith("TRADE_RETCODE_") and isinstance(v, int)}
OPENING = (mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_INOUT)
CLOSING = (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY, mt5.DEAL_ENTRY_INOUT)

#: How the true UTC of a stored time is found, per (table, column); any other UTC column with rows
#: is something the bot stamped during a cycle ("cycle": the simulator's clock at the nearest cycle).
TIME_TRUTH = {
    ("deals", "time"): "deal",
    ("trades", "entry_time"): "trade_entry",
    ("trades", "exit_time"): "trade_exit",
    ("equity_bases", "first_exit_time"): "any_deal",
    ("trade_rollups", "last_exit_time"): "any_deal",
    # The bot process's own figures per minute (cycle durations, CPU, memory: bot/history.py) are
    # stamped with the machine's clock by design - true UTC at a real terminal, and in an accelerated
    # run the time the process really spent - so their truth is the wall-clock minute of the cycles.
    ("metrics_history", "minute"): "wall_minute",
}


def profile_names() -> list[str]:
    """The shipped profiles: the same list as tests/test_mt5_conformance.py's broker_profiles()."""
    from mt5bridge.sim import profiles

    return list(profiles.names())


def configured_symbols(profile: str) -> list[str]:
    """What a trader would write in SYMBOLS: the plain instrument where the broker only decorates it
    ("EURUSD" for "EURUSD.m", "US500" for "#US500"), the broker's own name otherwise ("GOLD.f")."""
    from bot.engine.symbols import MAX_AFFIX
    from mt5bridge.sim import profiles

    names = []
    for name, spec in profiles.load(profile).symbols.items():
        decorated = name != spec.feed and (name.startswith(spec.feed) or name.endswith(spec.feed))
        names.append(spec.feed if decorated and len(name) - len(spec.feed) <= MAX_AFFIX else name)
    return names


def server_to_utc(server_time, server_epoch: float) -> float:
    """True UTC of a server-clock epoch under the profile's rule (the simulator's truth, not the bot's)."""
    base = round(server_time.offset_hours * 3600) if server_time.rule != "utc" else 0
    for guess in (base, base + 3600):
        utc = server_epoch - guess
        if server_time.offset(utc) == guess:
            return utc
    raise ValueError(f"server time {server_epoch} does not exist under {server_time.describe()}")


# --- what happened: the broker's side and the store's side ------------------------------------


@dataclass(frozen=True)
class Sent:
    """One order_send as the simulated broker received and answered it."""

    action: int
    symbol: str
    retcode: int | None


class BrokerTap:
    """Wraps the terminal's order_send: every request that reaches the broker, with its retcode."""

    def __init__(self, terminal):
        self.sent: list[Sent] = []
        self._send = terminal.order_send
        terminal.order_send = self

    def __call__(self, request=None, **kwargs):
        result = self._send(request, **kwargs) if request is not None else self._send(**kwargs)
        asked = request if request is not None else kwargs.get("request", kwargs)
        self.sent.append(Sent(int(asked.get("action", 0)), str(asked.get("symbol", "")),
                              getattr(result, "retcode", None)))
        return result


@dataclass
class Totals:
    count: int = 0
    volume: Decimal = Decimal(0)
    net: Decimal = Decimal(0)

    def key(self) -> tuple[int, Decimal, Decimal]:
        return self.count, self.volume, self.net.quantize(CENT)

    def __str__(self) -> str:
        return f"{self.count} trades, {self.volume} lots, net {self.net.quantize(CENT)}"


@dataclass
class RunRecord:
    """Everything the checks need, read from the simulator and the store after a run."""

    profile: str
    cycles: int
    cycle_times: list[datetime]
    sent: list[Sent]
    deals: list[dict]  # the simulator's history deals (plain), each with its true UTC under "utc"
    open_position_ids: set[int]
    stored_times: dict[tuple[str, str], list[tuple[str, datetime]]]
    stored_trades: list[dict]
    cycle_errors: Counter = field(default_factory=Counter)
    wall_seconds: float = 0.0
    cycle_walls: list[datetime] = field(default_factory=list)  # the machine's clock at each cycle


class ProfileRun:
    """The bot (BotApp, SQLite store) against a stepped simulator playing one profile."""

    def __init__(self, profile: str, workdir: Path, seed: int = SEED, start: datetime = START):
        from bot.app import BotApp
        from bot.config import Settings
        from mt5bridge.sim import SimTerminal
        from mt5bridge.sim.profiles import load

        self.profile = profile
        self.server_time = load(profile).account.server_time
        self.sim = SimTerminal(seed=seed, stepped=True, start=start, profile=profile)
        self.tap = BrokerTap(self.sim)
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"DATABASE_URL": f"sqlite:///{workdir}/{profile}.db", "SYMBOLS": ",".join(configured_symbols(profile)),
               "TIMEFRAME": "M1", "CYCLE_SECONDS": "30", "LOG_LEVEL": "ERROR", "METRICS_PORT": "0",
               "RISK_PER_TRADE": "0.2",
               # what the broker refuses is measured, not losses: the loss halts would stop the run
               "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100"}
        self.app = BotApp(Settings.from_env(env, dotenv_path=None), sim=self.sim, stepped=True)
        self.cycle_times: list[datetime] = []
        self.cycle_walls: list[datetime] = []
        self.cycle_errors: Counter = Counter()
        self.wall_seconds = 0.0
        self.app.connect()
        self.app.start_telemetry(serve=False)

    def run(self, cycles: int) -> None:
        """`cycles` cycles, the clock stepped between them (not after the last: a stop or take-profit
        hit after the bot's last look would be a closed position the bot had no chance to see)."""
        began = time.perf_counter()
        for _ in range(cycles):
            if self.cycle_times:
                self.app.pacer.wait()
            self.cycle_times.append(self.sim.now())  # a stepped clock stands still during the cycle
            self.cycle_walls.append(datetime.now(UTC))
            report = self.app.engine.run_cycle()
            if report.error:
                self.cycle_errors[report.error.split(":")[0]] += 1
        self.wall_seconds += time.perf_counter() - began

    def record(self) -> RunRecord:
        """Read the broker's history and every stored time and trade (again after a doctored store)."""
        from mt5bridge.plain import to_plain

        deals = [dict(d) for d in to_plain(self.sim.history_deals_get(EPOCH, FAR))]
        for deal in deals:
            deal["utc"] = datetime.fromtimestamp(server_to_utc(self.server_time, deal["time_msc"] / 1000), UTC)
        return RunRecord(
            profile=self.profile, cycles=len(self.cycle_times), cycle_times=list(self.cycle_times),
            sent=list(self.tap.sent), deals=deals,
            open_position_ids={p.identifier for p in self.sim.positions_get() or ()},
            stored_times=stored_times(self.app.database.engine), stored_trades=stored_trades(self.app.database.engine),
            cycle_errors=Counter(self.cycle_errors), wall_seconds=self.wall_seconds, cycle_walls=list(self.cycle_walls),
        )

    def close(self) -> None:
        self.app.close()


def _utc_columns():
    from db.models import Base
    from db.types import UTCDateTime

    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, UTCDateTime):
                yield table, column


def stored_times(engine) -> dict[tuple[str, str], list[tuple[str, datetime]]]:
    """Every non-null UTC time in the store, keyed by (table, column), each with its row's key."""
    out: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
    with engine.connect() as conn:
        for table, column in _utc_columns():
            key = table.c.ticket if "ticket" in table.c else table.c.id if "id" in table.c else column
            rows = conn.execute(select(key, column).where(column.is_not(None))).all()
            if rows:
                out[(table.name, column.name)] = [(str(k), v) for k, v in rows]
    return out


def stored_trades(engine) -> list[dict]:
    from db.models import TradeModel

    with engine.connect() as conn:
        rows = conn.execute(select(TradeModel.ticket, TradeModel.volume, TradeModel.profit, TradeModel.is_closed))
        return [dict(r._mapping) for r in rows]


# --- the checks -----------------------------------------------------------------------------------


def refusals(sent: list[Sent]) -> tuple[Counter, int]:
    """Refused sends by retcode, and how many of them were avoidable (AVOIDABLE)."""
    refused = Counter(s.retcode for s in sent if s.retcode not in (mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_PLACED))
    return refused, sum(n for code, n in refused.items() if code in AVOIDABLE)


def _nearest(sorted_times: list[datetime], when: datetime) -> float:
    """Seconds from `when` to the nearest of `sorted_times` (inf if there is none)."""
    at = bisect.bisect_left(sorted_times, when)
    near = [abs((t - when).total_seconds()) for t in sorted_times[max(0, at - 1):at + 1]]
    return min(near, default=float("inf"))


def time_offsets(record: RunRecord) -> dict[str, tuple[float, str]]:
    """Per stored column ("table.column"): the largest distance to the true UTC, and the worst row's key."""
    cycles = sorted(record.cycle_times)
    walls = sorted({t.replace(second=0, microsecond=0) for t in record.cycle_walls})
    by_ticket = {d["ticket"]: d["utc"] for d in record.deals}
    opening: dict[int, list[datetime]] = defaultdict(list)  # trade ticket -> times of deals that open one
    closing: dict[int, list[datetime]] = defaultdict(list)
    for d in record.deals:
        if d["entry"] in OPENING:
            opening[d["position_id"] if d["entry"] == mt5.DEAL_ENTRY_IN else d["order"]].append(d["utc"])
        if d["entry"] in CLOSING:
            closing[d["position_id"]].append(d["utc"])
    _, reversals = broker_positions(record.deals)
    any_deal = sorted(by_ticket.values())
    out: dict[str, tuple[float, str]] = {}
    for (table, column), rows in record.stored_times.items():
        rule = TIME_TRUTH.get((table, column), "cycle")
        worst = (0.0, "")
        for key, when in rows:
            if rule == "deal":
                truth = by_ticket.get(int(key))
                gap = abs((when - truth).total_seconds()) if truth else float("inf")
            elif rule == "trade_entry":
                gap = _nearest(sorted(opening.get(int(key), [])), when)
            elif rule == "trade_exit":
                position = reversals.get(int(key), int(key))
                gap = _nearest(sorted(t for t in closing.get(position, []) if t >= _first(opening, int(key))), when)
            elif rule == "any_deal":
                gap = _nearest(any_deal, when)
            elif rule == "wall_minute":
                gap = _nearest(walls, when)
            else:
                gap = _nearest(cycles, when)
            if not worst[1] or gap > worst[0]:
                worst = (gap, key)
        out[f"{table}.{column}"] = worst
    return out


def _first(opening: dict[int, list[datetime]], ticket: int) -> datetime:
    return min(opening.get(ticket, []), default=EPOCH)


def broker_positions(deals: list[dict]) -> tuple[dict[int, Totals], dict[int, int]]:
    """The broker's positions history from its deals, written here apart from bot.engine.trades_from_deals.

    Per position identifier: a trade starts at the IN deal that opens it and at every INOUT deal that
    flips the netted volume's sign; its volume is what was opened (IN volume, or what an INOUT left
    the other way); its net profit is every deal's profit, commission and swap. Also returns each
    reversal's trade ticket (the INOUT deal's order) -> position identifier.
    """
    totals: dict[int, Totals] = defaultdict(Totals)
    held: dict[int, Decimal] = defaultdict(Decimal)
    reversals: dict[int, int] = {}
    for d in sorted(deals, key=lambda d: (d["time_msc"], d["ticket"])):
        if d["type"] not in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL):
            continue  # balance, credit: no position
        pid, volume = d["position_id"], Decimal(str(d["volume"]))
        t = totals[pid]
        t.net += sum(Decimal(str(d.get(k) or 0)) for k in ("profit", "commission", "swap", "fee"))
        after = held[pid] + (volume if d["type"] == mt5.DEAL_TYPE_BUY else -volume)
        if d["entry"] == mt5.DEAL_ENTRY_IN:
            t.count += held[pid] == 0
            t.volume += volume
        elif d["entry"] == mt5.DEAL_ENTRY_INOUT and after != 0:
            t.count += 1
            t.volume += abs(after)
            reversals[d["order"]] = pid
        held[pid] = after
    return dict(totals), reversals


def store_positions(trades: list[dict], reversals: dict[int, int]) -> tuple[dict[int, Totals], set[int]]:
    """The store's trades grouped the same way, and the positions that have a trade still open."""
    totals: dict[int, Totals] = defaultdict(Totals)
    still_open: set[int] = set()
    for trade in trades:
        pid = reversals.get(trade["ticket"], trade["ticket"])
        t = totals[pid]
        t.count += 1
        t.volume += Decimal(str(trade["volume"]))
        t.net += Decimal(str(trade["profit"] or 0))
        if not trade["is_closed"]:
            still_open.add(pid)
    return dict(totals), still_open


def trade_mismatches(record: RunRecord) -> tuple[int, list[str]]:
    """(closed positions compared, what differs): every position the broker closed, against the store."""
    broker, reversals = broker_positions(record.deals)
    store, store_open = store_positions(record.stored_trades, reversals)
    closed = {pid for pid in broker if pid not in record.open_position_ids}
    problems = []
    for pid in sorted(closed | (set(store) - set(broker))):
        want, got = broker.get(pid), store.get(pid)
        if want is None:
            problems.append(f"position {pid}: in the store ({got}) but not in the broker's history")
        elif got is None:
            problems.append(f"position {pid}: closed at the broker ({want}) but no trade in the store")
        elif pid in store_open:
            problems.append(f"position {pid}: closed at the broker but still open in the store")
        elif got.key() != want.key():
            problems.append(f"position {pid}: store {got}; broker {want}")
    return len(closed), problems


@dataclass
class ProfileFigures:
    profile: str
    cycles: int
    sent: Counter
    refused: Counter
    avoidable: int
    offsets: dict[str, tuple[float, str]]
    positions_compared: int
    mismatches: list[str]
    cycle_errors: Counter
    wall_seconds: float

    @property
    def max_offset(self) -> tuple[float, str]:
        worst = max(self.offsets.items(), key=lambda kv: kv[1][0], default=("-", (0.0, "")))
        return worst[1][0], worst[0]

    def failures(self) -> list[str]:
        out = []
        if self.avoidable:
            out.append(f"{self.avoidable} avoidable refusals")
        late = {c: round(gap, 3) for c, (gap, _) in self.offsets.items() if gap > TIME_TOLERANCE_SECONDS}
        if late:
            out.append(f"stored times off true UTC by more than {TIME_TOLERANCE_SECONDS:g} s: {late}")
        if self.mismatches:
            out.append(f"{len(self.mismatches)} positions differ between the store and the broker")
        if not self.positions_compared:
            out.append("no closed position to compare")
        return out

    def lines(self) -> list[str]:
        names = {a: "DEAL" if a == mt5.TRADE_ACTION_DEAL else "SLTP" if a == mt5.TRADE_ACTION_SLTP else str(a)
                 for a in self.sent}
        sent = ", ".join(f"{names[a]} {n}" for a, n in sorted(self.sent.items())) or "none"
        refused = ", ".join(f"{RETCODE_NAMES.get(c, c)} ({c}) {n}" for c, n in sorted(self.refused.items(),
                                                                                     key=lambda kv: str(kv[0])))
        gap, column = self.max_offset
        out = [f"profile {self.profile}: {self.cycles} cycles in {self.wall_seconds:.1f} s",
               f"  orders sent: {sum(self.sent.values())} ({sent})",
               f"  refused by the broker: {sum(self.refused.values())}" + (f" ({refused})" if refused else ""),
               f"  avoidable refusals (filling mode, stops, volume): {self.avoidable}",
               f"  largest stored time vs true UTC: {gap:.3f} s ({column}; {len(self.offsets)} columns checked)",
               f"  trades vs the broker's positions history: {self.positions_compared} closed positions, "
               f"{len(self.mismatches)} differ"]
        out += [f"    {m}" for m in self.mismatches[:10]]
        if self.cycle_errors:
            out.append(f"  failed cycles: {dict(self.cycle_errors)}")
        out.append("  " + ("FAILED: " + "; ".join(self.failures()) if self.failures() else "ok"))
        return out


def check(record: RunRecord) -> ProfileFigures:
    refused, avoidable = refusals(record.sent)
    compared, mismatches = trade_mismatches(record)
    return ProfileFigures(record.profile, record.cycles, Counter(s.action for s in record.sent), refused, avoidable,
                          time_offsets(record), compared, mismatches, record.cycle_errors, record.wall_seconds)


def run_profile(profile: str, cycles: int, workdir: Path) -> ProfileFigures:
    run = ProfileRun(profile, workdir)
    try:
        run.run(cycles)
        return check(run.record())
    finally:
        run.close()


def main(argv: list[str] | None = None) -> int:
    """Every profile (or those named), CYCLES cycles each; non-zero if any check fails."""
    import confcheck

    parser = confcheck.OneLineParser(prog="python -m bench.profiles", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=confcheck.arg(confcheck.integer(1, 1_000_000)), default=CYCLES)
    parser.add_argument("--profile", action="append", choices=profile_names(), help="repeatable; default: all")
    options = parser.parse_args([] if argv is None else argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="tradewatch-bench-profiles-"))
    failed = []
    for profile in options.profile or profile_names():
        figures = run_profile(profile, options.cycles, workdir)
        sys.stdout.write("\n".join(figures.lines()) + "\n")
        sys.stdout.flush()
        if figures.failures():
            failed.append(profile)
    sys.stdout.write(f"profiles: {'FAILED on ' + ', '.join(failed) if failed else 'all checks passed'} "
                     f"(store files in {workdir})\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
