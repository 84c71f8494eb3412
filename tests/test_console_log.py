"""The console line (`make run` on a terminal) formats any extra a log call carries.

Found by the `make run` Ctrl-C test now and then: a strategy's confidence was a numpy float64, and
`value not in (None, "", {}, [])` compared it with [] (an empty array, whose truth value raises),
so the "signal SELL ..." line became a "--- Logging error ---" traceback. It happened only when a
run's first cycles gave a BUY/SELL from that strategy (HOLD lines are DEBUG)."""

from __future__ import annotations

import logging
from decimal import Decimal

import numpy as np

from bot.telemetry.logging import ConsoleFormatter


def _line(**extra) -> str:
    record = logging.LogRecord("bot.engine", logging.INFO, __file__, 1, "signal %s", ("SELL",), None)
    record.__dict__.update(extra)
    return ConsoleFormatter(colour=False).format(record)


def test_numpy_values_and_empty_containers_format_without_raising():
    line = _line(confidence=np.float64(0.75), levels=np.array([]), closes=np.array([1.5, 2.0]),
                 price=Decimal("1.30661"), empty_text="", empty_map={}, empty_list=[], nothing=None, zero=0)
    assert line.endswith("signal SELL  confidence=0.75 levels=[] closes=[1.5 2. ] price=1.30661 zero=0")


def test_a_numpy_confidence_reaches_the_console_line_as_a_number():
    assert "confidence=0.5" in _line(confidence=np.float32(0.5))
    assert _line().endswith("signal SELL")  # no extras: no trailing separator
