"""Adapter from the MetaTrader5 call surface to `Gateway`.

The real MetaTrader5 package, `mt5bridge.client.BridgeClient` and the simulator's stand-in
`mt5bridge.sim.mt5module.Mt5Module` all offer the same calls with the same argument rules; they differ only in how failures look (None + last_error(), or transport
exceptions from the bridge). This module turns both into the typed errors of `bot.gateway.errors`
and the plain values of `bot.gateway.types`, and logs every call with its latency.

It is also the only place that knows the broker's conventions: every time the terminal reports is
server time and leaves here as true UTC (`bot.gateway.clock`), a symbol outside Market Watch is
selected before its first quote of a session, and orders carry the filling mode the symbol allows
(`bot.gateway.filling`, one retry on 10030) on the symbol's grid (`bot.gateway.ordersend`).
(Longer than ~400 lines on purpose: one adapter over one API; the rules live in those modules.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from mt5bridge import constants as mt5
from mt5bridge.errors import (
    BridgeAuthError,
    BridgeCallError,
    BridgeConnectionLost,
    BridgeTimeout,
    BridgeUnavailable,
)
from mt5bridge.plain import to_plain

from . import clock as broker_clock
from . import grid
from .base import CallObserver, Gateway
from .clock import BrokerClock
from .errors import (
    BrokerUnavailable,
    ConnectionLost,
    GatewayError,
    OrderRejected,
    OutcomeUnknown,
    TradingDisabled,
)
from .filling import NAMES as FILLING_NAMES
from .filling import next_filling
from .ordersend import market_request
from .types import (
    AccountState,
    Bars,
    Deal,
    HistoryOrder,
    OrderRequest,
    OrderResult,
    Position,
    Quote,
    SymbolSpec,
    TerminalState,
)

log = logging.getLogger("bot.gateway")

_CONNECTION_ERRORS = {
    mt5.RES_E_INTERNAL_FAIL_SEND,
    mt5.RES_E_INTERNAL_FAIL_RECEIVE,
    mt5.RES_E_INTERNAL_FAIL_INIT,
    mt5.RES_E_INTERNAL_FAIL_CONNECT,
}
_FILLED = {mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_DONE_PARTIAL, mt5.TRADE_RETCODE_PLACED}
CENT = Decimal("0.01")


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def price(value: Any, digits: int) -> Decimal:
    return Decimal(str(round(float(value), digits))).quantize(Decimal(1).scaleb(-digits))


def _optional_price(value: Any, digits: int) -> Decimal | None:
    return price(value, digits) if value else None


def _volume(value: Any) -> Decimal:
    """A volume (or volume step) exactly as the terminal reports it, whatever its decimals."""
    return grid.exact(value)


def _side(order_type: int) -> str:
    return "BUY" if order_type == mt5.ORDER_TYPE_BUY else "SELL"


class Mt5ApiGateway(Gateway):
    """Gateway over an object with the MetaTrader5 calls.

    `api_factory` opens a fresh connection (a new bridge client, or the same in-process terminal);
    `credentials` go to `initialize`. `observer` is told of every call's latency and error.
    """

    def __init__(
        self,
        api_factory: Callable[[], Any],
        credentials: dict[str, Any] | None = None,
        observer: CallObserver | None = None,
        name: str = "mt5",
    ):
        self._api_factory = api_factory
        self._credentials = {k: v for k, v in (credentials or {}).items() if v is not None}
        self._observer = observer
        self.name = name
        self._api: Any = None
        self._connected = False
        self._digits: dict[str, int] = {}
        self._specs: dict[str, SymbolSpec] = {}
        self._selected: set[str] = set()  # in Market Watch for this session (selected, or already visible)
        #: Server time <-> UTC (see bot.gateway.clock); the only place that knows the server's clock.
        self.clock = BrokerClock()
        self._no_sim_clock: Any = None  # the transport that refused sim_clock (a real terminal)

    def set_observer(self, observer: CallObserver | None) -> None:
        self._observer = observer

    @property
    def connected(self) -> bool:
        return self._connected

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Both layers: a new transport (bridge connection), then the terminal session."""
        self.close()
        try:
            self._api = self._api_factory()
        except (BridgeUnavailable, BridgeAuthError, OSError) as exc:
            self._observe("initialize", 0.0, BrokerUnavailable(str(exc)))
            raise BrokerUnavailable(f"cannot reach the terminal: {exc}") from None
        self._open_session()

    def reconnect(self) -> str:
        """Reconnect in layers; returns which layer it took ("session" or "transport").

        When the transport still answers (the terminal lost its broker, or was shut down), only
        the session is re-opened; when the transport is dead, a new one is opened first.
        """
        if self._api is not None and not getattr(self._api, "closed", False):
            try:
                self._open_session()
                return "session"
            except GatewayError as exc:
                log.info("session re-open failed, opening a new transport: %s", exc, extra={"gateway": self.name})
        self.connect()
        return "transport"

    def _open_session(self) -> None:
        """`initialize` (with the account credentials) on the current transport."""
        started = time.perf_counter()
        error: GatewayError | None = None
        try:
            ok = self._invoke("initialize", self._initialize)
            if not ok:
                code, message = self._last_error()
                raise BrokerUnavailable(f"initialize failed: {code} {message}")
            self._connected = True
            # A new session: Market Watch selections and the clock are checked again.
            self._selected.clear()
            self.clock.reset()
            log.info("terminal connected", extra={"gateway": self.name})
        except GatewayError as exc:
            error = exc
            self._connected = False
            raise
        finally:
            self._observe("initialize", time.perf_counter() - started, error)

    def _initialize(self) -> Any:
        """initialize([path], login=..., ...): the path positionally, as the package documents it."""
        credentials = dict(self._credentials)
        path = credentials.pop("path", None)
        args = (path,) if path is not None else ()
        return self._api.initialize(*args, **credentials) if credentials else self._api.initialize(*args)

    def close(self) -> None:
        api, self._api = self._api, None
        self._connected = False
        if api is None:
            return
        for method in ("shutdown", "close"):
            fn = getattr(api, method, None)
            if fn is None:
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001 - a dead transport cannot be shut down; nothing to do
                pass

    # -- the calling convention ---------------------------------------------------------------

    def _observe(self, call: str, seconds: float, error: GatewayError | None) -> None:
        if self._observer is not None:
            self._observer(call, seconds, error)

    def _last_error(self) -> tuple[int, str]:
        try:
            code, message = self._api.last_error()
            return int(code), str(message)
        except Exception:  # noqa: BLE001 - last_error over a dead bridge
            return mt5.RES_E_INTERNAL_FAIL_CONNECT, "no IPC connection"

    def _invoke(self, call: str, fn: Callable[[], Any]) -> Any:
        """Run one API call, turning transport exceptions into typed gateway errors."""
        try:
            return fn()
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
            # Never splat an empty mapping: the real package then refuses positional arguments
            # ('Unnamed arguments not allowed' from order_send(request, **{})).
            method = getattr(self._api, call)
            raw = self._invoke(call, lambda: method(*args, **kwargs) if kwargs else method(*args))
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
                raise GatewayError(f"{call} failed: {message} ({code})")
            self._connected = True
            result = to_plain(raw) if convert else raw
            return result
        except GatewayError as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._observe(call, elapsed, error)
            level = logging.INFO if call == "order_send" else logging.DEBUG
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "broker call %s %s",
                    call,
                    "failed" if error else "ok",
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

    # -- reads ------------------------------------------------------------------------------

    def terminal(self) -> TerminalState:
        info = self._call("terminal_info")
        return TerminalState(connected=bool(info.get("connected")), trade_allowed=bool(info.get("trade_allowed")),
                             tradeapi_disabled=bool(info.get("tradeapi_disabled")))

    def account(self) -> AccountState:
        info = self._call("account_info")
        level = info.get("margin_level") or 0
        return AccountState(
            login=int(info["login"]),
            currency=str(info.get("currency", "")),
            balance=money(info["balance"]),
            equity=money(info["equity"]),
            profit=money(info.get("profit", 0)),
            margin=money(info.get("margin", 0)),
            free_margin=money(info.get("margin_free", 0)),
            margin_level=money(level) if level else None,
            leverage=int(info.get("leverage", 0)),
        )

    def symbol(self, name: str) -> SymbolSpec:
        info = self._call("symbol_info", name)
        digits = int(info["digits"])
        self._digits[name] = digits
        spec = SymbolSpec(
            name=name,
            digits=digits,
            point=Decimal(str(info["point"])),
            contract_size=Decimal(str(info["trade_contract_size"])),
            tick_size=Decimal(str(info["trade_tick_size"])),
            tick_value=Decimal(str(info["trade_tick_value"])),
            volume_min=_volume(info["volume_min"]),
            volume_max=_volume(info["volume_max"]),
            volume_step=_volume(info["volume_step"]),
            stops_level=int(info.get("trade_stops_level", 0)),
            currency_profit=str(info.get("currency_profit", "")),
            exemode=int(info.get("trade_exemode", mt5.SYMBOL_TRADE_EXECUTION_MARKET)),
            filling_bits=int(info.get("filling_mode", 0)),
            visible=bool(info.get("visible", True)),
        )
        self._specs[name] = spec
        return spec

    def symbol_names(self) -> list[str]:
        """Asked only when a symbol is refused (a broker may list thousands, each with ~100 fields)."""
        return [str(row["name"]) for row in self._call("symbols_get") or []]

    def _digits_of(self, symbol: str) -> int:
        if symbol not in self._digits:
            self.symbol(symbol)
        return self._digits[symbol]

    def _ensure_selected(self, name: str) -> None:
        """Put `name` in Market Watch before its first quote of this session (quotes flow only there)."""
        if name in self._selected:
            return
        spec = self.symbol(name)
        if not spec.visible:
            if self._call("symbol_select", name, True) is not True:
                code, message = self._last_error()
                raise GatewayError(f"symbol_select({name!r}) refused: {message} ({code})")
            log.info("symbol %s added to Market Watch", name, extra={"symbol": name, "gateway": self.name})
        self._selected.add(name)

    def _utc_now(self) -> tuple[float, float]:
        """True UTC now and the speed of the clock that ticks come from.

        A simulator may run faster than the wall clock: its sim-only `sim_clock()` hook (the
        stand-in, the bridge client to a sim) gives its own now and speed; the real package has none.
        """
        hook = getattr(self._api, "sim_clock", None)
        if hook is not None and self._api is not self._no_sim_clock:
            try:
                reading = self._invoke("sim_clock", hook)
                return float(reading["utc"]), float(reading.get("speed", 1.0))
            except (ConnectionLost, BrokerUnavailable, OutcomeUnknown):
                raise
            except (GatewayError, KeyError, TypeError, ValueError):
                # A bridge to a real terminal refuses the sim-only call: the wall clock it is.
                self._no_sim_clock = self._api
        return broker_clock.wall_time(), 1.0

    def _to_utc(self, seconds: Any) -> datetime:
        return self.clock.to_utc(seconds)

    def server_offset_seconds(self) -> int | None:
        return self.clock.offset

    def quote(self, name: str) -> Quote:
        self._ensure_selected(name)
        tick = self._call("symbol_info_tick", name)
        tick_time, offset = float(tick["time"]), self.clock.offset
        # Due is judged on the tick's own time (no extra call); a measurement asks for UTC now.
        if offset is None or self.clock.due(tick_time - offset):
            now, speed = self._utc_now()
            self.clock.observe(tick_time, now, speed)
        digits = self._digits_of(name)
        return Quote(symbol=name, time=self._to_utc(tick["time"]), bid=price(tick["bid"], digits),
                     ask=price(tick["ask"], digits))

    def bars(self, symbol: str, timeframe: int, count: int) -> Bars:
        self._ensure_selected(symbol)
        rows = self._call("copy_rates_from_pos", symbol, timeframe, 0, count, convert=False)
        if rows is None or len(rows) == 0:
            raise GatewayError(f"copy_rates_from_pos returned no bars for {symbol}")
        if getattr(rows, "dtype", None) is not None and rows.dtype.names:
            return Bars(
                symbol=symbol,
                time=self._bar_times(rows["time"]),
                open=rows["open"].astype(float),
                high=rows["high"].astype(float),
                low=rows["low"].astype(float),
                close=rows["close"].astype(float),
            )
        return Bars(
            symbol=symbol,
            time=self._bar_times(np.fromiter((r["time"] for r in rows), dtype=np.int64, count=len(rows))),
            open=np.fromiter((r["open"] for r in rows), dtype=float, count=len(rows)),
            high=np.fromiter((r["high"] for r in rows), dtype=float, count=len(rows)),
            low=np.fromiter((r["low"] for r in rows), dtype=float, count=len(rows)),
            close=np.fromiter((r["close"] for r in rows), dtype=float, count=len(rows)),
        )

    def _bar_times(self, server_times: Any) -> np.ndarray:
        """Bar open times in UTC seconds (bars are stamped in server time like everything else)."""
        times = np.asarray(server_times).astype(np.int64)
        if len(times) == 0:
            return times
        return times - np.fromiter((self.clock.offset_at_server(t) for t in times), dtype=np.int64, count=len(times))

    def positions(self, symbol: str | None = None) -> list[Position]:
        rows = self._call("positions_get", symbol=symbol) if symbol else self._call("positions_get")
        out = []
        for r in rows:
            digits = self._digits_of(r["symbol"])
            out.append(
                Position(
                    ticket=int(r["ticket"]),
                    symbol=r["symbol"],
                    direction=_side(int(r["type"])),
                    volume=_volume(r["volume"]),
                    price_open=price(r["price_open"], digits),
                    price_current=price(r["price_current"], digits),
                    sl=_optional_price(r.get("sl"), digits),
                    tp=_optional_price(r.get("tp"), digits),
                    profit=money(r.get("profit", 0)),
                    swap=money(r.get("swap", 0)),
                    magic=int(r.get("magic", 0)),
                    comment=str(r.get("comment", "")),
                    time=self._to_utc(r["time"]),
                )
            )
        return out

    def _deal(self, r: dict) -> Deal:
        digits = self._digits_of(r["symbol"]) if r.get("symbol") else 5
        return Deal(
            ticket=int(r["ticket"]),
            order=int(r.get("order", 0)),
            position_id=int(r.get("position_id", 0)),
            symbol=str(r.get("symbol", "")),
            type=int(r["type"]),
            entry=int(r["entry"]),
            volume=_volume(r["volume"]),
            price=price(r["price"], digits),
            profit=money(r.get("profit", 0)),
            commission=money(r.get("commission", 0)),
            swap=money(r.get("swap", 0)),
            magic=int(r.get("magic", 0)),
            comment=str(r.get("comment", "")),
            reason=int(r.get("reason", 0)),
            time=self._to_utc(r["time"]),
        )

    def deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        rows = self._call("history_deals_get", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return [self._deal(r) for r in rows if r.get("symbol")]

    def deals_for_position(self, position_id: int) -> list[Deal]:
        rows = self._call("history_deals_get", position=position_id)
        return [self._deal(r) for r in rows if r.get("symbol")]

    def history_orders(self, date_from: datetime, date_to: datetime) -> list[HistoryOrder]:
        return self._orders(self._call("history_orders_get", self.clock.to_server(date_from),
                                       self.clock.to_server(date_to)))

    def open_orders(self) -> list[HistoryOrder]:
        return self._orders(self._call("orders_get"))

    def _orders(self, rows: list[dict]) -> list[HistoryOrder]:
        out = []
        for r in rows:
            digits = self._digits_of(r["symbol"])
            done = r.get("time_done")
            out.append(
                HistoryOrder(
                    ticket=int(r["ticket"]),
                    position_id=int(r.get("position_id", 0)),
                    symbol=r["symbol"],
                    type=int(r["type"]),
                    state=int(r.get("state", 0)),
                    volume=_volume(r.get("volume_initial", 0)),
                    price=price(r.get("price_current") or r.get("price_open") or 0, digits),
                    magic=int(r.get("magic", 0)),
                    comment=str(r.get("comment", "")),
                    time_done=self._to_utc(done) if done else None,
                )
            )
        return out

    # -- trading ----------------------------------------------------------------------------

    def order_send(self, request: OrderRequest) -> OrderResult:
        """Send once with the filling mode the symbol allows; on 10030 re-read it and retry once.

        10030 (invalid filling) means nothing executed, so the one retry carries the same comment
        (the same client order id) with the next allowed mode: at most one order can result.
        """
        spec = self._order_spec(request.symbol)
        payload = market_request(request, spec)
        result = self._call("order_send", payload)
        if int(result.get("retcode", 0)) == mt5.TRADE_RETCODE_INVALID_FILL:
            tried = payload["type_filling"]
            fresh = self._order_spec(request.symbol, refresh=True)
            retry = next_filling(fresh.exemode, fresh.filling_bits, {tried})
            if retry is not None:
                log.info("order %s: filling %s refused (10030), retrying once with %s", request.comment,
                         FILLING_NAMES.get(tried, tried), FILLING_NAMES.get(retry, retry),
                         extra={"symbol": request.symbol, "filling": FILLING_NAMES.get(retry, retry)})
                result = self._call("order_send", dict(payload, type_filling=retry))
        retcode = int(result.get("retcode", 0))
        if retcode in mt5.OUTCOME_UNKNOWN_RETCODES:
            raise OutcomeUnknown(f"order_send: retcode {retcode} ({result.get('comment', '')})")
        if retcode not in _FILLED:
            raise OrderRejected(retcode, str(result.get("comment", "")))
        digits = self._digits_of(request.symbol)
        return OrderResult(
            retcode=retcode,
            order=int(result.get("order", 0)),
            deal=int(result.get("deal", 0)),
            volume=_volume(result.get("volume", 0)),
            price=price(result.get("price", 0), digits),
            comment=str(result.get("comment", "")),
        )

    def _order_spec(self, symbol: str, refresh: bool = False) -> SymbolSpec:
        """The symbol's rules for an order; a failed read means the order was certainly not sent."""
        if not refresh and symbol in self._specs:
            return self._specs[symbol]
        try:
            return self.symbol(symbol)
        except GatewayError as exc:
            raise BrokerUnavailable(f"order_send: not sent, cannot read {symbol}: {exc}") from None


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
