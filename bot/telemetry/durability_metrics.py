"""Metrics of what the bot keeps for later: a store waiting for its database, logs waiting for Loki.

Why a module of its own: these series belong to start-up and log durability
(bot.store.schema, bot.telemetry.loki), and live on the same registry as
BotMetrics without growing that shared class.  Depths are read at scrape
time (``set_function``), so they are never stale and cost nothing per line.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class DurabilityMetrics:
    def __init__(self, registry: CollectorRegistry, account: str) -> None:
        self.account = account
        acct = ["account"]
        self.waiting_for_database = Gauge(
            "tradewatch_store_waiting_for_database",
            "1 while the bot cannot trade for want of its database: no known schema, or no local copy "
            "of the store's state to start from.",
            acct, registry=registry)
        self.log_push_failures = Counter(
            "tradewatch_log_push_failures_total", "Failed pushes to Loki (each is retried; lines stay queued).",
            acct, registry=registry)
        self.log_queue_depth = Gauge(
            "tradewatch_log_queue_depth", "Log lines waiting in memory to be pushed to Loki.", acct,
            registry=registry)
        self.log_backlog_lines = Gauge(
            "tradewatch_log_backlog_lines", "Log lines kept in the local backlog file for a later push.", acct,
            registry=registry)
        self.store_fsync_failures = Counter(
            "tradewatch_store_fsync_failures_total",
            "Failed fsyncs of the SQLite store's WAL after a cycle's commit (db.walsync): those writes may not be on disk.",
            acct, registry=registry)
        self.waiting_for_database.labels(account).set(0)
        self.store_fsync_failures.labels(account)
        self.log_push_failures.labels(account)
        self.log_queue_depth.labels(account).set(0)
        self.log_backlog_lines.labels(account).set(0)

    def watch_waiting_for_database(self, waiting: Callable[[], bool]) -> None:
        """Read at each scrape whether the bot waits for its database."""
        self.waiting_for_database.labels(self.account).set_function(lambda: 1 if waiting() else 0)

    def count_fsync_failure(self) -> None:
        self.store_fsync_failures.labels(self.account).inc()

    def count_push_failure(self) -> None:
        self.log_push_failures.labels(self.account).inc()

    def watch_log_queues(self, queue_depth: Callable[[], int], backlog_lines: Callable[[], int]) -> None:
        """Read the Loki handler's depths at each scrape."""
        self.log_queue_depth.labels(self.account).set_function(queue_depth)
        self.log_backlog_lines.labels(self.account).set_function(backlog_lines)
