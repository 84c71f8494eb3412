"""What each operator command does, its row in `operator_actions`, its log line and its count.

Table-driven (`COMMANDS`): a command's name, whether it needs the engine's cycle lock (it sends
orders or swaps strategies, so it must not run in the middle of a cycle) and its function. Pause
and resume only flip the risk guard's state, which the next entry decision reads, so they answer
at once; pause takes effect within the cycle that follows (or the one running).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db import OperatorAction

from ..telemetry.context import correlation_context, new_correlation_id
from .closeall import close_all
from .strategies import reload_strategies

log = logging.getLogger("bot.control")

LOCK_WAIT_SECONDS = 30.0  # a close-all waits this long for the running cycle to finish
DETAIL_LIMIT = 2000


class Refused(Exception):
    """The command cannot be done as asked (bad option, engine not started): result "refused"."""


def _status(desk: ControlDesk, args: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    return desk.status()


def _pause(desk: ControlDesk, args: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    return {"paused": True, "was_paused": not desk.engine.risk_guard.pause()}


def _resume(desk: ControlDesk, args: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    return {"lifted": desk.engine.risk_guard.resume()}


def _close_all(desk: ControlDesk, args: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    symbol, strategy = args.get("symbol"), args.get("strategy")
    if symbol is not None and symbol not in desk.engine.settings.symbols:
        raise Refused(f"symbol {symbol!r} is not traded by this bot ({', '.join(desk.engine.settings.symbols)})")
    try:
        return close_all(desk.engine, correlation_id, symbol=symbol, strategy=strategy)
    except RuntimeError as exc:
        raise Refused(str(exc)) from None


def _reload(desk: ControlDesk, args: dict[str, Any], correlation_id: str) -> dict[str, Any]:
    try:
        return reload_strategies(desk.engine, desk.read_settings)
    except ValueError as exc:  # a bad name (or setting): the running list is kept
        raise Refused(" ".join(str(exc).split())) from None


COMMANDS: dict[str, tuple[bool, Callable[..., dict[str, Any]]]] = {
    "status": (False, _status),
    "pause": (False, _pause),
    "resume": (False, _resume),
    "close-all": (True, _close_all),
    "reload-strategies": (True, _reload),
}
OPTIONS = {"close-all": ("symbol", "strategy")}


class ControlDesk:
    def __init__(self, engine: Any, repo: Any, account: Callable[[], str], cycle_lock: threading.Lock,
                 status: Callable[[], dict[str, Any]], read_settings: Callable[[], Any] | None = None):
        self.engine = engine
        self.repo = repo
        self.account = account
        self.cycle_lock = cycle_lock
        self.status = status
        self.read_settings = read_settings
        self.counts: Counter[tuple[str, str]] = Counter()  # (action, result) -> commands, on /metrics
        self._count_lock = threading.Lock()  # the listener runs requests on several threads

    def count(self, action: str, result: str) -> int:
        with self._count_lock:
            self.counts[(action, result)] += 1
            return self.counts[(action, result)]

    def counted(self) -> dict[tuple[str, str], int]:
        with self._count_lock:
            return dict(self.counts)

    def execute(self, action: str, args: dict[str, Any], actor: str) -> tuple[str, dict[str, Any]]:
        """Run one command; (result, body). Every command, whatever its result, gets its row and log line."""
        needs_lock, run = COMMANDS[action]
        correlation_id = new_correlation_id()
        requested = datetime.now(UTC)
        with correlation_context(correlation_id):
            try:
                if needs_lock:
                    if not self.cycle_lock.acquire(timeout=LOCK_WAIT_SECONDS):
                        raise Refused(f"the engine is busy: no cycle ended within {LOCK_WAIT_SECONDS:.0f} s")
                    try:
                        body = run(self, args, correlation_id)
                    finally:
                        self.cycle_lock.release()
                else:
                    body = run(self, args, correlation_id)
                result = "ok"
            except Refused as exc:
                result, body = "refused", {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a failed command is answered and recorded, never a 500
                log.exception("operator action %s failed", action)
                result, body = "failed", {"error": f"{type(exc).__name__}: {exc}"}
            body = {"action": action, "result": result, "correlation_id": correlation_id, **body}
            self._record(action, args, actor, correlation_id, requested, result, body)
        return result, body

    def _record(self, action, args, actor, correlation_id, requested, result, body) -> None:
        self.count(action, result)
        detail = json.dumps({k: v for k, v in body.items() if k not in ("action", "result", "correlation_id")},
                            default=str)[:DETAIL_LIMIT]
        level = logging.INFO if result == "ok" else logging.WARNING
        log.log(level, "operator action %s by %s: %s", action, actor, result,
                extra={"action": action, "actor": actor, "result": result, "arguments": args,
                       "correlation_id": correlation_id, "detail": detail})
        try:
            self.repo.record_operator_action(OperatorAction(
                account=self.account(), actor=actor[:64], action=action, arguments=json.dumps(args, sort_keys=True),
                correlation_id=correlation_id, requested_at=requested, finished_at=datetime.now(UTC), result=result,
                detail=detail))
        except Exception as exc:  # noqa: BLE001 - the store away: the action stands, the log line keeps it
            self.count(action, "not_recorded")
            log.error("operator action %s not written to operator_actions: %s", action, exc,
                      extra={"correlation_id": correlation_id})
