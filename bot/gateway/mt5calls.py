"""How the gateway makes one MetaTrader5 call: time it, read it ahead, classify its failure, log it.

The package answers a failed call with None and `last_error()`, the bridge with transport
exceptions; `_call` turns both into the typed errors of `bot.gateway.errors` (a lost connection,
an IPC timeout, algorithmic trading disabled; for order_send, "outcome unknown" wherever the order
may have left) and tells the observer each call's latency. A mixin of
`bot.gateway.mt5api.Mt5ApiGateway`, whose transport, observer and read-ahead it uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mt5bridge import constants as mt5
from mt5bridge.errors import (
    BridgeAuthError,
    BridgeCallError,
    BridgeConnectionLost,
    BridgeTimeout,
    BridgeUnavailable,
)
from mt5bridge.plain import to_plain

from .errors import (
    BrokerFault,
    BrokerUnavailable,
    ConnectionLost,
    GatewayError,
    OutcomeUnknown,
    TradingDisabled,
)
from .mt5orders import outcome_word

log = logging.getLogger("bot.gateway")

_CONNECTION_ERRORS = {
    mt5.RES_E_INTERNAL_FAIL_SEND,
    mt5.RES_E_INTERNAL_FAIL_RECEIVE,
    mt5.RES_E_INTERNAL_FAIL_INIT,
    mt5.RES_E_INTERNAL_FAIL_CONNECT,
}


class CallingConvention:
    """Gateway methods of one call (mixed into Mt5ApiGateway)."""

    def _observe(self, call: str, seconds: float, error: GatewayError | None) -> None:
        if self._observer is not None:
            self._observer(call, seconds, error)

    def _last_error(self) -> tuple[int, str]:
        try:
            code, message = self._api.last_error()
            return int(code), str(message)
        except Exception:  # noqa: BLE001 - last_error over a dead bridge
            return mt5.RES_E_INTERNAL_FAIL_CONNECT, "no IPC connection"

    def _invoke(self, call: str, fn: Callable[..., Any], args: tuple = (), kwargs: dict | None = None) -> Any:
        """Run one API call, `fn(*args, **kwargs)`, turning transport exceptions into typed gateway errors.

        Never splats an empty mapping: the real package then refuses positional arguments
        ('Unnamed arguments not allowed' from order_send(request, **{}))."""
        try:
            return fn(*args, **kwargs) if kwargs else fn(*args)
        except BridgeTimeout as exc:
            self._connected = False
            if call == "order_send":
                raise OutcomeUnknown(f"{call}: no reply within the timeout ({exc})") from None
            raise ConnectionLost(f"{call}: no reply within the timeout ({exc})") from None
        except (BridgeConnectionLost, EOFError, ConnectionError, TimeoutError) as exc:
            self._connected = False
            if call == "order_send":
                raise OutcomeUnknown(f"{call}: connection lost mid-call ({exc})") from None
            raise ConnectionLost(f"{call}: connection lost ({exc})") from None
        except (BridgeUnavailable, BridgeAuthError) as exc:
            self._connected = False
            raise BrokerUnavailable(f"{call}: {exc}") from None
        except BridgeCallError as exc:
            raise GatewayError(f"{call}: {exc}") from None

    def _call(self, call: str, *args: Any, convert: bool = True, **kwargs: Any) -> Any:
        """Call, time, log and classify; returns plain data (dicts, lists) unless `convert` is False."""
        if self._api is None:
            # Nothing leaves the process: for order_send that is "not sent", not "outcome unknown".
            error_type = BrokerUnavailable if call == "order_send" else ConnectionLost
            self._observe(call, 0.0, error_type(f"{call}: not connected"))
            raise error_type(f"{call}: not connected to the terminal")
        started = time.perf_counter()
        error: GatewayError | None = None
        result: Any = None
        try:
            ahead = self.read_ahead
            hit = ahead.see(call, args, kwargs) if ahead.recording else None
            if hit is not None:
                raw = hit  # answered in this cycle's pipeline (bot.gateway.readahead)
            else:
                raw = self._invoke(call, getattr(self._api, call), args, kwargs)
                if ahead.recording:
                    ahead.made(call)
            if raw is None:
                code, message = self._last_error()
                if code == mt5.RES_E_AUTO_TRADING_DISABLED and call == "order_send":
                    raise TradingDisabled(f"{call}: algorithmic trading is disabled in the terminal: {message} "
                                          f"({code}); enable Algo Trading and 'Allow algorithmic trading' "
                                          "in Tools > Options > Expert Advisors")
                if code == mt5.RES_E_INTERNAL_FAIL_TIMEOUT:
                    self._connected = False
                    if call == "order_send":
                        raise OutcomeUnknown(f"{call}: IPC timeout ({code})")
                    raise ConnectionLost(f"{call}: IPC timeout ({code})")
                if code in _CONNECTION_ERRORS:
                    self._connected = False
                    raise ConnectionLost(f"{call}: {message} ({code})")
                if code == mt5.RES_S_OK:
                    # None with "no error" (seen from positions_get): the terminal lost the reason.
                    raise BrokerFault(f"{call} returned None although last_error says {code} {message!r}")
                raise GatewayError(f"{call} failed: {message} ({code})")
            self._connected = True
            # A bridge client's results are decoded JSON, plain already: walking them again cost
            # ~35 us for a symbol_info (mt5bridge.client.BridgeClient.plain_results).
            result = to_plain(raw) if convert and getattr(self._api, "plain_results", False) is not True else raw
            return result
        except GatewayError as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            if error is None and call in self._quick_calls:  # inline, not self._observe: every call passes here
                self._call_sink((call, elapsed))
            else:
                observer = self._observer
                if observer is not None:
                    observer(call, elapsed, error)
            level = logging.INFO if call == "order_send" else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "broker call %s %s",
                    call,
                    outcome_word(call, result, error),
                    extra={
                        "call": call,
                        "arguments": _summarise_args(call, args, kwargs),
                        "result": _summarise_result(call, result),
                        "latency_ms": round(elapsed * 1000, 3),
                        "error_kind": error.kind if error else None,
                        "error": str(error) if error else None,
                        "retcode": result.get("retcode") if isinstance(result, dict) else None,
                    },
                )


def _summarise_args(call: str, args: tuple, kwargs: dict) -> Any:
    if call in ("initialize", "login"):
        return None  # credentials
    if call == "order_send" and args:
        return args[0]
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return ", ".join(parts)[:200]


def _summarise_result(call: str, result: Any) -> Any:
    if result is None:
        return None
    if call == "order_send" and isinstance(result, dict):
        return {k: result.get(k) for k in ("retcode", "order", "deal", "volume", "price", "comment")}
    if isinstance(result, list) or getattr(result, "dtype", None) is not None:
        return f"{len(result)} rows"
    if isinstance(result, dict):
        return f"{len(result)} fields"
    return repr(result)[:100]
