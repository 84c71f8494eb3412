"""Adapter from the MetaTrader5 call surface to `Gateway`.

The real MetaTrader5 package, `mt5bridge.client.BridgeClient` and the simulator's stand-in
`mt5bridge.sim.mt5module.Mt5Module` all offer the same calls with the same argument rules; they differ only in how failures look (None + last_error(), or transport
exceptions from the bridge). This module turns both into the typed errors of `bot.gateway.errors`
and the plain values of `bot.gateway.types`, and logs every call with its latency.

It is also the only place that knows the broker's conventions: every time the terminal reports is
server time and leaves here as true UTC (`bot.gateway.clock`), a symbol outside Market Watch is
selected before its first quote of a session, and orders carry the filling mode the symbol allows
(`bot.gateway.filling`, one retry on 10030) on the symbol's grid (`bot.gateway.ordersend`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
from . import convert, margin
from .base import CallObserver, Gateway
from .clock import BrokerClock
from .cycle_reads import CycleReads
from .dealcache import DealCache
from .enums import NON_TRADE_DEAL_TYPES
from .errors import (
    BadBrokerData,
    BrokerFault,
    BrokerUnavailable,
    ConnectionLost,
    GatewayError,
    OrderRejected,
    OutcomeUnknown,
    TradingDisabled,
    WatchOnlyRefused,
)
from .filling import NAMES as FILLING_NAMES
from .filling import next_filling
from .guard import BrokerDataGuard
from .ordersend import market_request
from .readahead import ReadAhead
from .types import (
    AccountState,
    Bars,
    Deal,
    HistoryOrder,
    OrderCheck,
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
_REQUOTED = {mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_PRICE_CHANGED, mt5.TRADE_RETCODE_PRICE_OFF}


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
        trading: bool = True,
    ):
        self._api_factory = api_factory
        self._credentials = {k: v for k, v in (credentials or {}).items() if v is not None}
        self._observer = observer
        self._quick_calls: Container[str] = frozenset()  # see set_observer
        self._call_sink: Callable[[tuple[str, float]], None] | None = None
        self.name = name
        self.trading = trading  # False: watch-only, order_send refuses (WatchOnlyRefused) before any call
        self._api: Any = None
        self._connected = False
        self._digits: dict[str, int] = {}
        self._unknown_symbols: set[str] = set()
        self.guard = BrokerDataGuard(self._symbol_known)
        self._specs: dict[str, SymbolSpec] = {}
        self._selected: set[str] = set()  # in Market Watch for this session (selected, or already visible)
        #: Server time <-> UTC (see bot.gateway.clock); the only place that knows the server's clock.
        self.clock = BrokerClock()
        self._no_sim_clock: Any = None  # the transport that refused sim_clock (a real terminal)
        self.refused_position_symbols: frozenset[str] = frozenset()
        #: Terminal sessions opened so far: a new one (a reconnect) tells readers that cache broker
        #: data (the bar windows, bot/engine/barwindow.py) to read it again in full.
        self.sessions = 0
        self._newest_quote: datetime | None = None  # this session's newest accepted quote time
        self._deal_cache = DealCache()  # deal rows already judged and converted (bot.gateway.dealcache)
        self._reads = CycleReads()  # terminal_info / account_info once per cycle (bot.gateway.cycle_reads)
        self.read_ahead = ReadAhead()  # the cycle's reads in one round trip (bot.gateway.readahead)

    def set_observer(self, observer: CallObserver | None, quick_calls: Container[str] = frozenset(),
                     call_sink: Callable[[tuple[str, float]], None] | None = None) -> None:
        """`observer` is told of every call, except a successful one named in `quick_calls` (a set its
        owner may change at any time): that goes to `call_sink` as one (call, seconds) tuple instead.

        Why: a broker call is made ~17 times a cycle; a sink such as a list's append runs in C, where
        an observer costs a Python frame a call (telemetry's loop cost, issue 16; bot.instrumentation)."""
        self._observer = observer
        self._quick_calls = quick_calls if call_sink is not None else frozenset()
        self._call_sink = call_sink

    def set_rejection_sink(self, sink: Callable[[Any], None] | None) -> None:
        self.guard.on_reject = sink

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def broker_time(self) -> datetime | None:
        """The broker's time as last seen: this session's newest accepted quote, without a call; None before one.

        The newest, not the last: one symbol's stale quote must not turn the clock back for the others."""
        return self._newest_quote

    @property
    def deals_seen(self) -> int:
        return self.guard.deals_seen

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Both layers: a new transport (bridge connection), then the terminal session."""
        self.close()
        self._unknown_symbols.clear()
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
            self.sessions += 1
            self._newest_quote = None
            # A new session: Market Watch selections and the clock are checked again.
            self._selected.clear()
            self.clock.reset()
            self._deal_cache.clear()
            self._reads.forget()
            self.read_ahead.forget()
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
            ahead = self.read_ahead
            hit = ahead.see(call, args, kwargs) if ahead.recording else None
            if hit is not None:
                raw = hit  # answered in this cycle's pipeline (bot.gateway.readahead)
            else:
                # Never splat an empty mapping: the real package then refuses positional arguments
                # ('Unnamed arguments not allowed' from order_send(request, **{})).
                method = getattr(self._api, call)
                raw = self._invoke(call, lambda: method(*args, **kwargs) if kwargs else method(*args))
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
                    _outcome_word(call, result, error),
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

    def _require(self, kind: str, record: Any, key: str) -> None:
        """Raise BadBrokerData when the guard refuses a record the caller cannot do without."""
        problem = self.guard.judge(kind, record, key)
        if problem is not None:
            raise BadBrokerData(kind, key, problem.reason, problem.detail)

    def _symbol_known(self, name: str) -> bool:
        """Whether the terminal knows `name` (asked once; a refusal is kept until the next connect)."""
        if name in self._digits:
            return True
        if name in self._unknown_symbols:
            return False
        try:
            self.symbol(name)
            return True
        except (ConnectionLost, BrokerUnavailable, OutcomeUnknown):
            raise
        except GatewayError:
            if len(self._unknown_symbols) >= 1024:
                self._unknown_symbols.clear()
            self._unknown_symbols.add(name)
            return False

    @contextmanager
    def cycle_reads(self) -> Iterator[None]:
        with self._reads.cycle():
            if self._api is not None:
                self.read_ahead.start(self._api)
            try:
                yield
            finally:
                self.read_ahead.end()

    def terminal(self) -> TerminalState:
        info = self._reads.read("terminal_info", lambda: self._call("terminal_info"))
        return TerminalState(connected=bool(info.get("connected")), trade_allowed=bool(info.get("trade_allowed")),
                             tradeapi_disabled=bool(info.get("tradeapi_disabled")))

    def account(self) -> AccountState:
        info = self._reads.read("account_info", lambda: self._call("account_info"))
        self._require("account", info, f"login {info.get('login') if isinstance(info, dict) else '?'}")
        return convert.account(info)

    def symbol(self, name: str) -> SymbolSpec:
        info = self._call("symbol_info", name)
        self._require("symbol", info, name)
        spec = convert.symbol_spec(name, info)
        self._digits[name] = spec.digits
        self._specs[name] = spec
        return spec

    def read_info(self, call: str, *args: Any) -> dict[str, Any] | None:
        """A raw info read for preflight; symbol_info of an unknown symbol raises GatewayError."""
        if call not in ("terminal_info", "account_info", "symbol_info"):
            raise ValueError(f"read_info reads terminal_info, account_info or symbol_info, not {call!r}")
        return self._reads.read(call, lambda: self._call(call, *args)) if not args else self._call(call, *args)

    def symbol_names(self) -> list[str]:
        """Asked only when a symbol is refused (a broker may list thousands, each with ~100 fields)."""
        return [str(row["name"]) for row in self._call("symbols_get") or []]

    def _digits_of(self, symbol: str) -> int:
        if symbol not in self._digits:
            self.symbol(symbol)
        return self._digits[symbol]

    def ensure_selected(self, name: str) -> None:
        self._ensure_selected(name)

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

    def utc_now(self) -> datetime:
        """True UTC now, as `_utc_now` reads it; the wall clock when the terminal cannot be asked."""
        try:
            return datetime.fromtimestamp(self._utc_now()[0], UTC)
        except GatewayError:
            return super().utc_now()

    def server_offset_seconds(self) -> int | None:
        return self.clock.offset

    def quote(self, name: str) -> Quote:
        self._ensure_selected(name)
        tick = self._call("symbol_info_tick", name)
        self._require("quote", tick, name)
        tick_time, offset = float(tick["time"]), self.clock.offset
        # Due is judged on the tick's own time (no extra call); a measurement asks for UTC now.
        if offset is None or self.clock.due(tick_time - offset):
            now, speed = self._utc_now()
            self.clock.observe(tick_time, now, speed)
        digits = self._digits_of(name)
        quote = Quote(symbol=name, time=self._to_utc(tick["time"]), bid=convert.price(tick["bid"], digits),
                      ask=convert.price(tick["ask"], digits))
        self.guard.clock = quote.time
        if self._newest_quote is None or quote.time > self._newest_quote:
            self._newest_quote = quote.time
        return quote

    def bars(self, symbol: str, timeframe: int, count: int) -> Bars:
        self._ensure_selected(symbol)
        rows = self._call("copy_rates_from_pos", symbol, timeframe, 0, count, convert=False)
        columns = convert.bar_columns(rows) if rows is not None else None
        if columns is None or (columns["time"] is not None and len(columns["time"]) == 0):
            raise GatewayError(f"copy_rates_from_pos returned no bars for {symbol}")
        self._require("bars", columns, symbol)
        return Bars(symbol=symbol, time=self._bar_times(columns["time"]), open=columns["open"].astype(float),
                    high=columns["high"].astype(float), low=columns["low"].astype(float),
                    close=columns["close"].astype(float))

    def _bar_times(self, server_times: Any) -> np.ndarray:
        """Bar open times in UTC seconds (bars are stamped in server time like everything else)."""
        times = np.asarray(server_times).astype(np.int64)
        if len(times) == 0:
            return times
        return times - self.clock.offsets_at_server(times)

    def positions(self, symbol: str | None = None) -> list[Position]:
        rows = self._call("positions_get", symbol=symbol) if symbol else self._call("positions_get")
        out, refused = [], set()
        for r in rows:
            if self.guard.judge("position", r, convert.ticket_key(r)) is not None:
                refused.add(str(r.get("symbol", ""))[:32] if isinstance(r, dict) else "")
                continue
            out.append(convert.position(r, self._digits_of(r["symbol"]), self._to_utc))
        if symbol is None:
            self.refused_position_symbols = frozenset(refused)
        return out

    def _trade_deals(self, rows: list, balance: bool = False) -> tuple[list[Deal], bool]:
        """The trade deals among history rows the guard accepts, and whether any was refused.

        Balance operations (a non-trade deal type) are not trades: skipped, not refused, unless
        `balance` asks for them (judged by their own schema: symbol "", volume 0 are theirs).
        A row met before with the same content is taken from the deal cache (bot.gateway.dealcache).
        """
        out, refused, cache = [], False, self._deal_cache
        for r in rows:
            content = stamp = None
            if isinstance(r, dict):
                self.guard.note_deal(r.get("ticket"))
                operation = r.get("type") in NON_TRADE_DEAL_TYPES
                if operation and not balance:
                    continue
                content = cache.content(r)
                if content is not None:
                    stamp = self._deal_stamp(r, operation)
                    known = cache.get(r, content, stamp)
                    if known is not None:
                        out.append(known)
                        continue
                if operation:
                    if self.guard.judge("balance_deal", r, convert.ticket_key(r)) is None:
                        deal = convert.deal(r, 2, self._to_utc)
                        cache.put(content, stamp, deal)
                        out.append(deal)
                    continue
            if self.guard.judge("deal", r, convert.ticket_key(r)) is not None:
                refused = True
                continue
            deal = convert.deal(r, self._digits_of(r["symbol"]), self._to_utc)
            cache.put(content, stamp, deal)
            out.append(deal)
        return out, refused

    def _deal_stamp(self, row: dict, operation: bool) -> tuple[int, int] | None:
        """What a cached Deal of `row` depends on besides the row: its digits and the server offset then.

        Asked only of a row whose content was accepted before (or just now), so its fields are sound.
        """
        try:
            digits = 2 if operation else self._digits[row["symbol"]]
            return digits, self.clock.offset_at_server(row["time"])
        except (KeyError, TypeError, ValueError, broker_clock.ClockUnknown):
            return None

    def deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        rows = self._call("history_deals_get", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return self._trade_deals(rows)[0]

    def account_deals(self, date_from: datetime, date_to: datetime) -> list[Deal]:
        """Every deal of the window the guard accepts, balance operations included (whole-account history)."""
        rows = self._call("history_deals_get", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return self._trade_deals(rows, balance=True)[0]

    def deals_total(self, date_from: datetime, date_to: datetime) -> int | None:
        """history_deals_total of the window: a probe that moves no records (bot.engine.books)."""
        count = self._call("history_deals_total", self.clock.to_server(date_from), self.clock.to_server(date_to))
        return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None

    def deals_for_position(self, position_id: int) -> list[Deal]:
        """A position's deals; none at all when one was refused: a trade is never built from part of them."""
        deals, refused = self._trade_deals(self._call("history_deals_get", position=position_id))
        return [] if refused else deals

    def history_orders(self, date_from: datetime, date_to: datetime) -> list[HistoryOrder]:
        return self._orders(self._call("history_orders_get", self.clock.to_server(date_from),
                                       self.clock.to_server(date_to)))

    def open_orders(self) -> list[HistoryOrder]:
        return self._orders(self._call("orders_get"))

    def _orders(self, rows: list[dict]) -> list[HistoryOrder]:
        return [convert.history_order(r, self._digits_of(r["symbol"]), self._to_utc) for r in rows
                if self.guard.judge("order", r, convert.ticket_key(r)) is None]

    # -- trading ----------------------------------------------------------------------------

    def order_send(self, request: OrderRequest) -> OrderResult:
        """Send once with the filling mode the symbol allows; on 10030 re-read it and retry once.

        10030 (invalid filling) means nothing executed, so the one retry carries the same comment
        (the same client order id) with the next allowed mode: at most one order can result.
        """
        if not self.trading:
            error = WatchOnlyRefused()
            self._observe("order_send", 0.0, error)
            log.error("order refused at the gateway: %s", error, extra={"gateway": self.name, "symbol": request.symbol})
            raise error
        self._reads.forget()  # the account changes with the order
        self.read_ahead.forget()
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
        problem = self.guard.judge("order_result", result, "order_send")
        if problem is not None:  # it may have executed: looked up at the broker, never resent
            raise OutcomeUnknown(f"order_send: reply refused ({problem.reason}): {problem.detail}")
        digits = self._digits_of(request.symbol)
        return OrderResult(
            retcode=retcode,
            order=int(result.get("order", 0)),
            deal=int(result.get("deal", 0)),
            volume=convert.volume(result.get("volume", 0)),
            price=convert.price(result.get("price", 0), digits),
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

    # -- before a send (bot.gateway.margin; the risk guard asks) ------------------------------

    def order_check(self, request: OrderRequest) -> OrderCheck:
        """The request order_send would send (the symbol's grid and filling mode), checked, not sent."""
        return margin.order_check(self._call, market_request(request, self._order_spec(request.symbol)))

    def order_calc_margin(self, side: str, symbol: str, volume, price) -> Decimal:
        return margin.order_calc_margin(self._call, side, symbol, volume, price)


def _outcome_word(call: str, result: Any, error: GatewayError | None) -> str:
    """"ok" / "failed", and for order_send what the broker's retcode says (a requote is no "ok")."""
    if error is not None:
        return "failed"
    if call != "order_send" or not isinstance(result, dict):
        return "ok"
    retcode = result.get("retcode")
    if retcode in _FILLED:
        return "ok"
    if retcode in _REQUOTED:
        return f"requoted (retcode {retcode})"
    if retcode in mt5.OUTCOME_UNKNOWN_RETCODES:
        return f"outcome unknown (retcode {retcode})"
    return f"rejected (retcode {retcode})"


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
