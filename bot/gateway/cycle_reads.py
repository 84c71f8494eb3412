"""terminal_info and account_info read once per cycle, until an order is sent.

Why: the supervisor's heartbeat and the preflight checks both read terminal_info, and preflight
and the sizing both read account_info, a few hundred microseconds apart at the start of every
cycle; over the bridge each read is a round trip to the terminal (issue 16). Inside
`cycle()` (the engine's cycle) the second read of either gets the first's answer: the same
snapshot the terminal would give a moment later. Anything that can change them makes the next
read go to the terminal again: an order sent, a new session. Outside a cycle nothing is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

KEPT = frozenset({"terminal_info", "account_info"})


class CycleReads:
    """The cycle's first answer to each read in KEPT (None outside a cycle: every read is made)."""

    def __init__(self) -> None:
        self._kept: dict[str, Any] | None = None

    @contextmanager
    def cycle(self) -> Iterator[None]:
        self._kept = {}
        try:
            yield
        finally:
            self._kept = None

    def read(self, call: str, make: Callable[[], Any]) -> Any:
        kept = self._kept
        if kept is None or call not in KEPT:
            return make()
        if call not in kept:
            kept[call] = make()  # a read that raises keeps nothing
        return kept[call]

    def forget(self) -> None:
        """An order is about to be sent, or a session opened: the next reads go to the terminal."""
        if self._kept is not None:
            self._kept.clear()
