"""How a SimTerminal API method behaves as a call into the MetaTrader5 package.

Calls never raise on bad input: they return None (or False) and set ``last_error()``. The
``api`` decorator adds the latency fault, the terminal lock, the connection checks, lazy market
time and ``last_error``; the argument helpers turn bad arguments into ``ApiError``.
"""

import fnmatch
import functools
import math
import time
from decimal import Decimal

from mt5bridge.constants import (
    RES_E_AUTH_FAILED,
    RES_E_AUTO_TRADING_DISABLED,
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_TIMEOUT,
    RES_E_INVALID_PARAMS,
    RES_E_NOT_FOUND,
    RES_S_OK,
)

from .tradingtime import to_epoch

SUCCESS = (RES_S_OK, "Success")
NO_IPC = (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
IPC_TIMEOUT = (RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
AUTH_FAILED = (RES_E_AUTH_FAILED, "Terminal: Authorization failed")
NOT_FOUND = (RES_E_NOT_FOUND, "Terminal: Not found")
INVALID_PARAMS = (RES_E_INVALID_PARAMS, "Terminal: Invalid params")
TRADEAPI_DISABLED = (RES_E_AUTO_TRADING_DISABLED, "Terminal: Autotrading disabled")


class ApiError(Exception):
    def __init__(self, error: tuple[int, str]):
        super().__init__(error[1])
        self.error = error


class ReplyAfter:
    """An order_send that executed but must look lost: sleep, then fail with an IPC timeout."""

    def __init__(self, delay: float):
        self.delay = delay


def api(failure=None, needs_connection=True):
    """Wrap an MT5 API method: latency fault, lock, connection checks, lazy market time, last_error."""

    def decorate(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            latency = self._faults.latency
            if latency:
                time.sleep(latency)
            with self._lock:
                self._sync()
                if self._faults.is_disconnected(self._now) or (needs_connection and not self._initialized):
                    self._persist()  # the market may have acted on the books meanwhile
                    self._last_error = NO_IPC
                    return failure
                try:
                    result = method(self, *args, **kwargs)
                except ApiError as exc:
                    self._last_error = exc.error
                    result = failure
                else:
                    self._last_error = SUCCESS
                finally:
                    self._persist()
            if isinstance(result, ReplyAfter):
                time.sleep(result.delay)
                with self._lock:
                    self._last_error = IPC_TIMEOUT
                return failure
            return result

        return call

    return decorate


def symbol_filter(group: str | None):
    """MT5 group syntax: comma-separated wildcards, '!' excludes (e.g. ``"*USD*,!XAU*"``)."""
    if group is None:
        return lambda name: True
    if not isinstance(group, str):
        raise ApiError(INVALID_PARAMS)
    patterns = [p.strip() for p in group.split(",") if p.strip()]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]

    def matches(name: str) -> bool:
        if include and not any(fnmatch.fnmatchcase(name, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in exclude)

    return matches


def epoch_arg(value) -> float:
    try:
        epoch = to_epoch(value)
    except TypeError:
        raise ApiError(INVALID_PARAMS) from None
    if not math.isfinite(epoch):
        raise ApiError(INVALID_PARAMS)
    return epoch


def is_plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value, minimum: int) -> int:
    if not is_plain_int(value) or value < minimum:
        raise ApiError(INVALID_PARAMS)
    return value


def amount(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ApiError(INVALID_PARAMS)
    return Decimal(str(value))
