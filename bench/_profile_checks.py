"""The checks of bench/profiles.py, apart from the run so a test can feed them a doctored record.

Each check takes what a run left (`RunRecord`: the simulator's sends and history deals, its clock at
each cycle, every stored UTC time and trade) and says what differs. The broker's positions history
is rebuilt here from the simulator's deals, written apart from bot.engine.trades_from_deals so the
bot's own derivation is not checked against itself.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from mt5bridge import constants as mt5

TIME_TOLERANCE_SECONDS = 1.0
CENT = Decimal("0.01")
EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)

#: Refusals the bot could have avoided from the symbol's specification alone.
AVOIDABLE = {
    mt5.TRADE_RETCODE_INVALID_FILL: "filling mode",
    mt5.TRADE_RETCODE_INVALID_STOPS: "stops",
    mt5.TRADE_RETCODE_INVALID_VOLUME: "volume",
    mt5.TRADE_RETCODE_FROZEN: "freeze level",  # SL/TP within trade_freeze_level: bot.gateway.freeze
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
    ("deal_marks", "newest"): "any_deal",  # the newest stored deal's time (db.deal_marks), not a cycle's
    # The bot process's own figures per minute (cycle durations, CPU, memory: bot/history.py) are
    # stamped with the machine's clock by design - true UTC at a real terminal, and in an accelerated
    # run the time the process really spent - so their truth is the wall-clock minute of the cycles.
    ("metrics_history", "minute"): "wall_minute",
    ("daily_performance", "day_start"): "server_midnight",  # a broker day starts at the server's midnight
}



def server_to_utc(server_time, server_epoch: float) -> float:
    """True UTC of a server-clock epoch under the profile's rule (the simulator's truth, not the bot's)."""
    base = round(server_time.offset_hours * 3600) if server_time.rule != "utc" else 0
    for guess in (base, base + 3600):
        utc = server_epoch - guess
        if server_time.offset(utc) == guess:
            return utc
    raise ValueError(f"server time {server_epoch} does not exist under {server_time.describe()}")


@dataclass(frozen=True)
class Sent:
    """One order_send as the simulated broker received and answered it."""

    action: int
    symbol: str
    retcode: int | None


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
    server_time: object = None  # the profile's ServerTime rule (mt5bridge.sim.servertime)


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
            elif rule == "server_midnight":
                gap = _nearest(_server_midnights(record.server_time, when), when)
            else:
                gap = _nearest(cycles, when)
            if not worst[1] or gap > worst[0]:
                worst = (gap, key)
        out[f"{table}.{column}"] = worst
    return out


def _server_midnights(server_time, when: datetime) -> list[datetime]:
    """The UTC instants of the server midnights just before and after `when` (UTC days without a rule)."""
    if server_time is None:
        from mt5bridge.sim.servertime import ServerTime

        server_time = ServerTime("utc")
    day = 86400
    at = server_time.to_server(when.timestamp()) // day * day
    return [datetime.fromtimestamp(server_to_utc(server_time, at + k * day), UTC) for k in (0, 1)]




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
            differs = ", ".join(n for n, g, w in zip(("count", "volume", "net"), got.key(), want.key(), strict=True)
                                if g != w)
            problems.append(f"position {pid}: store {got}; broker {want} [{differs} differs]")
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
               f"  avoidable refusals ({', '.join(AVOIDABLE.values())}): {self.avoidable}",
               f"  largest stored time vs true UTC: {gap:.3f} s ({column}; {len(self.offsets)} columns checked)",
               f"  trades vs the broker's positions history: {self.positions_compared} closed positions, "
               f"{len(self.mismatches)} differ"]
        kinds = Counter(_kind(m) for m in self.mismatches)
        out += [f"    {n} positions: {kind}" for kind, n in kinds.most_common()]
        out += [f"    e.g. {m}" for m in self.mismatches[:5]]
        if self.cycle_errors:
            out.append(f"  failed cycles: {dict(self.cycle_errors)}")
        out.append("  " + ("FAILED: " + "; ".join(self.failures()) if self.failures() else "ok"))
        return out


MISMATCH_KINDS = ("no trade in the store", "not in the broker's history", "still open in the store")


def _kind(problem: str) -> str:
    """What a trade_mismatches line says went wrong, for the summary."""
    if problem.endswith(" differs]"):
        return problem.rsplit("[", 1)[1].rstrip("]")
    return next((k for k in MISMATCH_KINDS if problem.endswith(k)), problem)


def check(record: RunRecord) -> ProfileFigures:
    refused, avoidable = refusals(record.sent)
    compared, mismatches = trade_mismatches(record)
    return ProfileFigures(record.profile, record.cycles, Counter(s.action for s in record.sent), refused, avoidable,
                          time_offsets(record), compared, mismatches, record.cycle_errors, record.wall_seconds)
