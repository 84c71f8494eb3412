"""Simulation time: real time scaled by ``speed`` from a start instant, or stepped by hand."""

import math
import time


def check_seconds(seconds: float, what: str) -> float:
    """A finite, non-negative number of seconds, or a one-line ValueError."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError(f"{what} must be a finite number of seconds, got {seconds!r}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {seconds!r}")
    return float(seconds)


class SimClock:
    """Epoch-seconds clock. In stepped mode only ``advance`` moves it; otherwise ``advance`` adds an offset."""

    def __init__(self, start_epoch: float, speed: float = 1.0, stepped: bool = False):
        if (
            isinstance(speed, bool)
            or not isinstance(speed, int | float)
            or not (math.isfinite(speed) and speed > 0)
        ):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.stepped = stepped
        self.speed = float(speed)
        self._start = float(start_epoch)
        self._started = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        if self.stepped:
            return self._start + self._offset
        return self._start + (time.monotonic() - self._started) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += check_seconds(seconds, "advance")
