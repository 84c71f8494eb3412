"""Trading and quote sessions in server time, parsed from a profile's compact notation.

A session list is a list of strings ``"<days> HH:MM-HH:MM"`` where ``<days>`` is one weekday
(``Mon``) or a range (``Mon-Fri``); ``24:00`` ends a day. ``["Mon-Fri 01:00-24:00"]`` is a metal
with a daily break from server midnight to 01:00. The result is a tuple (hashable, so symbol
specs stay usable as cache keys) of ``(weekday, start_second, end_second)`` with Monday = 0.
"""

import re

import numpy as np

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_SECONDS = 86_400
FULL_WEEK = "Mon-Fri 00:00-24:00"
_SPEC = re.compile(r"^(\w{3})(?:-(\w{3}))? (\d\d):(\d\d)-(\d\d):(\d\d)$")

Sessions = tuple[tuple[int, int, int], ...]


def parse_sessions(entries: list[str]) -> Sessions:
    """Parse session strings; raises ValueError naming the bad entry."""
    if not isinstance(entries, list) or not entries:
        raise ValueError('expected a non-empty list such as ["Mon-Fri 00:00-24:00"]')
    windows = []
    for entry in entries:
        match = _SPEC.match(entry) if isinstance(entry, str) else None
        if not match:
            raise ValueError(f'bad session {entry!r}: expected "Mon-Fri HH:MM-HH:MM"')
        first, last, h1, m1, h2, m2 = match.groups()
        if first not in DAYS or (last or first) not in DAYS:
            raise ValueError(f"bad session {entry!r}: days are {', '.join(DAYS)}")
        start, end = int(h1) * 3600 + int(m1) * 60, int(h2) * 3600 + int(m2) * 60
        if int(m1) > 59 or int(m2) > 59 or not 0 <= start < end <= DAY_SECONDS:
            raise ValueError(f"bad session {entry!r}: need 00:00 <= start < end <= 24:00")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise ValueError(f"bad session {entry!r}: day range runs backwards")
        windows.extend((day, start, end) for day in range(a, b + 1))
    return tuple(sorted(windows))


def weekday(server_epoch: float) -> int:
    """Monday = 0 (1970-01-01 was a Thursday)."""
    return (int(server_epoch // DAY_SECONDS) + 3) % 7


def is_open(sessions: Sessions, server_epoch: float) -> bool:
    """True when ``server_epoch`` (server wall clock) falls inside one of the windows."""
    day = weekday(server_epoch)
    into_day = int(server_epoch // 1) % DAY_SECONDS
    return any(d == day and start <= into_day < end for d, start, end in sessions)


FULL_SESSIONS: Sessions = parse_sessions([FULL_WEEK])


def last_open(sessions: Sessions, server_epoch: int) -> int | None:
    """The latest second at or before ``server_epoch`` inside a session (None: none in a week)."""
    if is_open(sessions, server_epoch):
        return server_epoch
    day_start = server_epoch - server_epoch % DAY_SECONDS
    today = weekday(server_epoch)
    best = None
    for back in range(8):
        start_of_day = day_start - back * DAY_SECONDS
        for day, _, end in sessions:
            if day == (today - back) % 7:
                candidate = start_of_day + end - 1
                if candidate <= server_epoch and (best is None or candidate > best):
                    best = candidate
        if best is not None:
            return best
    return None


def open_mask(sessions: Sessions, first_epoch: int, count: int):
    """numpy bool array: is each second ``first_epoch ...`` (count of them) inside a session."""
    epochs = first_epoch + np.arange(count)
    days = (epochs // DAY_SECONDS + 3) % 7
    seconds = epochs % DAY_SECONDS
    mask = np.zeros(count, bool)
    for day, start, end in sessions:
        mask |= (days == day) & (seconds >= start) & (seconds < end)
    return mask
