"""Injected terminal faults, so tests can reproduce the failures a real MT5 bridge shows."""

import math
from dataclasses import dataclass

from .clock import check_seconds


def _count(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    return count


@dataclass
class Faults:
    disconnected_until: float = -math.inf  # sim epoch
    latency: float = 0.0  # wall seconds added to every API call
    reject_count: int = 0
    reject_retcode: int = 0
    timeout_count: int = 0
    timeout_delay: float = 0.0

    def disconnect(self, now: float, seconds: float) -> None:
        self.disconnected_until = now + check_seconds(seconds, "fault_disconnect")

    def is_disconnected(self, now: float) -> bool:
        return now < self.disconnected_until

    def set_latency(self, seconds: float) -> None:
        self.latency = check_seconds(seconds, "fault_latency")

    def reject_next(self, count: int, retcode: int) -> None:
        if isinstance(retcode, bool) or not isinstance(retcode, int):
            raise ValueError(f"retcode must be an integer, got {retcode!r}")
        self.reject_count, self.reject_retcode = _count(count), retcode

    def timeout_after_execute(self, count: int, delay: float) -> None:
        self.timeout_count = _count(count)
        self.timeout_delay = check_seconds(delay, "fault_timeout_after_execute delay")

    def take_reject(self) -> int | None:
        """The retcode to reject this order_send with, if a rejection is pending."""
        if self.reject_count <= 0:
            return None
        self.reject_count -= 1
        return self.reject_retcode

    def take_timeout(self) -> float | None:
        """The wall delay before reporting an IPC timeout for this order_send, if one is pending."""
        if self.timeout_count <= 0:
            return None
        self.timeout_count -= 1
        return self.timeout_delay
