"""The bot process's resident memory and CPU use, sampled cheaply for the per-minute history.

Why not psutil here (it stays for /status and the /metrics process collector, which run on other
threads): the trading thread samples the process once a minute for the history, and at the default
30 s cycle that is every other cycle. psutil's memory_info() and cpu_percent() cost ~37 us warm and
~220 us right after the cycle's own work (cold caches) - a tenth of a whole trading cycle (issue 16).
The same two figures come from one read of /proc/self/statm (what psutil.memory_info().rss reads)
and time.process_time() (user + system CPU of the process, what psutil.cpu_percent divides by the
wall time): ~2 us warm. Where /proc is missing (Windows, macOS) psutil answers as before.
"""

from __future__ import annotations

import os
import time

import psutil

_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


_open: list = [None, None]  # [pid, fd]: /proc/self/statm kept open (opening it cost ~60 us cold), per process


def _rss_from_statm() -> int | None:
    """Resident bytes from /proc/self/statm (its second field, in pages); None where there is none.

    The file stays open for the process's life (one descriptor, read from its start each time); a
    forked child opens its own, since "self" was resolved when the parent opened it."""
    pid = os.getpid()
    try:
        if _open[0] != pid:
            _open[:] = [pid, os.open(_STATM, os.O_RDONLY)]
        return int(os.pread(_open[1], 256, 0).split()[1]) * _PAGE
    except (OSError, IndexError, ValueError, AttributeError):  # no /proc, no os.pread (Windows)
        _open[0] = None
        return None


class ProcessSampler:
    """`sample()`: (resident bytes, CPU percent since the previous sample) of this process.

    CPU percent as psutil.Process.cpu_percent(None) gives it: the process's CPU seconds over the
    wall seconds between two samples, times 100 (over 100 with several busy threads); 0.0 the first
    time (no interval yet)."""

    def __init__(self) -> None:
        self._proc = _rss_from_statm() is not None
        self._process = None if self._proc else psutil.Process()
        if self._process is not None:
            self._process.cpu_percent(None)
        self._last = (time.monotonic(), time.process_time())

    def sample(self) -> tuple[int, float]:
        if self._process is not None:
            return self._process.memory_info().rss, self._process.cpu_percent(None)
        rss = _rss_from_statm()
        if rss is None:  # /proc went away (a sandbox): psutil from now on
            self._process = psutil.Process()
            return self._process.memory_info().rss, 0.0
        wall, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._last
        self._last = (wall, cpu)
        elapsed = wall - last_wall
        return rss, (round((cpu - last_cpu) / elapsed * 100, 1) if elapsed > 0 else 0.0)
