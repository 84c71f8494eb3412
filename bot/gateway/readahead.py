"""The cycle's reads asked of the terminal together, a round trip for many, ahead of their use.

Why (issue 16): over the bridge a cycle makes ~13 reads (terminal, account, positions, and a tick
and the newest bars of every symbol), one round trip each: on a loaded two-core box a round trip
costs more than the call itself, as both processes have to be woken each time. The calls of a
cycle are nearly the same every cycle, so the reads the last cycle made (the same calls with the
same arguments) are sent at the start of the next one as a pipeline
(`mt5bridge.client.BridgeClient.pipeline`), and each read of the cycle that matches one takes its
answer instead of making the call. Replies are read only when a read asks for one, so the
terminal works while the bot does.

A call that cannot be predicted (`history_deals_total`: its window moves with the broker's clock)
splits the plan: the reads before it go at the cycle's start, the ones after it as soon as it
has been made; otherwise it would wait behind every reply of the cycle (a connection answers
in order).

What keeps it correct:
- only the read-only calls in `CALLS`, each answered exactly as the terminal answered it;
- a read that matches nothing, or whose answer was None or an error (the caller must then ask
  `last_error`, which only a call of its own answers right), is made as always;
- answers are served only within the cycle that asked for them, in the order asked, and none
  after an order is sent or a session opened (`forget`): the terminal's state may have moved;
  nothing of a pipeline is left unread on the wire then;
- a pipeline that fails on the transport is dropped without a word: the cycle's own next call
  meets the same dead link and says so, classified as always;
- a served read is timed (for the broker-call metrics) as long as it waited for its reply: what it
  cost the cycle.
A transport without `pipeline` (the real package, the in-process stand-in) is never asked.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

#: Read-only calls whose answers may be read ahead (none has an effect on the terminal).
CALLS = frozenset({
    "terminal_info", "account_info", "positions_get", "orders_get", "symbol_info", "symbol_info_tick",
    "copy_rates_from_pos",
})
#: At most this many calls in one cycle's plan (the bridge client's pipeline bound is higher).
MAX_CALLS = 24


class ReadAhead:
    """Records a cycle's calls; at the next cycle's start asks its reads of the transport in pipelines.

    `stats` counts `pipelines`, `served` (reads answered from one), `missed` (answers that were None
    or an error: the call was made), `unused` (answers no read took) and `failed` (pipelines not sent)."""

    def __init__(self) -> None:
        self._plan: list[tuple[str, tuple, dict, tuple | None]] = []  # this cycle's calls (and keys), in order
        self._last: list[tuple[str, tuple, dict, tuple | None]] = []  # the last cycle's
        self._segments: deque[tuple[str | None, list[tuple[str, tuple, dict, tuple]]]] = deque()  # (barrier, reads after it)
        self._ready: dict[tuple, deque[tuple[Any, int]]] = {}  # key -> (pipeline, index) not yet taken
        self._pipeline: Any = None  # the transport's pipeline method this cycle
        self._sent: list[Any] = []  # this cycle's mt5bridge.client.Pipelined
        self.recording = False
        self.stats: Counter[str] = Counter()

    def start(self, api: Any) -> None:
        """A cycle begins: send the reads the last cycle made first, if `api` can pipeline them."""
        self._pipeline = getattr(api, "pipeline", None)
        self._plan, self.recording = [], self._pipeline is not None
        self._ready, self._sent, self._segments = {}, [], deque()
        if self._pipeline is None or not self._last:
            return
        barrier, reads = None, []
        for entry in self._last:
            if entry[0] in CALLS:
                reads.append(entry)
            else:
                self._segments.append((barrier, reads))
                barrier, reads = entry[0], []
        self._segments.append((barrier, reads))
        self._send_next()

    def made(self, call: str) -> None:
        """`call` was made (not served): when it is the one the next reads waited for, send them."""
        if self._segments and self._segments[0][0] == call:
            self._send_next()

    def see(self, call: str, args: tuple, kwargs: dict) -> Any:
        """A call of this cycle, while `recording`: recorded (a read is read ahead at the next cycle, any
        other call splits the plan), and the answer read ahead for it returned, or None: make the call
        (None and errors are never served). Its key is worked out once, here, for both."""
        if call not in CALLS:
            if len(self._plan) < MAX_CALLS and (not self._plan or self._plan[-1][0] != call):
                self._plan.append((call, (), {}, None))
            return None
        try:
            key = _key(call, args, kwargs)
        except TypeError:  # an argument that cannot be a key: never read ahead
            return None
        if len(self._plan) < MAX_CALLS:
            self._plan.append((call, args, dict(kwargs), key))
        waiting = self._ready.get(key)
        if not waiting:
            return None
        pipelined, index = waiting.popleft()
        result, error = pipelined.result(index)
        if error is not None or result is None:
            self.stats["missed"] += 1
            return None
        self.stats["served"] += 1
        return result

    def forget(self) -> None:
        """An order is about to be sent, or a session opened: nothing read before it is served, and the
        calls after it (a re-read the order caused) are not taken as the next cycle's; those before are."""
        self._drop()
        self.recording = False

    def end(self) -> None:
        """The cycle is over: its calls are the plan of the next one."""
        self._drop()
        self._last, self._plan, self.recording = self._plan, [], False

    def _send_next(self) -> None:
        _barrier, reads = self._segments.popleft()
        if not reads:
            return
        try:
            pipelined = self._pipeline([(call, args, kwargs) for call, args, kwargs, _ in reads])
        except Exception:  # noqa: BLE001 - the cycle's own calls meet (and report) a dead link
            self.stats["failed"] += 1
            self._segments.clear()
            return
        self.stats["pipelines"] += 1
        self._sent.append(pipelined)
        for index, (_call, _args, _kwargs, key) in enumerate(reads):
            self._ready.setdefault(key, deque()).append((pipelined, index))

    def _drop(self) -> None:
        self.stats["unused"] += sum(len(waiting) for waiting in self._ready.values())
        for pipelined in self._sent:
            pipelined.settle()  # nothing of it stays on the wire (an order may be sent next)
        self._ready, self._sent, self._segments = {}, [], deque()


def _key(call: str, args: tuple, kwargs: dict) -> tuple:
    key = (call, args, tuple(sorted(kwargs.items()))) if kwargs else (call, args)
    hash(key)  # TypeError for an argument that cannot be a key
    return key
