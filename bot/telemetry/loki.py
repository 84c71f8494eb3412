"""Push log lines to Loki from a background thread, never blocking the trading loop.

Why this shape: Loki being slow, rate-limiting or down must cost the trading thread
nothing but a format and an append. ``emit`` puts the formatted line into a bounded
in-memory queue; when the queue is full the OLDEST record is dropped (recent logs
matter most during an incident) and counted through the ``on_drop(n)`` callback —
wire it to :meth:`bot.telemetry.metrics.BotMetrics.count_log_drops` so
``tradewatch_log_records_dropped_total`` moves. A daemon thread batches by size and
time and POSTs gzip JSON to ``/loki/api/v1/push``, retrying 429/5xx/transport errors
with capped exponential backoff (honouring Retry-After) while new lines keep queueing.
Its own trouble goes to stderr, never through logging (that would recurse into itself).
"""

from __future__ import annotations

import collections
import gzip
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from bot.telemetry.context import current_ids
from bot.telemetry.http_push import Pusher, backoff_delay, retry_after_seconds

PUSH_PATH = "/loki/api/v1/push"
ALLOWED_LABELS = frozenset({"service", "account", "env"})  # plus "level", set per record
UNKNOWN_ACCOUNT = "unknown"  # Loki drops empty label values; this keeps the stream findable
_NOTE_INTERVAL_S = 60.0

# (unix ns, level, account, line, structured metadata)
_Entry = tuple[int, str, str, str, dict[str, str]]


class LokiHandler(logging.Handler):
    """A ``logging.Handler`` that ships formatted lines to Loki asynchronously.

    ``labels`` may hold only ``service``, ``account`` and ``env``; ``level`` is added per
    line. ``metadata_fields`` are read from the correlation contextvars (or a record
    attribute of the same name) and sent as Loki structured metadata, not labels, so
    that per-order ids don't explode the stream count. ``on_drop(n)`` is called (from
    the logging thread or the sender thread) whenever ``n`` lines are lost.
    """

    def __init__(
        self,
        url: str,
        labels: Mapping[str, str | None],
        batch_size: int = 500,
        flush_interval: float = 1.0,
        queue_size: int = 10000,
        timeout: float = 5.0,
        max_backoff: float = 30.0,
        metadata_fields: Iterable[str] = ("correlation_id", "cycle_id"),
        *,
        min_backoff: float = 0.5,
        on_drop: Callable[[int], None] | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        unknown = set(labels) - ALLOWED_LABELS
        if unknown:
            raise ValueError(f"Loki labels may only be {sorted(ALLOWED_LABELS)}, got extra {sorted(unknown)}")
        for name, value in (("batch_size", batch_size), ("queue_size", queue_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LokiHandler {name} must be a positive integer, got {value!r}")
        for name, value in (("flush_interval", flush_interval), ("timeout", timeout),
                            ("max_backoff", max_backoff), ("min_backoff", min_backoff)):
            if not value > 0:
                raise ValueError(f"LokiHandler {name} must be > 0 seconds, got {value!r}")
        self._pusher = Pusher(url, PUSH_PATH, "Loki")
        self._static_labels = {k: str(v) for k, v in labels.items() if k != "account" and v}
        self._account = str(labels.get("account") or UNKNOWN_ACCOUNT)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._metadata_fields = tuple(metadata_fields)
        self.on_drop = on_drop
        self.dropped = 0  # lines lost so far, whatever the reason
        self.sent = 0  # lines Loki accepted

        self._queue: collections.deque[_Entry] = collections.deque()
        self._queue_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._closed = False
        self._last_note: dict[str, float] = {}
        self._in_trouble = False
        self._thread = threading.Thread(target=self._run, name="loki-push", daemon=True)
        self._thread.start()

    # -- logging thread side -------------------------------------------------------------

    def set_account(self, account: str) -> None:
        """Label lines logged from now on with this account (e.g. once the broker login is known)."""
        self._account = str(account) if account else UNKNOWN_ACCOUNT

    def emit(self, record: logging.LogRecord) -> None:
        """Format and enqueue; never waits on the network (a full queue loses its oldest line)."""
        try:
            line = self.format(record)
            ids = current_ids()
            metadata = {}
            for field in self._metadata_fields:
                value = ids.get(field) or getattr(record, field, None)
                if value:
                    metadata[field] = str(value)
            entry = (int(record.created * 1_000_000_000), record.levelname, self._account, line, metadata)
            if self._closed:
                self._count_drop(1)
                return
            with self._queue_lock:
                overflow = len(self._queue) >= self._queue_size
                if overflow:
                    self._queue.popleft()
                self._queue.append(entry)
                depth = len(self._queue)
            if overflow:
                self._count_drop(1)
            if depth >= self._batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Ask the sender to push now, without waiting (logging.shutdown() calls this before close())."""
        self._wake.set()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def close(self, timeout: float = 5.0) -> None:
        """Push what can be pushed within ``timeout`` seconds, then stop; returns by the deadline."""
        if not self._closed:
            self._closed = True
            self._deadline = time.monotonic() + max(timeout, 0.0)
            self._closing.set()
            self._wake.set()
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
            if self._thread.is_alive():
                self._pusher.abort()
                self._thread.join(0.2)
            with self._queue_lock:
                left = len(self._queue)
                self._queue.clear()
            if left:
                self._count_drop(left)
        super().close()

    # -- sender thread side --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._closing.is_set():
                if not self._queue or self._remaining() <= 0:
                    return
            elif len(self._queue) < self._batch_size:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
            batch = self._take_batch()
            if batch:
                try:
                    self._deliver(batch)
                except Exception as exc:  # never let the sender die
                    self._count_drop(len(batch))
                    self._note("bug", f"sender error, {len(batch)} lines dropped: {exc!r}")

    def _take_batch(self) -> list[_Entry]:
        with self._queue_lock:
            count = min(self._batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _deliver(self, batch: list[_Entry]) -> None:
        body = gzip.compress(encode_push_body(batch, self._static_labels), compresslevel=5)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        attempt = 0
        while True:
            timeout = self._timeout
            if self._closing.is_set():
                timeout = min(timeout, self._remaining())
                if timeout <= 0:
                    self._count_drop(len(batch))
                    return
            retry_after = None
            try:
                reply = self._pusher.post(body, headers, timeout)
            except Exception as exc:  # OSError, timeouts, HTTPException: Loki unreachable
                problem = f"push failed ({exc.__class__.__name__}: {exc}), retrying"
            else:
                if reply.ok:
                    self.sent += len(batch)
                    if self._in_trouble:
                        self._in_trouble = False
                        self._note("recovered", "push recovered")
                    return
                if not reply.retryable:
                    self._count_drop(len(batch))
                    detail = reply.body[:300].decode("utf-8", "replace").strip()
                    self._note("rejected", f"Loki rejected a batch with HTTP {reply.status}, "
                                           f"{len(batch)} lines dropped: {detail}")
                    return
                problem = f"Loki answered HTTP {reply.status}, retrying"
                retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
            self._in_trouble = True
            self._note("retry", problem)
            delay = backoff_delay(attempt, self._min_backoff, self._max_backoff, retry_after)
            attempt += 1
            if self._closing.is_set():
                if self._remaining() <= delay:
                    self._count_drop(len(batch))
                    return
                time.sleep(delay)
            else:
                self._closing.wait(delay)  # close() cuts the wait short

    def _count_drop(self, count: int) -> None:
        with self._drop_lock:
            self.dropped += count
        callback = self.on_drop
        if callback is not None:
            try:
                callback(count)
            except Exception as exc:
                self._note("callback", f"on_drop callback failed: {exc!r}")

    def _note(self, kind: str, message: str) -> None:
        """One stderr line per kind of trouble per minute: visible, but no flood."""
        now = time.monotonic()
        last = self._last_note.get(kind)
        if last is None or now - last >= _NOTE_INTERVAL_S:
            self._last_note[kind] = now
            self._write_stderr(message)

    def _write_stderr(self, message: str) -> None:
        try:
            sys.stderr.write(f"tradewatch loki handler ({self._pusher.target}): {message}\n")
            sys.stderr.flush()
        except Exception:
            pass


def encode_push_body(batch: Iterable[_Entry], static_labels: Mapping[str, str]) -> bytes:
    """Loki push JSON: one stream per (account, level), values sorted by time, metadata third."""
    streams: dict[tuple[str, str], list[_Entry]] = {}
    for entry in batch:
        streams.setdefault((entry[2], entry[1]), []).append(entry)
    payload = {"streams": []}
    for (account, level), entries in streams.items():
        entries.sort(key=lambda e: e[0])
        values = [[str(ts), line, meta] if meta else [str(ts), line] for ts, _, _, line, meta in entries]
        payload["streams"].append({"stream": {**static_labels, "account": account, "level": level}, "values": values})
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
