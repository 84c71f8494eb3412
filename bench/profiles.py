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

import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bench._profile_checks import (  # noqa: F401 - the checks, re-exported for the test
    EPOCH,
    FAR,
    ProfileFigures,
    RunRecord,
    Sent,
    Totals,
    broker_positions,
    check,
    refusals,
    server_to_utc,
    store_positions,
    time_offsets,
    trade_mismatches,
)

CYCLES = 2000
SEED = 4242
#: Monday noon UTC: the run (2 000 x 30 s = 16.7 h) crosses every profile's server midnight
#: (rollover, swaps, the gold break on retail-hedging) while all markets are open.
START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


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


# --- what happened: the broker's side and the store's side ------------------------------------


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
            server_time=self.server_time,
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


def run_profile(profile: str, cycles: int, workdir: Path) -> ProfileFigures:
    """One profile's run and figures (in a worker process of its own under main)."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)  # the figures, not the bot's warnings
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
    parser.add_argument("--jobs", type=confcheck.arg(confcheck.integer(1, 64)), default=min(2, os.cpu_count() or 1),
                        help="profiles run at once (default: 2, or 1 on a single core)")
    options = parser.parse_args([] if argv is None else argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="tradewatch-bench-profiles-"))
    chosen = options.profile or profile_names()
    failed = []
    # One process per profile, two at a time: the runs share nothing (own simulator, own SQLite
    # file), so two cores halve the wall time; "spawn" gives each a clean interpreter.
    with ProcessPoolExecutor(max_workers=options.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = pool.map(run_profile, chosen, [options.cycles] * len(chosen), [workdir] * len(chosen))
        for profile, figures in zip(chosen, runs, strict=True):
            sys.stdout.write("\n".join(figures.lines()) + "\n")
            sys.stdout.flush()
            if figures.failures():
                failed.append(profile)
    sys.stdout.write(f"profiles: {'FAILED on ' + ', '.join(failed) if failed else 'all checks passed'} "
                     f"(store files in {workdir})\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
