"""Talking to a live Loki from the end-to-end test, and reading what a service wrote to stdout.

Why a module of its own: tests/test_stack_e2e.py checks Prometheus, Alertmanager and SQL too;
the Loki side needs its HTTP API (query, query_range, labels, ruler), the stack's stdout logs
(the ground truth the Loki counts are compared with) and a way to cut a time window that no
log line straddles (stdout timestamps have millisecond resolution, Loki's nanoseconds).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

NS_PER_MS = 1_000_000
_LEVEL_MATCHER = re.compile(r'\blevel=~"([^"]*)"')


class LokiQueryError(AssertionError):
    """Loki refused a query (400: bad LogQL, or a failed evaluation)."""


@dataclass(frozen=True)
class LokiResult:
    result_type: str  # streams | matrix | vector
    result: list[dict[str, Any]]

    @property
    def lines(self) -> list[tuple[int, str, dict[str, str]]]:
        """(ns, line, labels incl. structured metadata) of a log query, oldest first."""
        found = [(int(ns), line, stream["stream"]) for stream in self.result for ns, line, *_ in stream["values"]]
        return sorted(found, key=lambda item: item[0])

    @property
    def has_data(self) -> bool:
        return any(item.get("values") or item.get("value") for item in self.result)

    def scalar_sum(self) -> float:
        """Sum of an instant vector's values (0 when empty)."""
        return sum(float(item["value"][1]) for item in self.result)


class LokiClient:
    """The few Loki HTTP endpoints the test uses, with one-line errors."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace").strip()
            raise LokiQueryError(f"Loki {exc.code} for {params.get('query') if params else path}: {body}") from None

    def query_range(self, expr: str, start_ns: int, end_ns: int, limit: int = 5000, step: str = "5s") -> LokiResult:
        data = self._get("/loki/api/v1/query_range", {"query": expr, "start": start_ns, "end": end_ns,
                                                      "limit": limit, "direction": "forward", "step": step})["data"]
        return LokiResult(data["resultType"], data["result"])

    def query(self, expr: str, time_ns: int) -> LokiResult:
        data = self._get("/loki/api/v1/query", {"query": expr, "time": time_ns})["data"]
        return LokiResult(data["resultType"], data["result"])

    def label_values(self, label: str, start_ns: int, end_ns: int) -> list[str]:
        return self._get(f"/loki/api/v1/label/{label}/values", {"start": start_ns, "end": end_ns}).get("data") or []

    def ruler_alerts(self) -> list[dict[str, Any]]:
        """Alerts of Loki's ruler (Prometheus API shape: labels, state, activeAt)."""
        return self._get("/prometheus/api/v1/alerts")["data"]["alerts"]

    def count_lines(self, selector: str, start_ns: int, end_ns: int) -> int:
        """Lines of `selector` with start < time <= end (count_over_time at `end` over the window)."""
        window_ms = max(1, (end_ns - start_ns) // NS_PER_MS)
        return int(self.query(f"sum(count_over_time({selector} [{window_ms}ms]))", end_ns).scalar_sum())


# --- stdout (the stack's log files) ---------------------------------------------------------

@dataclass(frozen=True)
class StdoutLine:
    ms: int  # the line's "timestamp" field, unix milliseconds (truncated from the record's time)
    record: dict[str, Any]


def _epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000 + 0.5)


def stdout_lines(path: Path, service: str) -> list[StdoutLine]:
    """The JSON log lines of `service` in a log file (other output, e.g. handler notes, skipped)."""
    found = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("service") == service and "timestamp" in record:
            found.append(StdoutLine(_epoch_ms(record["timestamp"]), record))
    return found


def boundary_after(lines: Sequence[StdoutLine], not_before_ms: int) -> int:
    """A time (ns) at or after `not_before_ms` that falls in a gap of at least 2 ms between lines.

    A line stamped m ms was logged in [m, m+1) ms, so (m + 1.5) ms is after it and before any
    line stamped m + 2 or later: no line can be on either side depending on rounding.
    """
    stamps = sorted(line.ms for line in lines)
    for here, after in zip(stamps, stamps[1:], strict=False):
        if here + 1 >= not_before_ms and after - here >= 2:
            return here * NS_PER_MS + 3 * NS_PER_MS // 2
    raise AssertionError(f"no gap of 2 ms between log lines after {not_before_ms}")


def count_between(lines: Sequence[StdoutLine], start_ns: int, end_ns: int) -> int:
    """Stdout lines inside the window (bounds from boundary_after, so no line is ambiguous)."""
    return sum(1 for line in lines if start_ns < line.ms * NS_PER_MS < end_ns)


def levels_matched(expr: str, logged_levels: set[str]) -> bool:
    """Whether an expression's `level=~"..."` matchers (if any) admit a level the stack logged."""
    matchers = _LEVEL_MATCHER.findall(expr)
    return all(any(re.fullmatch(pattern, level) for level in logged_levels) for pattern in matchers)


def iter_log_files(root: Path) -> Iterator[tuple[str, Path]]:
    for service in ("bot", "exporter"):
        path = root / "logs" / f"{service}.log"
        if path.exists():
            yield service, path


def is_rejection(line: StdoutLine) -> bool:
    """An order outcome line saying the order was rejected (what RejectedOrdersBurst counts)."""
    return re.fullmatch(r"order .+: rejected.*", str(line.record.get("message", ""))) is not None


def without_threshold(expr: str) -> str:
    """A rule's expression without its final comparison: the series it compares (data, not a verdict)."""
    return re.split(r"\s(?:>=|<=|==|!=|>|<)\s*[0-9.]+\s*$", expr.strip())[0]
