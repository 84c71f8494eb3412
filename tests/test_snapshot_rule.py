"""When account snapshots are stored: on every balance or position change, else at most SNAPSHOT_INTERVAL apart.

A fast cycle (here every 5 s of broker time) used to store two rows and a commit per cycle that
said nothing new.  The rule (bot.engine.snapshot) must keep what the readers need: no balance
and no set of open positions the bot saw goes unstored, and the newest snapshot is never older
than the interval (plus a cycle) while the bot cycles (the exporter's age, AccountSnapshotStale).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text

from bench import _rig
from bot.engine.snapshot import SNAPSHOT_INTERVAL

CYCLES = 360  # 30 simulated minutes at 5 s a cycle: 30 M1 bars, trades opened and closed
STEP = timedelta(seconds=5)


def _utc(value) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_fast_cycles_store_every_change_and_otherwise_a_snapshot_per_interval(tmp_path):
    app = _rig.bot(f"{tmp_path}/bot.db", symbols=("EURUSD", "GBPUSD", "USDJPY", "XAUUSD"),
                   strategies=("ma_crossover", "rsi_reversion"), cycle_seconds=STEP.total_seconds())
    seen = []  # (balance, our open positions) at the end of each cycle, as the bot reported them
    try:
        for _ in range(CYCLES):
            report = app.engine.run_cycle()
            assert report.error is None, report.error
            ours = frozenset((p.ticket, p.volume) for p in app.engine._our_positions())
            seen.append((report.balance, ours))
            app.liveness.beat()
            app.pacer.wait()
        with app.database.engine.connect() as conn:
            snapshots = list(conn.execute(text("select time, balance, open_positions from account_snapshots order by time")))
            held = list(conn.execute(text("select time, ticket, volume from position_snapshots")))
    finally:
        _rig.close_bot(app)
    stored = {}
    for row in snapshots:
        stored[_utc(row.time)] = (Decimal(str(row.balance)), set())
    for row in held:
        stored[_utc(row.time)][1].add((row.ticket, Decimal(str(row.volume))))
    stored_states = {(balance, frozenset(positions)) for balance, positions in stored.values()}
    changes = [state for before, state in zip(seen, seen[1:], strict=False) if state != before]

    assert len({balance for balance, _ in seen}) >= 3 and len({p for _, p in seen}) >= 3  # the run traded
    assert len(snapshots) < CYCLES / 2  # fewer rows than cycles: the point of the rule
    assert set(seen) <= stored_states, "a balance or a set of positions the bot saw has no snapshot"
    assert len(changes) >= 4
    times = sorted(stored)
    longest = max(b - a for a, b in zip(times, times[1:], strict=False))
    assert longest <= SNAPSHOT_INTERVAL + STEP, f"snapshots {longest} apart"
    assert all(count == len(stored[t][1]) for t, count in ((_utc(r.time), r.open_positions) for r in snapshots))


# -- the rule itself, step by step ------------------------------------------------------------

class Recorded:
    """The store and observer a SnapshotStep needs, keeping what was written."""

    def __init__(self):
        self.accounts, self.held = [], []

    def record_account_snapshot(self, snapshot):
        self.accounts.append(snapshot)

    def record_position_snapshots(self, account, time, positions):
        self.held.append((time, [p.ticket for p in positions]))


def _step():
    from bot.engine.snapshot import SnapshotStep

    step = SnapshotStep()
    step.repo = step.observer = Recorded()
    step.specs, step.account_id = {"EURUSD": None}, "42"
    return step


def _account(balance="1000.00", equity="1000.00"):
    from bot.gateway import AccountState

    return AccountState(login=42, currency="USD", balance=Decimal(balance), equity=Decimal(equity),
                        profit=Decimal(0), margin=Decimal(0), free_margin=Decimal(equity), margin_level=None,
                        leverage=100)


def _position(ticket, volume="0.10", sl=None):
    from bot.gateway import Position

    return Position(ticket=ticket, symbol="EURUSD", direction="BUY", volume=Decimal(volume),
                    price_open=Decimal("1.1"), price_current=Decimal("1.1"), sl=sl, tp=None, profit=Decimal(0),
                    swap=Decimal(0), magic=7, comment="", time=datetime(2026, 1, 5, tzinfo=UTC))


def test_the_rule_stores_changes_at_once_and_floating_figures_once_an_interval():
    from bot.engine.observer import CycleReport

    step, t0 = _step(), datetime(2026, 1, 5, 12, tzinfo=UTC)
    moments = [
        (0, _account(), [], True),  # the first of the run
        (5, _account(equity="1003.10"), [], False),  # only equity floated
        (6, _account(balance="1012.00", equity="1012.00"), [], True),  # a deal moved the balance
        (8, _account(balance="1012.00"), [_position(1)], True),  # a position opened
        (9, _account(balance="1012.00", equity="1011.00"), [_position(1)], False),
        (10, _account(balance="1012.00"), [_position(1, sl=Decimal("1.05"))], True),  # its stop moved
        (12, _account(balance="1012.00"), [_position(1, "0.20", Decimal("1.05"))], True),  # added to
        (31, _account(balance="1012.00", equity="1020.00"), [_position(1, "0.20", Decimal("1.05"))], False),
        (32, _account(balance="1012.00", equity="1021.00"), [_position(1, "0.20", Decimal("1.05"))], True),  # 20 s on
        (25, _account(balance="1012.00", equity="1021.00"), [_position(1, "0.20", Decimal("1.05"))], True),  # clock back
    ]
    for seconds, account, positions, stored in moments:
        before = len(step.repo.accounts)
        report = CycleReport(cycle_id="c", number=1)
        step._snapshot(t0 + timedelta(seconds=seconds), account, positions, report)
        assert len(step.repo.accounts) - before == int(stored), (seconds, account, positions)
        assert report.equity == account.equity and report.open_positions == len(positions)  # told every cycle
        assert report.account is account and report.position_counts == {"EURUSD": len(positions)}
    assert [t for t, _ in step.repo.held] == [s.time for s in step.repo.accounts if s.open_positions]
