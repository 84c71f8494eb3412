"""Chaos run: the real bot process against the simulated broker over the real bridge and a real Postgres.

Kills the bridge server (SIGKILL), also in the middle of an order (executed, reply lost), stops and
restarts Postgres, keeps Loki unreachable, and SIGKILLs and restarts the bot. Then the broker is
frozen (the bridge restarted from its --state file with a stepped clock that nothing advances) and
the bot makes one last, reconciling run against it, so the broker's history cannot move on after
the bot's last look (a free-running broker would still hit stops and take-profits). Only then are
the simulator's own books (restored from the same state file) compared with the store and the logs:
lost trade rows, duplicate orders, orders sent past TTL or deviation, unresolved outcomes, and
whether the bot ever exited by itself. `main()` runs the long version and prints the figures;
tests/test_chaos.py runs a short one through `run_chaos`.

The broker is a simulator profile (mt5bridge/sim/profiles, `--broker` of the bridge). `make chaos`
plays `retail-hedging`, the common retail setup a real account meets first: ".m" symbol names the
bot must find, FOK-only Instant forex, gold outside Market Watch, freeze levels and a GMT+2/+3
server clock (so every broker time in the comparison below is converted to UTC with the profile's
own rule). `BENCH_CHAOS_BROKER` or `python -m bench.chaos --broker NAME` picks another.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from bench._chaos_procs import SEED, SPEED, Bot, Bridge, Postgres, base_env
from db.pgcluster import free_port
from mt5bridge import constants as mt5

log = logging.getLogger("bench.chaos")

CYCLE_SECONDS = 0.05  # wall seconds per cycle (30 simulated seconds at SPEED)
ORDER_TTL_SECONDS = 1800  # broker seconds (3 wall seconds)
# The bot judges an order's age on the freshest quote right before order_send; the broker executes
# after that check. At SPEED those wall milliseconds (12 ms seen on a loaded 2-core box with four
# chaos runs at once: 7 broker seconds past the TTL) are broker seconds, so the comparison allows one
# wall second of send latency (600 broker s). The TTL check itself is unit-tested exactly
# (tests/test_resilience.py); what this catches is an order sent an outage late.
SEND_LATENCY_SLACK_SECONDS = 1.0 * SPEED
MAX_DEVIATION_POINTS = 300
DEVIATION_POINTS = 20
MAGIC = 20260101
ORDER_BREAKER_FAILURES = 5
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR = datetime(2100, 1, 1, tzinfo=UTC)
LONG_RUN_CYCLES = int(os.environ.get("BENCH_CHAOS_CYCLES", "10000"))
LONG_RUN_BROKER = "retail-hedging"  # `make chaos`; BENCH_CHAOS_BROKER or --broker picks another
SYMBOLS = "EURUSD,GBPUSD,USDJPY,XAUUSD"  # as a trader writes them: the bot finds each broker's spelling


@dataclass
class ChaosResult:
    broker: str = "demo"
    cycles: int = 0
    bridge_kills: int = 0
    mid_order_kills: int = 0
    pg_restarts: int = 0
    bot_kills: int = 0
    broker_orders: int = 0
    broker_deals: int = 0
    lost_deal_rows: int = 0
    lost_trade_rows: int = 0
    duplicate_orders: int = 0
    sent_past_ttl: int = 0
    sent_past_deviation: int = 0
    unresolved: int = 0
    untraced_in_logs: int = 0
    replayed: int = 0
    expired: int = 0
    resolved_at_broker: int = 0
    bot_exits_by_itself: list[int] = field(default_factory=list)
    shutdown_code: int | None = None
    final_run_code: int | None = None  # the last, reconciling run against the frozen broker
    final_run_trades: int = 0  # trades it opened or closed from deals the broker made after the bot's last look
    reconnect_seconds: list[float] = field(default_factory=list)
    spool_drain_seconds: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def figures(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, list)}
        out["bot_exits_by_itself"] = self.bot_exits_by_itself
        out["violations"] = self.violations
        for name, values in (("reconnect", self.reconnect_seconds), ("spool_drain", self.spool_drain_seconds)):
            out[f"{name}_count"] = len(values)
            out[f"{name}_p50_s"] = round(statistics.median(values), 3) if values else None
            out[f"{name}_p95_s"] = round(_p95(values), 3) if values else None
        return out


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _stamp(record: dict) -> float:
    return datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def run_chaos(workdir: Path, *, rounds: int = 4, bridge_kills_per_round: int = 1, pg_every: int = 2,
              bot_kill_every: int = 2, settle_seconds: float = 14.0, pause: float = 1.5,
              min_cycles: int = 0, trip_order_breaker: bool = False, broker: str = "demo",
              symbols: str = SYMBOLS) -> ChaosResult:
    """One chaos run; every child process is gone when it returns (or raises).

    With `min_cycles`, the rounds of faults are spread over that many bot cycles (round k starts
    once the bot has logged k/rounds of them) and the run goes on until it has logged them all, so
    the count does not depend on how fast the machine happens to be. With `trip_order_breaker`,
    each round also makes the terminal answer "no connection" (10031) to enough orders to open the
    order circuit, so orders decided meanwhile wait in the queue and are replayed or expired.
    `broker` is the simulator's broker profile (a name in mt5bridge/sim/profiles); `symbols` the bot's
    SYMBOLS (a profile without gold or GBPUSD, e.g. request-exotic, needs others).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    result = ChaosResult()
    token = "chaos-" + uuid.uuid4().hex
    pg = Postgres(tempfile.mkdtemp(prefix="tradewatch-chaos-pg-"))
    bridge = Bridge(workdir, token, free_port(), broker)
    result.broker = broker
    bot: Bot | None = None
    pg_back_at: list[float] = []
    try:
        pg.start()
        url = pg.create_database("chaos")
        bridge.start()
        env = {**base_env(), "MT5_MODE": "bridge", "MT5_HOST": "127.0.0.1", "MT5_PORT": str(bridge.port),
               "MT5_BRIDGE_TOKEN": token, "MT5_BRIDGE_TIMEOUT": "2",
               "MT5_BRIDGE_FINGERPRINT": bridge.fingerprint, "DATABASE_URL": url,
               "LOKI_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there: Loki is unreachable
               "METRICS_PORT": "0", "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
               "CYCLE_SECONDS": str(CYCLE_SECONDS), "SYMBOLS": symbols,
               "ORDER_TTL_SECONDS": str(ORDER_TTL_SECONDS), "ORDER_MAX_DEVIATION_POINTS": str(MAX_DEVIATION_POINTS),
               "DEVIATION_POINTS": str(DEVIATION_POINTS), "MAGIC": str(MAGIC),
               "RECONNECT_INITIAL_SECONDS": "0.1", "RECONNECT_MAX_SECONDS": "1",
               "ORDER_BREAKER_FAILURES": str(ORDER_BREAKER_FAILURES), "ORDER_BREAKER_RESET_SECONDS": "2",
               "DB_BREAKER_FAILURES": "2", "DB_BREAKER_RESET_SECONDS": "1",
               "ORDER_QUEUE_PATH": str(workdir / "order_queue.db"), "STORE_SPOOL_PATH": str(workdir / "spool.db"),
               # exactly-once under faults is measured, not losses: the risk guard's loss halts off
               "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100", "RISK_STATE_PATH": str(workdir / "risk_state.json")}
        bot = Bot(workdir, env)
        bot.start()
        _wait_for(lambda: bot.cycles() >= 20, 60, "the bot's first cycles")
        for round_no in range(rounds):
            _wait_for_cycles(bot, min_cycles * round_no // rounds)
            for _ in range(bridge_kills_per_round):
                time.sleep(pause)
                bot.check_alive()
                bridge.kill()
                result.bridge_kills += 1
                time.sleep(0.5)
                bridge.start()
            # Execute, then lose the reply, then kill the terminal while the client waits.
            time.sleep(pause)
            before = bridge.filled_count()
            bridge.control("fault_timeout_after_execute", count=1, delay=5.0)
            if _wait_for(lambda before=before: bridge.filled_count() > before, 60, None):
                time.sleep(0.3)
                result.mid_order_kills += 1
            # No order came in time (no signal): the terminal dies anyway, with the fault still armed.
            bridge.kill()
            result.bridge_kills += 1
            time.sleep(0.5)
            bridge.start()
            if trip_order_breaker:
                time.sleep(pause)
                bridge.control("fault_reject_next", count=ORDER_BREAKER_FAILURES, retcode=mt5.TRADE_RETCODE_CONNECTION)
            if pg_every and round_no % pg_every == 0:
                time.sleep(pause)
                spooled_from = bot.log_size()
                pg.stop_server()
                result.pg_restarts += 1
                time.sleep(pause * 2)
                pg.start_server()
                pg_back_at.append(time.time())
                # The next fault waits for the spool to reach the database (an event, not a sleep): on
                # a loaded box the drain can outlast `pause`, and a bot killed mid-drain leaves no
                # "drained" line to time (a kill mid-chunk is tests/test_store_spool.py's case).
                _wait_for(lambda since=spooled_from: _logged_since(bot, since, "store spool drained"), 60, None)
            if bot_kill_every and round_no % bot_kill_every == bot_kill_every - 1:
                time.sleep(pause)
                bot.kill()
                result.bot_kills += 1
                bot.start()
        _wait_for_cycles(bot, min_cycles)
        # Settle: no fault is left armed (a reject still pending would make an order sent in the
        # last instant "unknown", and the frozen broker of the final run never lets its
        # UNKNOWN_ORDER_GRACE of broker time pass), and the bot cycles `settle_seconds` from its
        # first cycle after that (a restart slowed by load must not eat the time).
        bridge.control("clear_faults")
        settled_from = bot.log_size()
        _wait_for(lambda: _logged_since(bot, settled_from, "cycle "), 120, "the bot's first cycle after the last fault")
        time.sleep(settle_seconds)  # unknown outcomes need UNKNOWN_ORDER_GRACE of broker time
        bot.check_alive()
        result.shutdown_code = bot.stop()
        # Freeze the broker, then let the bot record everything it did up to that instant.
        bridge.kill()
        bridge.start(frozen=True)
        result.final_run_code, result.final_run_trades = _final_run(bot)
        result.bot_exits_by_itself = bot.exited_by_itself
    finally:
        if bot is not None and bot.proc is not None and bot.proc.poll() is None:
            bot.proc.kill()
            bot.proc.wait(10)
        bridge.kill()
        try:
            _compare(result, bridge, bot, pg, pg_back_at) if result.final_run_code is not None else None
        finally:
            pg.destroy()
    return result


def _final_run(bot: Bot, cycles_after: int = 3) -> tuple[int, int]:
    """Start the bot against the frozen broker; stop it once it has reconciled and cycled a little.

    Returns its exit code and how many trades its reconciliation opened or closed.

    Reconciliation records every deal the broker made while the bot was not looking (stops and
    take-profits hit after its last cycle); the extra cycles resolve what that leaves over. Nothing
    moves at the broker meanwhile, so the comparison afterwards sees one fixed history.
    """
    offset = bot.log_size()
    bot.start()

    def reconciled_and_cycled() -> bool:
        bot.check_alive()
        records = bot.records(since=offset)
        at = next((i for i, r in enumerate(records) if r.get("message") == "reconciled with the broker"), None)
        if at is None:
            return False
        done = [r for r in records[at:] if str(r.get("message", "")).startswith("cycle ")]
        return len(done) > cycles_after

    _wait_for(reconciled_and_cycled, 120, "the bot's reconciling run against the frozen broker")
    code = bot.stop()
    reconciled = next(r for r in bot.records(since=offset) if r.get("message") == "reconciled with the broker")
    return code, int(reconciled.get("opened", 0)) + int(reconciled.get("closed", 0))


def _wait_for(predicate, seconds: float, what: str | None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    if what is not None:
        raise RuntimeError(f"timed out waiting for {what}")
    return False


def _logged_since(bot: Bot, offset: int, prefix: str) -> bool:
    """Has the (living) bot logged a line starting with `prefix` since log offset `offset`?"""
    bot.check_alive()
    return any(str(r.get("message", "")).startswith(prefix) for r in bot.records(offset))


def _wait_for_cycles(bot: Bot, target: int, stall_seconds: float = 120.0) -> None:
    """Block until the bot has logged `target` cycles in all; fail if it stops making progress."""
    seen, progressed = bot.cycles(), time.monotonic()
    while seen < target:
        time.sleep(1.0)
        bot.check_alive()
        now = bot.cycles()
        if now > seen:
            seen, progressed = now, time.monotonic()
        elif time.monotonic() - progressed > stall_seconds:
            raise RuntimeError(f"the bot logged no cycle for {stall_seconds:.0f} s (at {seen} of {target})")


def _compare(result: ChaosResult, bridge: Bridge, bot: Bot, pg: Postgres, pg_back_at: list[float]) -> None:
    from bench._profile_checks import server_to_utc
    from mt5bridge.sim import SimTerminal
    from mt5bridge.sim.profiles import load

    sim = SimTerminal(seed=SEED, stepped=True, state_file=str(bridge.state), profile=bridge.broker)
    server_time = load(bridge.broker).account.server_time  # the broker reports its server clock
    sim.initialize()
    orders = [o for o in sim.history_orders_get(EPOCH, FAR) if o.magic == MAGIC and o.comment.startswith("tw")]
    deals = [d for d in sim.history_deals_get(EPOCH, FAR) if d.symbol]
    result.broker_orders, result.broker_deals = len(orders), len(deals)
    per_id = Counter(o.comment.split()[0] for o in orders)
    result.duplicate_orders = sum(n - 1 for n in per_id.values())

    engine = create_engine(pg.url_for("chaos"))
    try:
        with engine.connect() as conn:
            stored_deals = {r.ticket for r in conn.execute(text("select ticket from deals"))}
            trades = {r.ticket for r in conn.execute(text("select ticket from trades"))}
            intents = {r.client_order_id: r for r in conn.execute(text(
                "select client_order_id, status, requested_price, created_at, message from orders"))}
    finally:
        engine.dispose()
    result.lost_deal_rows = len({d.ticket for d in deals} - stored_deals)
    missing_trades = {d.position_id for d in deals} - trades
    result.lost_trade_rows = len(missing_trades)
    for d in deals:
        if d.ticket not in stored_deals or d.position_id in missing_trades:
            result.violations.append(
                f"deal {d.ticket} (position {d.position_id}, entry {d.entry}, {d.symbol}, order {d.order},"
                f" time {d.time}, comment {d.comment!r}): {'no deal row' if d.ticket not in stored_deals else 'no trade row'}")
    result.unresolved = sum(1 for r in intents.values() if r.status in ("pending", "unknown"))
    result.resolved_at_broker = sum(1 for r in intents.values() if (r.message or "").startswith("resolved"))
    specs = {name: sim.symbol_info(name) for name in {o.symbol for o in orders}}
    for order in orders:
        intent = intents.get(order.comment.split()[0])
        if intent is None:
            result.sent_past_ttl += 1  # an order we have no record of counts against us
            result.violations.append(f"broker order {order.ticket} ({order.comment}) has no intent in the store")
            continue
        created = intent.created_at if intent.created_at.tzinfo else intent.created_at.replace(tzinfo=UTC)
        setup = datetime.fromtimestamp(server_to_utc(server_time, order.time_setup), UTC)
        if setup - created > timedelta(seconds=ORDER_TTL_SECONDS + SEND_LATENCY_SLACK_SECONDS):
            result.sent_past_ttl += 1
            result.violations.append(f"{order.comment}: decided {created.isoformat()}, executed {setup.isoformat()}"
                                     f" ({intent.status}: {intent.message})")
        # The bot's part: the price it sent (the order's price_open) within ORDER_MAX_DEVIATION_POINTS
        # of the price it decided on. The broker's part: an Instant/Request broker fills within the
        # order's deviation or requotes; a Market/Exchange broker fills at the market whatever the
        # deviation, so there the fill also holds the market's move during the send, which grows
        # with the machine's load at SPEED (a loaded box: 150 wall ms, 90 broker s, 349 gold points).
        spec = specs[order.symbol]
        point = Decimal(str(spec.point))
        sent, filled = Decimal(str(order.price_open)), Decimal(str(order.price_current or order.price_open))
        broker_bound = spec.trade_exemode in (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, mt5.SYMBOL_TRADE_EXECUTION_REQUEST)
        if abs(sent - Decimal(str(intent.requested_price))) > MAX_DEVIATION_POINTS * point or (
                broker_bound and abs(filled - sent) > DEVIATION_POINTS * point):
            result.sent_past_deviation += 1
            result.violations.append(f"{order.comment}: requested {intent.requested_price}, sent {sent},"
                                     f" filled {filled}")

    records = bot.records()
    logged_ids = {r.get("client_order_id") for r in records if r.get("client_order_id")}
    result.untraced_in_logs = len(set(per_id) - logged_ids)
    result.cycles = sum(1 for r in records if str(r.get("message", "")).startswith("cycle "))
    result.replayed = sum(1 for r in records if r.get("message", "").startswith("queued order replayed"))
    result.expired = sum(1 for r in records if r.get("message", "").startswith("queued order expired"))
    result.reconnect_seconds = [r["outage_s"] for r in records if "outage_s" in r]
    # "store spool drained" in the running bot; "store spool drained: ..." when a restarted bot drains it
    drained = [_stamp(r) for r in records if str(r.get("message", "")).startswith("store spool drained")]
    for back in pg_back_at:
        after = [t - back for t in drained if t >= back - 0.5]
        if after:
            result.spool_drain_seconds.append(max(0.0, min(after)))


def _broker_option(argv: list[str]) -> str:
    """--broker NAME (python -m bench.chaos), else $BENCH_CHAOS_BROKER, else retail-hedging."""
    import confcheck
    from mt5bridge.sim.profiles import names

    parser = confcheck.OneLineParser(prog="python -m bench.chaos", description="The long chaos run.")
    parser.add_argument("--broker", choices=names(), default=None,
                        help=f"simulated broker profile (default $BENCH_CHAOS_BROKER or {LONG_RUN_BROKER})")
    chosen = parser.parse_args(argv).broker or os.environ.get("BENCH_CHAOS_BROKER", "").strip() or LONG_RUN_BROKER
    if chosen not in names():
        parser.error(f"BENCH_CHAOS_BROKER: unknown broker profile {chosen!r}; shipped: {', '.join(names())}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    """The long run: >= 10 000 cycles, the bridge killed 20 times, Postgres restarted 5 times."""
    broker = _broker_option([] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    workdir = Path(tempfile.mkdtemp(prefix="tradewatch-chaos-"))
    sys.stdout.write(f"chaos run on broker profile {broker} ({LONG_RUN_CYCLES} cycles, symbols {SYMBOLS})\n")
    sys.stdout.flush()
    started = time.monotonic()
    result = run_chaos(workdir, rounds=10, bridge_kills_per_round=1, pg_every=2, bot_kill_every=5,
                       settle_seconds=20.0, pause=3.0, min_cycles=LONG_RUN_CYCLES, trip_order_breaker=True,
                       broker=broker)
    figures = result.figures()
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    figures["workdir"] = str(workdir)
    sys.stdout.write(json.dumps(figures, indent=2) + "\n")
    short = [f"{name} {got} < {wanted}" for name, got, wanted in (
        ("cycles", result.cycles, LONG_RUN_CYCLES), ("bridge kills", result.bridge_kills, 20),
        ("postgres restarts", result.pg_restarts, 5)) if got < wanted]
    if short:
        sys.stdout.write("the run fell short of its size: " + ", ".join(short) + "\n")
    bad = (result.lost_deal_rows or result.lost_trade_rows or result.duplicate_orders or result.sent_past_ttl
           or result.sent_past_deviation or result.unresolved or result.bot_exits_by_itself or result.shutdown_code
           or result.final_run_code)
    return 1 if bad or short else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
