"""Analytics and exporter speed at scale: p50/p95 of every query at 1 000 000 trades, PostgreSQL and SQLite.

    python -m bench analytics          # BENCH_ANALYTICS_TRADES=200000 for a quicker look

Each store is filled by `python -m db seed-demo`'s generator (several years, eight
symbols, four strategies, two accounts), then every analytics query, a page of trades
and signals, and a full exporter scrape (Flask test client, /metrics rendered) run
REPEAT times after a warm-up.  PostgreSQL is a throwaway cluster (db/pgcluster.py:
stock settings except fsync off and 32 MB shared buffers); SQLite a file in a temp dir.
Also printed: what one close_trade costs on the full store (it updates the rollups in
the same transaction).  Targets (issue "Trade analytics and the exporter service"):
p95 <= 20 ms on PostgreSQL, <= 100 ms on SQLite.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from db import Database, Repository, TradeClose, TradeOpen, init_db
from db.analytics import (
    Selection,
    correlation,
    drawdown,
    strategy_performance,
    symbol_performance,
    time_performance,
)
from db.browse import SignalQuery, TradeQuery, signals, trades
from db.daily_results import daily_performance
from db.pgcluster import PgCluster
from db.seed import demo_accounts, seed_demo
from exporter.app import create_app

TRADES = int(os.environ.get("BENCH_ANALYTICS_TRADES", "1000000"))
ACCOUNTS = int(os.environ.get("BENCH_ANALYTICS_ACCOUNTS", "2"))
YEARS = float(os.environ.get("BENCH_ANALYTICS_YEARS", "5"))
REPEAT = int(os.environ.get("BENCH_ANALYTICS_REPEAT", "100"))
WARMUP = 5
CLOSES = 50
TARGET_MS = {"postgresql": 20.0, "sqlite": 100.0}
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


def queries(database: Database, account: str) -> dict[str, Callable[[], object]]:
    """Every read the analytics and the exporter serve, on one account of the seeded store."""
    everything = Selection(account)
    year = Selection(account, date(2024, 3, 17), date(2025, 3, 16))
    client = create_app(database, clock=lambda: NOW).test_client()

    def scrape() -> None:
        response = client.get("/metrics")
        assert response.status_code == 200

    def api_strategies() -> None:
        response = client.get(f"/api/v1/performance/strategies?account={account}&from=2024-03-17&to=2025-03-16")
        assert response.status_code == 200

    return {
        "strategies, all time": lambda: strategy_performance(database, everything),
        "strategies, 1 year": lambda: strategy_performance(database, year),
        "strategies, 1 year, 1 symbol": lambda: strategy_performance(database, Selection(
            account, year.start, year.end, symbol="XAUUSD")),
        "symbols, all time": lambda: symbol_performance(database, everything),
        "symbols, 1 year, 1 strategy": lambda: symbol_performance(database, Selection(
            account, year.start, year.end, strategy="carry")),
        "by hour, all time": lambda: time_performance(database, everything, "hour"),
        "by hour, 1 year": lambda: time_performance(database, year, "hour"),
        "by weekday, all time": lambda: time_performance(database, everything, "weekday"),
        "by day, all time": lambda: time_performance(database, everything, "day"),
        "by week, 1 year": lambda: time_performance(database, year, "week"),
        "by month, all time": lambda: time_performance(database, everything, "month"),
        "correlation by symbol, all time": lambda: correlation(database, everything, "symbol"),
        "correlation by strategy, 1 year": lambda: correlation(database, year, "strategy"),
        "drawdown, all time": lambda: drawdown(database, everything),
        "drawdown, 1 year, 1 strategy": lambda: drawdown(database, Selection(
            account, year.start, year.end, strategy="breakout")),
        "daily performance, 1 day": lambda: daily_performance(database, account, date(2025, 3, 12)),
        "trades page (100)": lambda: trades(database, TradeQuery(account, limit=100)),
        "signals page (100)": lambda: signals(database, SignalQuery(account, limit=100)),
        "API strategies, 1 year (HTTP)": api_strategies,
        "exporter scrape /metrics (HTTP)": scrape,
    }


def measure(call: Callable[[], object]) -> tuple[float, float]:
    """(p50, p95) in milliseconds over REPEAT calls after WARMUP."""
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(round(0.95 * len(samples))) - 1)]


def close_cost(database: Database, account: str, first_ticket: int = 900_000_000,
               start: datetime = NOW) -> tuple[float, float]:
    """(p50, p95) ms of close_trade on the full store, trades closing in order at its end (`start`)."""
    repo = Repository(database)
    samples = []
    for k in range(CLOSES):
        ticket = first_ticket + k
        moment = start + timedelta(minutes=k)
        repo.open_trade(TradeOpen(account=account, ticket=ticket, symbol="EURUSD", direction="BUY",
                                  volume=Decimal("0.10"), entry_price=Decimal("1.1"), entry_time=moment,
                                  stop_loss=None, take_profit=None, strategy_name="carry", ml_confidence=None,
                                  client_order_id=None, magic=1, correlation_id=None))
        close = TradeClose(account=account, ticket=ticket, exit_price=Decimal("1.1010"),
                           exit_time=moment + timedelta(seconds=30), gross_profit=Decimal("10.00"),
                           commission=Decimal("-0.70"), swap=Decimal(0), profit_pips=Decimal("10.0"))
        started = time.perf_counter()
        repo.close_trade(close)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * len(samples)) - 1]


def run_backend(backend: str, url: str) -> dict[str, tuple[float, float]]:
    database = init_db(url)
    try:
        started = time.perf_counter()
        summary = seed_demo(database, TRADES, ACCOUNTS, YEARS, now=NOW)
        _say(f"{backend}: seeded {summary.closed_trades} closed trades, {summary.rollup_rows} rollup rows "
             f"in {time.perf_counter() - started:.0f} s")
        if backend == "postgresql":
            _vacuum(database)
        account = demo_accounts(ACCOUNTS)[0]
        results = {name: measure(call) for name, call in queries(database, account).items()}
        results["close_trade (writes rollups)"] = close_cost(database, account)
        return results
    finally:
        database.dispose()


def _vacuum(database: Database) -> None:
    """Where autovacuum has long been on a store that grew to this size: planner statistics, and the
    visibility map that makes index-only scans possible (the first VACUUM after a bulk COPY leaves
    it empty, so FREEZE, which sets it at once)."""
    with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (FREEZE, ANALYZE)")


def main() -> int:
    _say(f"analytics at {TRADES:,} trades, {ACCOUNTS} accounts, {YEARS:g} years; {REPEAT} runs per query")
    results: dict[str, dict[str, tuple[float, float]]] = {}
    cluster = PgCluster(tempfile.mkdtemp(prefix="tradewatch-bench-analytics-pg-"))
    try:
        cluster.start()
        results["postgresql"] = run_backend("postgresql", cluster.create_database("bench_analytics"))
    finally:
        cluster.destroy()
    folder = tempfile.mkdtemp(prefix="tradewatch-bench-analytics-sqlite-")
    try:
        results["sqlite"] = run_backend("sqlite", f"sqlite:///{folder}/bench.db")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _print_table(results)
    return 0


def _print_table(results: dict[str, dict[str, tuple[float, float]]]) -> None:
    backends = list(results)
    names = list(next(iter(results.values())))
    width = max(len(n) for n in names) + 2
    header = f"{'query':<{width}}" + "".join(f"{b + ' p50 / p95 ms':>28}" for b in backends)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = []
        for backend in backends:
            p50, p95 = results[backend][name]
            over = " !" if p95 > TARGET_MS[backend] and not name.startswith("close_trade") else "  "
            cells.append(f"{p50:>12.2f} / {p95:>8.2f}{over}")
        lines.append(f"{name:<{width}}" + "".join(f"{c:>28}" for c in cells))
    worst = {b: max(p95 for n, (_, p95) in results[b].items() if not n.startswith("close_trade")) for b in backends}
    lines.append("-" * len(header))
    lines.append("worst p95 of the reads: " + ", ".join(
        f"{b} {worst[b]:.2f} ms (target {TARGET_MS[b]:g} ms)" for b in backends))
    _say("\n".join(lines))


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
