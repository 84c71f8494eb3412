"""Store spool figures: append latency while the database is down, and flush rate into PostgreSQL.

Appends are what the engine pays per write during an outage (JSON encoding,
one SQLite WAL commit with synchronous=FULL, i.e. an fsync).  The flush rate
is how fast a backlog drains once the database is back.  PostgreSQL comes
from $BENCH_DATABASE_URL, else a throwaway cluster (tests/pgcluster.py, which
runs with fsync off: a production server is slower per commit).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bot.store import CircuitBreaker, SpooledRepository
from db import DealRecord, Repository, init_db

APPENDS = int(os.environ.get("BENCH_SPOOL_APPENDS", "1000"))
FLUSHED = int(os.environ.get("BENCH_SPOOL_FLUSH", "2000"))
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _deal(ticket: int) -> DealRecord:
    return DealRecord("5012345", ticket, ticket, ticket, "EURUSD", 0, 0, Decimal("0.10"), Decimal("1.084550"),
                      Decimal("-1.23"), Decimal("-0.35"), Decimal("0.00"), 240001, f"tw-{ticket}", 3,
                      T0 + timedelta(seconds=ticket))


@contextmanager
def _postgres_url() -> Iterator[str]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from pgcluster import PgCluster  # noqa: PLC0415 - a test helper, only for this benchmark

    cluster = PgCluster(tempfile.mkdtemp(prefix="tradewatch-bench-pg-"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.destroy()


def _down_breaker() -> CircuitBreaker:
    breaker = CircuitBreaker("store", 1, 3600)
    breaker.record_failure()  # open: every write goes to the spool, the database is never tried
    return breaker


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, _postgres_url() as url:
        database = init_db(url)
        try:
            store = SpooledRepository(Repository(database), f"{tmp}/spool.db", breaker=_down_breaker())
            latencies = []
            for ticket in range(1, APPENDS + 1):
                started = time.perf_counter()
                store.record_deal(_deal(ticket))
                latencies.append(time.perf_counter() - started)
            for ticket in range(APPENDS + 1, FLUSHED + 1):
                store.record_deal(_deal(ticket))
            cuts = statistics.quantiles(latencies, n=100)
            sys.stdout.write(f"spool append p50          : {cuts[49] * 1e3:7.3f} ms  ({APPENDS} deals, WAL + fsync)\n")
            sys.stdout.write(f"spool append p95          : {cuts[94] * 1e3:7.3f} ms\n")
            store.breaker.reset()
            started = time.perf_counter()
            flushed = store.flush()
            elapsed = time.perf_counter() - started
            sys.stdout.write(f"flush into {database.backend:<14}: {flushed / elapsed:7.0f} entries/s  "
                             f"({flushed} entries in {elapsed:.2f} s, one transaction each)\n")
            store.close()
        finally:
            database.dispose()


if __name__ == "__main__":
    main()
