"""`SpooledRepository`: the store the engine keeps writing to while the database is down.

Writes go straight to the database while it answers and nothing is queued.
When a write cannot reach it (a connectivity failure, or the breaker is open)
the call is appended to a durable local spool (bot.store.spool_file) and every
later write queues behind it, so an outcome can never overtake its intent.
The spool drains in order once the database is back (`flush`, called
automatically before reads and writes and by `maybe_flush()` each cycle).
Every Repository write is idempotent, so an interrupted flush that is run
again leaves the same rows.

Refusals (integrity and validation errors) are never spooled: they propagate
unchanged, as they do from `db.Repository`.  Reads are served by the database
when it is reachable and the spool is empty; otherwise by the Mirror (last
known state + spooled writes), or they raise `StoreUnavailable`.

Trading goes on while the database is down: the terminal is the source of
truth for positions, the store catches up.  The bot is assumed to be the
store's only writer.

Group commit (`unit()`, one per engine cycle): the cycle's writes run in one
database transaction (db.database.Database.unit) and `commit()` makes them
durable at once, before an order is sent and at the end of the cycle.  Until
then the calls are also kept here; if the connection fails at any point of the
unit (a statement or the commit, landed or not) the whole batch goes to the
spool in one SQLite transaction and is replayed in order like any spooled
write.  Replays are idempotent, so a batch whose commit did land but whose
answer was lost is simply stored once.  A signal id handed out inside the lost
transaction is replayed as that same id (`record_signal(assign_id=...)`), so
later writes that carry it stay right.  The breaker judges the unit once: one
trial, one success or failure.  The drain, likewise, replays the spool in
chunks of one transaction each and deletes a chunk only after it committed.
While a unit is open the store's lock is held by its thread: other threads wait
for the cycle's commit instead of blocking in the database on its write lock.

Start-up without a database: an optional `SchemaGate` (bot.store.schema) keeps
every write spooled and every read on the mirror until the schema is migrated,
and the drain waits for it.  At a clean `close()` the mirror is checkpointed
into the spool file; the next start loads it (and forgets it, so a later crash
never leaves a stale one), so reads at start are answered as the database
would while it is away.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import fields, is_dataclass, replace
from datetime import date, datetime
from typing import Any

from bot.store import codec
from bot.store.batches import Batches
from bot.store.breaker import CircuitBreaker
from bot.store.errors import StoreUnavailable, is_connectivity_error
from bot.store.mirror import Mirror
from bot.store.schema import SchemaGate
from bot.store.spool_file import SpoolFile
from bot.store.spooled_calls import _MISS, StoreCalls
from db.repository import Repository

log = logging.getLogger(__name__)

DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_RESET_TIMEOUT = 10.0
# Flushing before a read or write is bounded, so one engine cycle is never held up for long.
AUTO_FLUSH_SECONDS = 0.5
SIGNAL_ID_CACHE = 10_000
_WRITE_PREFIXES = ("record_", "mark_", "upsert_", "open_", "close_")
CHECKPOINT_KEY = "mirror_checkpoint"


def is_write_method(name: str) -> bool:
    """Repository methods that change rows (and so go through the spool)."""
    return name.startswith(_WRITE_PREFIXES)


class SpooledRepository(StoreCalls, Batches):
    """Every public method of `db.Repository`, surviving database outages through a durable spool."""

    def __init__(
        self,
        repository: Repository,
        spool_path: str,
        breaker: CircuitBreaker | None = None,
        on_depth: Callable[[int], None] | None = None,
        auto_flush_seconds: float = AUTO_FLUSH_SECONDS,
        spool: SpoolFile | None = None,
        gate: SchemaGate | None = None,
    ) -> None:
        self.repository = repository
        self.spool = spool if spool is not None else SpoolFile(spool_path)
        self.gate = gate
        self.breaker = breaker or CircuitBreaker(
            "store", DEFAULT_FAILURE_THRESHOLD, DEFAULT_RESET_TIMEOUT, is_failure=is_connectivity_error
        )
        self.auto_flush_seconds = auto_flush_seconds
        self._on_depth = on_depth
        self._mirror = Mirror()
        # Orders writes (and reads, so a read result never overwrites a newer write in the mirror).
        self._lock = threading.RLock()
        self._signal_ids: dict[int, int] = {}
        self._reported_depth: int | None = None
        self._signatures: dict[str, inspect.Signature] = {}
        self._unit_owner: int | None = None  # the thread whose unit is open
        self._unit_calls: list[tuple[str, dict[str, Any]]] = []  # run in the open transaction, not committed
        self._unit_trial = False  # the breaker let this transaction through
        self._load_checkpoint()
        if self.spool.depth:
            log.warning("store spool %s holds %d writes from before: flushing when the database answers",
                        self.spool.path, self.spool.depth)
        self._report_depth()

    # -- spool control ---------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Writes waiting in the spool."""
        return self.spool.depth

    def flush(self, max_seconds: float | None = None) -> int:
        """Drain the spool in order into the database; returns how many writes landed.

        Stops early (leaving the rest queued) when the database is unreachable,
        the breaker refuses, or `max_seconds` passed.
        """
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        with self._lock:
            return self._drain(deadline)

    def maybe_flush(self) -> int:
        """What the engine calls once per cycle: a bounded flush if anything is queued and the breaker allows.

        Also where a pending migration is retried (on the gate's backoff schedule), before any drain.
        """
        if not self._schema_ready() or not self.spool.depth:
            return 0
        return self.flush(self.auto_flush_seconds)

    def ping(self) -> bool:
        """True if the database is reachable and writable."""
        return self.repository.ping()

    def spool_ping(self) -> bool:
        """True if the spool file takes writes."""
        return self.spool.ping()

    def rejected(self) -> list[tuple[int, str, str]]:
        """(seq, method, error) of spooled writes the database refused at flush time (kept for an operator)."""
        return self.spool.rejected()

    def close(self) -> None:
        """Checkpoint the mirror for a start without the database, then close the spool file."""
        try:
            self.spool.set_state(CHECKPOINT_KEY, codec.dumps(self._mirror.export_state()))
        except Exception as exc:  # noqa: BLE001 - only the next start's cold reads lose this
            log.warning("store mirror not checkpointed at close: %s", exc)
        self.spool.close()

    def _load_checkpoint(self) -> None:
        """The mirror as the last clean stop left it; forgotten at once, so it is never used twice."""
        text = self.spool.get_state(CHECKPOINT_KEY)
        if text is None:
            return
        self.spool.set_state(CHECKPOINT_KEY, None)
        try:
            self._mirror.load_state(codec.loads(text))
        except Exception as exc:  # noqa: BLE001 - a checkpoint from other code: start without it
            self._mirror.clear()
            log.warning("store mirror checkpoint not usable, ignored: %s", exc)

    def _schema_ready(self) -> bool:
        """The database may be used: no gate, or the gate has migrated (retried here on its schedule)."""
        return self.gate is None or self.gate.poll()

    # -- methods Repository gains later --------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """Repository methods this class does not name yet: writes are spooled, reads need the database."""
        if name.startswith("_") or name in ("repository", "spool", "breaker"):
            raise AttributeError(name)
        target = getattr(self.repository, name)
        if not callable(target):
            return target

        @functools.wraps(target)
        def through_store(*args: Any, **kwargs: Any) -> Any:
            arguments = self._bind(name, args, kwargs)
            if is_write_method(name):
                return self._write(name, arguments)
            return self._read(name, arguments)

        return through_store

    # -- the two paths -------------------------------------------------------------------------

    def _write(
        self,
        method: str,
        arguments: dict[str, Any],
        on_direct: Callable[[Any, dict[str, Any]], None] | None = None,
        on_spooled: Callable[[int, dict[str, Any]], None] | None = None,
        spooled_result: Callable[[int], Any] | None = None,
    ) -> Any:
        with self._lock:
            self._auto_flush()
            if self._in_unit():
                if self._schema_ready() and not self.spool.depth and self._unit_allows():
                    direct = self._translate(arguments, final=True)
                    try:
                        result = getattr(self.repository, method)(**direct)
                    except Exception as exc:
                        if not is_connectivity_error(exc):
                            raise  # a refusal: only this call's savepoint was rolled back
                        self._unit_lost(self._unit_calls, exc, True)
                    else:
                        if method == "record_signal":  # replayed as this id if the unit is lost
                            direct = {**direct, "assign_id": int(result)}
                        self._unit_calls.append((method, direct))
                        if on_direct is not None:
                            on_direct(result, direct)
                        return result
            elif self._schema_ready() and not self.spool.depth and self.breaker.allow():
                direct = self._translate(arguments, final=True)
                try:
                    result = getattr(self.repository, method)(**direct)
                except Exception as exc:
                    if not is_connectivity_error(exc):
                        self.breaker.record_success()  # the database answered: a refusal, not an outage
                        raise
                    self.breaker.record_failure()
                    log.warning("store unreachable (%s): spooling writes from %s on",
                                type(exc).__name__, method, extra={"method": method})
                else:
                    self.breaker.record_success()
                    if on_direct is not None:
                        on_direct(result, direct)
                    return result
            queued = self._translate(arguments, final=False)
            seq = self.spool.append(method, codec.dumps(queued))
            self._report_depth()
            if on_spooled is not None:
                on_spooled(seq, queued)
            return spooled_result(seq) if spooled_result is not None else None

    def _read(
        self,
        method: str,
        arguments: dict[str, Any],
        learn: Callable[[Any], None] | None = None,
        known: Callable[[], Any] | None = None,
    ) -> Any:
        with self._lock:
            self._auto_flush()
            in_unit = self._in_unit()
            if self._schema_ready() and not self.spool.depth and (self._unit_allows() if in_unit
                                                                   else self.breaker.allow()):
                try:
                    result = getattr(self.repository, method)(**arguments)
                except Exception as exc:
                    if not is_connectivity_error(exc):
                        if not in_unit:
                            self.breaker.record_success()
                        raise
                    if in_unit:
                        self._unit_lost(self._unit_calls, exc, True)
                    else:
                        self.breaker.record_failure()
                    log.warning("store unreachable (%s): answering %s from the local mirror",
                                type(exc).__name__, method, extra={"method": method})
                else:
                    if not in_unit:
                        self.breaker.record_success()
                    if learn is not None:
                        learn(result)
                    return result
            answer = known() if known is not None else _MISS
            if answer is _MISS:
                raise StoreUnavailable(
                    f"store unavailable ({self.spool.depth} writes spooled, circuit {self.breaker.state}) and "
                    f"{method}({_describe(arguments)}) is not known locally: retry when the database is back"
                )
            return answer

    def _auto_flush(self) -> None:
        if self.spool.depth and self._schema_ready():
            self._drain(time.monotonic() + self.auto_flush_seconds)

    # -- helpers -----------------------------------------------------------------------------------

    def _refresh_order(self, client_order_id: str) -> None:
        """Re-read a just-written order so the mirror has its database id and exact stored values."""
        try:
            row = self.repository.get_order(client_order_id)
        except Exception:  # noqa: BLE001 - the write landed; only the mirror loses this row
            self._mirror.saw_order(None, client_order_id)
            return
        self._mirror.saw_order(row, client_order_id)

    def _refresh_trade(self, account: str, ticket: int) -> None:
        try:
            row = self.repository.get_trade(account, ticket)
        except Exception:  # noqa: BLE001
            self._mirror.saw_trade(account, ticket, None)
            return
        self._mirror.saw_trade(account, ticket, row)

    def _translate(self, arguments: dict[str, Any], final: bool) -> dict[str, Any]:
        """Provisional (negative) signal ids -> real ones where known.

        `final`: the call goes to the database now, so a provisional id that
        can no longer be resolved (its signal was refused) is dropped from a
        record rather than sent; a bare `signal_id` argument is left for the
        database to refuse as UnknownSignal.
        """
        out = {}
        for name, value in arguments.items():
            if name == "signal_id" and isinstance(value, int) and value < 0:
                value = self._real_signal_id(value) or value
            elif is_dataclass(value) and not isinstance(value, type) and _has_field(value, "signal_id"):
                provisional = value.signal_id
                if isinstance(provisional, int) and provisional < 0:
                    real = self._real_signal_id(provisional)
                    if real is not None:
                        value = replace(value, signal_id=real)
                    elif final:
                        log.warning("signal of %s was never stored: recording it without signal_id",
                                    type(value).__name__)
                        value = replace(value, signal_id=None)
            out[name] = value
        return out

    def _real_signal_id(self, provisional: int) -> int | None:
        if provisional in self._signal_ids:
            return self._signal_ids[provisional]
        real = self.spool.real_signal_id(provisional)
        if real is not None:
            self._remember_signal_id(provisional, real)
        return real

    def _remember_signal_id(self, provisional: int, real: int) -> None:
        if len(self._signal_ids) >= SIGNAL_ID_CACHE:
            self._signal_ids.pop(next(iter(self._signal_ids)))
        self._signal_ids[provisional] = real

    def _bind(self, name: str, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
        if name not in self._signatures:
            self._signatures[name] = inspect.signature(getattr(self.repository, name))
        bound = self._signatures[name].bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _report_depth(self) -> None:
        depth = self.spool.depth
        if depth == self._reported_depth or self._on_depth is None:
            self._reported_depth = depth
            return
        self._reported_depth = depth
        try:
            self._on_depth(depth)
        except Exception:  # a metrics bug must not stop the store
            log.exception("on_depth observer failed")


def _has_field(record: Any, name: str) -> bool:
    return name in _field_names(type(record))


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    """A dataclass's field names (dataclasses.fields on every write was a tenth of `_write`'s own work: issue 16)."""
    return frozenset(field.name for field in fields(cls))


def _describe(arguments: dict[str, Any]) -> str:
    """Short argument text for an error message (identifiers only, never record contents)."""
    parts = []
    for name, value in arguments.items():
        if isinstance(value, str | int | datetime | date) or value is None:
            parts.append(f"{name}={value!r}" if not isinstance(value, datetime | date) else f"{name}={value}")
        else:
            parts.append(f"{name}=<{type(value).__name__}>")
    return ", ".join(parts)
