"""`make run`: take the terminal's foreground so Ctrl-C stops the bot, not make.

Why: on Ctrl-C the terminal sends SIGINT to its whole foreground process group. GNU make, in that
group, waits for its child and then kills itself with the same signal, so `make run` ends with
status 130 ("Interrupt") however cleanly the bot stopped. With the bot in a process group of its
own that holds the terminal, Ctrl-C reaches the bot alone: it finishes its cycle, prints its run
summary, exits 0, and make returns 0. Only when TRADEWATCH_OWN_TERMINAL=1 (the Makefile's run
target) and stdin is a terminal; the terminal is handed back at exit.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys


def take_terminal(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    if environ.get("TRADEWATCH_OWN_TERMINAL") != "1" or os.name != "posix":
        return False
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return False
        previous = os.tcgetpgrp(fd)
        os.setpgid(0, 0)
        _set_foreground(fd, os.getpgrp())
    except OSError:
        return False  # no job control here (no controlling terminal): Ctrl-C then reaches make too
    atexit.register(_restore, fd, previous)
    return True


def _set_foreground(fd: int, group: int) -> None:
    # A background group calling tcsetpgrp gets SIGTTOU (stopped) unless it ignores it.
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, group)
    finally:
        signal.signal(signal.SIGTTOU, old)


def _restore(fd: int, group: int) -> None:
    try:
        _set_foreground(fd, group)
    except OSError:
        pass  # make (the previous group) is gone already: the shell takes the terminal back itself
