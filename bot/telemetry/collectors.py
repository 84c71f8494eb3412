"""Scrape-time collectors: process health via psutil, and an ``account`` label for foreign collectors.

Why scrape-time: memory, CPU and open files are read when Prometheus asks, so the
trading loop never spends time polling them. Why the label wrapper: the dashboards
and alert rules select on ``account`` everywhere, including ``process_*`` series
from prometheus_client's own ProcessCollector, which knows nothing about accounts.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class AccountLabelled(Collector):
    """Wraps a collector and prepends ``account=<account>`` to the labels of every sample."""

    def __init__(self, inner: Collector, account: str) -> None:
        self._inner = inner
        self._account = account

    def collect(self) -> Iterable[Metric]:
        for metric in self._inner.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            labelled.samples = [
                sample._replace(labels={"account": self._account, **sample.labels}) for sample in metric.samples
            ]
            yield labelled


class PsutilProcessCollector(Collector):
    """``tradewatch_process_*`` gauges read through psutil (works on Windows/Wine too, unlike /proc).

    - ``tradewatch_process_cpu_percent``: CPU used since the previous scrape, percent of ONE core
      (can exceed 100 with several busy threads).
    - ``tradewatch_process_resident_memory_bytes``: RSS.
    - ``tradewatch_process_open_fds``: open file descriptors (POSIX) or handles (Windows).
    """

    def __init__(self, account: str, process: psutil.Process | None = None) -> None:
        self._account = account
        self._process = process or psutil.Process()
        self._process.cpu_percent(interval=None)  # prime: the first reading is always 0.0

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("tradewatch_process_cpu_percent",
                              "CPU used by the bot since the previous scrape, percent of one core.",
                              labels=["account"]),
            GaugeMetricFamily("tradewatch_process_resident_memory_bytes",
                              "Resident memory of the bot process.", labels=["account"]),
            GaugeMetricFamily("tradewatch_process_open_fds",
                              "Open file descriptors (POSIX) or handles (Windows) of the bot process.",
                              labels=["account"]),
        )

    def describe(self) -> Iterable[Metric]:
        """Names only, so registering does not take a first (priming-breaking) reading."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        cpu, rss, fds = self._families()
        process = self._process
        try:
            with process.oneshot():
                cpu.add_metric([self._account], process.cpu_percent(interval=None))
                rss.add_metric([self._account], process.memory_info().rss)
                open_count = process.num_fds() if hasattr(process, "num_fds") else process.num_handles()
                fds.add_metric([self._account], open_count)
        except psutil.Error:
            return []  # process inspection refused: expose nothing rather than fail the scrape
        return [cpu, rss, fds]
