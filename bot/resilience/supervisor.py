"""Connection supervision: notice a lost terminal early and reconnect with backoff, without blocking.

A lost terminal shows up as a typed gateway error on any call, or, more cheaply and earlier, as a
heartbeat (`terminal_info`) saying the terminal has no broker connection or trading is not
allowed. The supervisor is asked once per cycle (`check`): when the terminal is up it sends the
heartbeat; when it is down it makes one reconnect attempt if the backoff says one is due.

Backoff is tenacity's exponential-with-jitter wait, capped. It is used as a schedule rather than
as a blocking retry loop on purpose: while the terminal is away the loop must keep cycling
(recording, serving /readyz, flushing the spool), so an attempt is due at a time, not awaited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tenacity import RetryCallState, wait_exponential_jitter

from ..gateway import Gateway, GatewayError

log = logging.getLogger("bot.supervisor")


class ConnectionSupervisor:
    """Owns the "is the terminal usable" answer and the reconnect schedule."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        initial_backoff: float = 0.5,
        max_backoff: float = 30.0,
        jitter: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        on_reconnect: Callable[[float], None] | None = None,
        on_state: Callable[[bool, str | None], None] | None = None,
    ):
        self.gateway = gateway
        self.clock = clock
        self.on_reconnect = on_reconnect  # told the outage length (clock seconds) after each reconnection
        self.on_state = on_state  # told (usable, reason) on every change
        self._wait = wait_exponential_jitter(max=max_backoff, jitter=jitter, multiplier=initial_backoff)
        self._state = RetryCallState(None, None, (), {})  # only its attempt number is used
        self.usable = False
        self.reason: str | None = "not connected yet"
        self.attempts = 0  # failed attempts in the current outage
        self.next_attempt_at = -float("inf")
        self.lost_at: float | None = None
        self.ever_connected = False
        self.outages: list[float] = []  # outage lengths, for the chaos bench

    def check(self) -> bool:
        """Heartbeat or reconnect. True when the terminal can be traded on right now."""
        if self.gateway.connected:
            try:
                terminal = self.gateway.terminal()
            except GatewayError as exc:
                self._down(f"heartbeat failed: {exc}")
            else:
                # AutoTrading off is not an outage: the preflight check algo_trading halts orders
                # with its own sentence (bot.engine.preflight); only a lost broker link is one here.
                if terminal.connected:
                    return self._up()
                self._down("terminal has no broker connection")
                return False  # the transport answers: the next due attempt re-opens the session
        return self._maybe_reconnect()

    def mark_lost(self, reason: str) -> None:
        """A call in the cycle failed with a connection error: the terminal is down from now."""
        self._down(reason)

    # -- internals ------------------------------------------------------------------------

    def _maybe_reconnect(self) -> bool:
        now = self.clock()
        if now < self.next_attempt_at:
            return False
        try:
            layer = self.gateway.reconnect()
        except GatewayError as exc:
            self.attempts += 1
            self._state.attempt_number = self.attempts
            delay = self._wait(self._state)
            self.next_attempt_at = now + delay
            self._down(str(exc))
            log.warning("reconnect attempt %d failed: %s; next in %.2f s", self.attempts, exc, delay,
                        extra={"attempt": self.attempts, "backoff_s": round(delay, 3), "error_kind": exc.kind})
            return False
        log.info("reconnected (%s layer) after %d failed attempts", layer, self.attempts,
                 extra={"attempt": self.attempts + 1, "layer": layer})
        return self._up()

    def _up(self) -> bool:
        if not self.usable:
            if self.lost_at is not None and self.ever_connected:
                outage = self.clock() - self.lost_at
                self.outages.append(outage)
                log.info("terminal back after %.3f s", outage, extra={"outage_s": round(outage, 3)})
                if self.on_reconnect is not None:
                    self.on_reconnect(outage)
            self.usable, self.reason, self.lost_at = True, None, None
            self.ever_connected = True
            self.attempts, self.next_attempt_at = 0, -float("inf")
            self._notify()
        return True

    def _down(self, reason: str) -> None:
        changed = self.usable or self.reason != reason
        if self.usable or self.lost_at is None:
            self.lost_at = self.clock()
            if self.usable:
                log.warning("terminal lost: %s", reason, extra={"reason": reason})
        self.usable, self.reason = False, reason
        if changed:
            self._notify()

    def _notify(self) -> None:
        if self.on_state is not None:
            self.on_state(self.usable, self.reason)
