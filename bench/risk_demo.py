"""The demo's "No money" figure: an accelerated, stepped `make run` on the demo profile.

`python -m bench.risk_demo [--cycles 2000] [--seed 42] [--no-guard]` runs the whole bot
(BotApp, default settings, in-process simulated terminal with the demo broker profile, SQLite in a
temporary folder) for N cycles of CYCLE_SECONDS simulated time each, then reads the store and
prints:
- orders by outcome, and the broker's 10019 "No money" refusals per 1 000 orders (target 0);
- orders the risk guard resized or skipped before they were sent, by reason;
- the minimum margin level seen in the account snapshots, against the MarginLevelLow threshold
  of prometheus/rules/thresholds.yml (the alert must not fire: the minimum stays above it).

`--no-guard` sets MAX_MARGIN_USAGE=100 and RISK_GUARD=off-like limits so the same run shows what the
demo did before the guard (the issue's 38 % refusals).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from mt5bridge import constants as mt5

THRESHOLDS = Path(__file__).resolve().parents[1] / "prometheus" / "rules" / "thresholds.yml"
#: Limits wide enough to leave the broker as the only judge (what the demo did before the guard).
NO_GUARD = {"MAX_MARGIN_USAGE": "100", "MARGIN_CHECK": "off", "MAX_OPEN_POSITIONS": "1000",
            "MAX_TOTAL_RISK": "1000", "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100"}


def margin_alert_ratio() -> Decimal:
    """The MarginLevelLow threshold (a ratio) as the recording rule in thresholds.yml sets it."""
    body = THRESHOLDS.read_text(encoding="utf-8")
    match = re.search(r"record: tradewatch:alert_threshold:margin_level_ratio\s+expr: vector\(([0-9.]+)\)", body)
    if match is None:
        raise SystemExit(f"no margin_level_ratio threshold in {THRESHOLDS}")
    return Decimal(match.group(1))


def run(cycles: int, seed: int, guard: bool) -> dict:
    from bot.app import BotApp
    from bot.config import Settings
    from mt5bridge.sim import SimTerminal

    with tempfile.TemporaryDirectory() as folder:
        env = {"DATABASE_URL": f"sqlite:///{folder}/demo.db", "LOG_LEVEL": "ERROR", "METRICS_PORT": "0",
               "CONTROL_PORT": "0", "SIM_BROKER": "demo", "SIM_SEED": str(seed),
               **({} if guard else NO_GUARD)}
        settings = Settings.from_env(env, dotenv_path=None)
        sim = SimTerminal(seed=seed, stepped=True, profile="demo")
        app = BotApp(settings, sim=sim, stepped=True)
        app.run(cycles=cycles, serve=False)
        guard_counts = dict(app.engine.risk_guard.refusals) if hasattr(app.engine, "risk_guard") else {}
        app = BotApp(settings, sim=sim, stepped=True)
        try:
            with app.database.engine.connect() as conn:
                orders = list(conn.execute(text("select status, retcode, purpose from orders")))
                levels = [Decimal(str(r[0])) for r in conn.execute(
                    text("select margin_level from account_snapshots where margin_level is not null and margin > 0"))]
        finally:
            app.database.dispose()
    return {"orders": orders, "levels": levels, "guard": guard_counts}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.risk_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-guard", action="store_true", help="limits off: the demo as it was before the guard")
    args = parser.parse_args([] if argv is None else argv)  # None: called by python -m bench
    logging.disable(logging.WARNING)
    result = run(args.cycles, args.seed, not args.no_guard)
    orders = result["orders"]
    sent = [o for o in orders if o.status in ("filled", "rejected", "unknown")]
    no_money = sum(1 for o in sent if o.retcode == mt5.TRADE_RETCODE_NO_MONEY)
    per_1000 = Decimal(no_money * 1000) / len(sent) if sent else Decimal(0)
    outcomes = Counter(o.status for o in orders)
    minimum = min(result["levels"], default=None)
    threshold = margin_alert_ratio() * 100
    say(f"cycles: {args.cycles}  guard: {'on' if not args.no_guard else 'off'}  seed: {args.seed}")
    say(f"orders by outcome: {dict(sorted(outcomes.items()))}")
    say(f"orders sent to the broker: {len(sent)}; No money (10019) refusals: {no_money}")
    say(f"No money refusals per 1 000 orders: {per_1000:.1f}")
    say(f"risk guard before sending: {result['guard'] or 'nothing resized or skipped'}")
    if minimum is None:
        say("minimum margin level seen: no margin in use in any snapshot")
    else:
        verdict = "MarginLevelLow would not fire" if minimum > threshold else "MarginLevelLow WOULD FIRE"
        say(f"minimum margin level seen: {minimum:.1f} % (MarginLevelLow threshold {threshold:.0f} %): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
