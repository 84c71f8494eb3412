"""Push log lines to Loki from a background thread, never blocking the trading loop.

Why this shape: Loki being slow, rate-limiting or down must cost the trading thread
nothing but an append. ``emit`` puts the line (the JSON line the stdout handler already made,
see bot.telemetry.logging; formatted here only if it was not), the record's time and level and
the ids of the logging thread's context into a bounded in-memory queue, without the handler
lock: the Loki entry (nanoseconds, structured metadata) is built on the sender thread. A daemon thread batches by size and time and POSTs gzip JSON to
``/loki/api/v1/push``, retrying 429/5xx/transport errors with capped exponential
backoff (honouring Retry-After) while the batch stays in hand and new lines keep
queueing, so a Loki restart loses nothing.

Nothing the bot could keep is lost:

- ``hold=True`` (the bot at start): lines are queued but not pushed until
  :meth:`LokiHandler.start_pushing` names the account (a Loki label), so the lines of
  the start-up (migrations, "bot starting", "terminal connected") arrive too;
- with a ``backlog`` (bot.telemetry.log_backlog), a full queue moves its oldest
  lines to that bounded local file instead of dropping them, and ``close()`` puts
  there what it could not push by its deadline; the next start pushes the file
  first;
- whatever is lost all the same (no backlog, backlog full, a batch Loki refuses
  with a 4xx) is counted through ``on_drop(n)`` (wire it to
  :meth:`bot.telemetry.metrics.BotMetrics.count_log_drops`) and said once per
  reason on stderr.

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

from bot.telemetry.context import correlation_id, cycle_id
from bot.telemetry.http_push import Pusher, backoff_delay, retry_after_seconds
from bot.telemetry.log_backlog import LogBacklog
from bot.telemetry.logging import IDS_CACHE, LINE_CACHE

PUSH_PATH = "/loki/api/v1/push"
ALLOWED_LABELS = frozenset({"service", "account", "env"})  # plus "level", set per record
UNKNOWN_ACCOUNT = "unknown"  # Loki drops empty label values; this keeps the stream findable
_NOTE_INTERVAL_S = 60.0

# (unix ns, level, account (None: not known yet), line, structured metadata)
_Entry = tuple[int, str, str | None, str, dict[str, str]]
# What emit queues: (record.created, level, account, line, the metadata fields' values in order)
_Queued = tuple[float, str, str | None, str, tuple]
_CONTEXT = {"correlation_id": correlation_id, "cycle_id": cycle_id}
SENT, REJECTED, GAVE_UP = "sent", "rejected", "gave_up"


class LokiHandler(logging.Handler):
    """A ``logging.Handler`` that ships formatted lines to Loki asynchronously.

    ``labels`` may hold only ``service``, ``account`` and ``env``; ``level`` is added per
    line. ``metadata_fields`` are read from the correlation contextvars (or a record
    attribute of the same name) and sent as Loki structured metadata, not labels, so
    that per-order ids don't explode the stream count. ``on_drop(n)`` is called (from
    the logging thread or the sender thread) whenever ``n`` lines are lost;
    ``on_push_failure()`` on every failed push attempt (the lines stay queued).
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
        on_push_failure: Callable[[], None] | None = None,
        backlog: LogBacklog | None = None,
        hold: bool = False,
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
        given = labels.get("account")
        self._account: str | None = str(given) if given else (None if hold else UNKNOWN_ACCOUNT)
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._queue_size = queue_size
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._metadata_fields = tuple(metadata_fields)
        self._default_metadata = self._metadata_fields == ("correlation_id", "cycle_id")
        self._on_drop = on_drop
        self.on_push_failure = on_push_failure
        self.backlog = backlog
        self.dropped = 0  # lines lost so far, whatever the reason
        self.sent = 0  # lines Loki accepted
        self.kept = 0  # lines put into the backlog file for a later push

        self._queue: collections.deque[_Queued] = collections.deque()  # appended without the lock
        self._queue_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._wake = threading.Event()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._closed = False
        self._last_note: dict[str, float] = {}
        self._said: set[str] = set()
        self._in_trouble = False
        self._thread = threading.Thread(target=self._run, name="loki-push", daemon=True)
        self._thread.start()

    # -- logging thread side -------------------------------------------------------------

    @property
    def on_drop(self) -> Callable[[int], None] | None:
        return self._on_drop

    @on_drop.setter
    def on_drop(self, callback: Callable[[int], None] | None) -> None:
        """Wire the drop counter; lines already lost before it existed are reported to it at once."""
        with self._drop_lock:
            self._on_drop = callback
            earlier = self.dropped
        if callback is not None and earlier:
            self._call_on_drop(callback, earlier)

    def set_account(self, account: str) -> None:
        """Label lines logged from now on (and held ones) with this account, e.g. once the login is known."""
        self._account = str(account) if account else UNKNOWN_ACCOUNT

    def start_pushing(self, account: str | None = None) -> None:
        """Start pushing (held lines first), labelled with ``account`` when given.

        (Not ``release``: logging.Handler.release() is the handler's own lock.)
        """
        if account is not None or self._account is None:
            self.set_account(account or UNKNOWN_ACCOUNT)
        self._released.set()
        self._wake.set()

    def handle(self, record: logging.LogRecord) -> bool:
        """Enqueue the line with what only this thread knows now (its context's ids); never waits on
        the network (a full queue spills its oldest lines).

        logging.Handler.handle without the handler lock (the queue is a deque, appended atomically),
        with emit's work inline: logging calls handle() for every line on the trading thread, and the
        lock and the extra frame were most of its cost there (issue 16)."""
        if self.filters:
            verdict = self.filter(record)
            if not verdict:
                return False
            if isinstance(verdict, logging.LogRecord):  # Python 3.12+: a filter may return a replacement
                record = verdict
        try:
            fields = record.__dict__
            cached = fields.get(LINE_CACHE)
            line = cached[1] if cached is not None and cached[0] is self.formatter else self.format(record)
            if not self._default_metadata:
                metadata = self._metadata_of(record)
            elif (ids := fields.get(IDS_CACHE)) is not None:  # as the JSON formatter wrote them in the line
                metadata = ids
            else:  # the contextvars win; a record attribute fills in outside a context
                metadata = (correlation_id.get() or fields.get("correlation_id"),
                            cycle_id.get() or fields.get("cycle_id"))
            queued = (record.created, record.levelname, self._account, line, metadata)
            if self._closed:
                self._count_drop(1, "logged after the Loki handler closed")
                return True
            queue = self._queue
            if len(queue) >= self._queue_size:
                self._overflow(queued)
            else:
                queue.append(queued)
            if len(queue) >= self._batch_size and not self._wake.is_set():
                self._wake.set()
        except Exception:
            self.handleError(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """What handle() does (the bot sets no filters on this handler)."""
        self.handle(record)

    def _metadata_of(self, record: logging.LogRecord) -> tuple:
        values = []
        for field in self._metadata_fields:
            var = _CONTEXT.get(field)
            values.append((var.get() if var is not None else None) or getattr(record, field, None))
        return tuple(values)

    def _entry(self, queued: _Queued) -> _Entry:
        """The Loki entry of a queued line (on the sender thread, or wherever lines are kept)."""
        created, level, account, line, values = queued
        metadata = {field: str(value) for field, value in zip(self._metadata_fields, values, strict=True) if value}
        return int(created * 1_000_000_000), level, account, line, metadata

    def _overflow(self, queued: _Queued) -> None:
        with self._queue_lock:
            count = min(self._batch_size, len(self._queue)) if self.backlog is not None else 1
            spill = [self._queue.popleft() for _ in range(count) if self._queue]
            self._queue.append(queued)
        if spill:
            self._keep([self._entry(q) for q in spill], "queue full")

    def flush(self) -> None:
        """Ask the sender to push now, without waiting (logging.shutdown() calls this before close())."""
        self._wake.set()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def backlog_depth(self) -> int:
        return len(self.backlog) if self.backlog is not None else 0

    def close(self, timeout: float = 5.0) -> None:
        """Push what can be pushed within ``timeout`` seconds, keep the rest in the backlog, then stop.

        Returns by the deadline (plus a short grace to break a request in flight).
        """
        if not self._closed:
            self._closed = True
            self._deadline = time.monotonic() + max(timeout, 0.0)
            if not self._released.is_set():
                self.start_pushing()
            self._closing.set()
            self._wake.set()
            self._thread.join(max(0.0, self._deadline - time.monotonic()))
            if self._thread.is_alive():
                self._pusher.abort()
                self._thread.join(0.2)
            with self._queue_lock:  # one by one: an emit racing with close appends without the lock
                left = [self._entry(self._queue.popleft()) for _ in range(len(self._queue))]
            if left:
                self._keep(left, "Loki not reachable before the shutdown deadline")
            if self.backlog is not None:
                if len(self.backlog):
                    self._write_stderr(f"{len(self.backlog)} log lines kept in {self.backlog.path} "
                                       "for the next start")
                self.backlog.close()
            if self.dropped:
                self._write_stderr(f"{self.dropped} log lines were lost this run "
                                   "(counted in tradewatch_log_records_dropped_total)")
        super().close()

    # -- sender thread side --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._released.is_set():
                self._released.wait(self._flush_interval)
                continue
            backlog = self.backlog_depth
            if self._closing.is_set():
                if (not self._queue and not backlog) or self._remaining() <= 0:
                    return
            elif not backlog and len(self._queue) < self._batch_size:
                self._wake.wait(self._flush_interval)
                self._wake.clear()
            try:
                if backlog:
                    self._push_backlog()
                else:
                    self._push_queue()
            except Exception as exc:  # never let the sender die
                self._note("bug", f"sender error: {exc!r}")
                self._closing.wait(self._min_backoff)

    def _push_queue(self) -> None:
        with self._queue_lock:
            count = min(self._batch_size, len(self._queue))
            queued = [self._queue.popleft() for _ in range(count)]
        if not queued:
            return
        batch = [self._entry(q) for q in queued]
        result = self._deliver(batch)
        if result == REJECTED:
            self._count_drop(len(batch), "refused by Loki")
        elif result == GAVE_UP:
            self._keep(batch, "Loki not reachable before the shutdown deadline")

    def _push_backlog(self) -> None:
        """Lines kept by an earlier run (or this one's overflow): older than the queue, so pushed first."""
        assert self.backlog is not None
        batch = self.backlog.head(self._batch_size)
        if not batch:
            return
        result = self._deliver(batch)
        if result == GAVE_UP:
            return  # still in the file for the next start
        self.backlog.delete(batch)
        if result == REJECTED:
            self._count_drop(len(batch), "refused by Loki")

    def _remaining(self) -> float:
        return self._deadline - time.monotonic()

    def _deliver(self, batch: list[_Entry]) -> str:
        """POST one batch, retrying until it lands, Loki refuses it for good, or the close deadline."""
        account = self._account or UNKNOWN_ACCOUNT
        labelled = [(ts, lvl, acct or account, line, meta) for ts, lvl, acct, line, meta in batch]
        body = gzip.compress(encode_push_body(labelled, self._static_labels), compresslevel=5)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        attempt = 0
        while True:
            timeout = self._timeout
            if self._closing.is_set():
                timeout = min(timeout, self._remaining())
                if timeout <= 0:
                    return GAVE_UP
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
                    return SENT
                if not reply.retryable:
                    detail = reply.body[:300].decode("utf-8", "replace").strip()
                    self._note("rejected", f"Loki rejected a batch with HTTP {reply.status}, "
                                           f"{len(batch)} lines dropped: {detail}")
                    return REJECTED
                problem = f"Loki answered HTTP {reply.status}, retrying"
                retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
            self._in_trouble = True
            self._count_push_failure()
            self._note("retry", problem)
            delay = backoff_delay(attempt, self._min_backoff, self._max_backoff, retry_after)
            attempt += 1
            if self._closing.is_set():
                if self._remaining() <= delay:
                    return GAVE_UP
                time.sleep(delay)
            else:
                self._closing.wait(delay)  # close() cuts the wait short

    # -- accounting ----------------------------------------------------------------------

    def _keep(self, entries: list[_Entry], why: str) -> None:
        """Lines that cannot be pushed now: into the backlog file, or counted as lost."""
        if self.backlog is None:
            self._count_drop(len(entries), why)
            return
        try:
            lost = self.backlog.put(entries, self._account or UNKNOWN_ACCOUNT)
        except Exception as exc:  # noqa: BLE001 - a broken file must not break logging
            self._note("backlog", f"log backlog {self.backlog.path} failed: {exc!r}")
            lost = len(entries)
        self.kept += len(entries) - lost
        if lost:
            self._count_drop(lost, f"log backlog full ({self.backlog.max_lines} lines)")

    def _count_drop(self, count: int, reason: str) -> None:
        with self._drop_lock:
            self.dropped += count
            callback = self._on_drop
        if reason not in self._said:  # said once per reason; the counter tells the rest
            self._said.add(reason)
            self._write_stderr(f"{count} log lines lost ({reason}); further losses are only counted "
                               "in tradewatch_log_records_dropped_total")
        if callback is not None:
            self._call_on_drop(callback, count)

    def _call_on_drop(self, callback: Callable[[int], None], count: int) -> None:
        try:
            callback(count)
        except Exception as exc:
            self._note("callback", f"on_drop callback failed: {exc!r}")

    def _count_push_failure(self) -> None:
        callback = self.on_push_failure
        if callback is not None:
            try:
                callback()
            except Exception as exc:
                self._note("callback", f"on_push_failure callback failed: {exc!r}")

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
