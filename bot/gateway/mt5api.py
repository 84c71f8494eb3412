"""Adapter from the MetaTrader5 call surface to `Gateway`.

The real MetaTrader5 package, `mt5bridge.client.BridgeClient` and the simulator's stand-in
`mt5bridge.sim.mt5module.Mt5Module` all offer the same calls with the same argument rules; they differ only in how failures look (None + last_error(), or transport
exceptions from the bridge). This module turns both into the typed errors of `bot.gateway.errors`
and the plain values of `bot.gateway.types`, and logs every call with its latency.

It is also the only place that knows the broker's conventions: every time the terminal reports is
server time and leaves here as true UTC (`bot.gateway.clock`), a symbol outside Market Watch is
selected before its first quote of a session, and orders carry the filling mode the symbol allows
(`bot.gateway.filling`, one retry on 10030) on the symbol's grid (`bot.gateway.ordersend`).

The class is built from mixins, one concern each: one call's convention (`mt5calls`), the history
reads (`mt5history`) and the orders (`mt5orders`); here are the connection and the live reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mt5bridge.errors import (
    BridgeAuthError,
    BridgeUnavailable,
)

from . import clock as broker_clock
from . import convert
from .base import CallObserver, Gateway
from .clock import BrokerClock
from .cycle_reads import CycleReads
from .dealcache import DealCache
from .errors import (
    BadBrokerData,
    BrokerUnavailable,
    ConnectionLost,
    GatewayError,
    OutcomeUnknown,
)
from .guard import BrokerDataGuard
from .mt5calls import CallingConvention
from .mt5history import HistoryReads
from .mt5orders import OrderCalls
from .readahead import ReadAhead
from .types import (
    AccountState,
    Bars,
    Position,
    Quote,
    SymbolSpec,
    TerminalState,
)

log = logging.getLogger("bot.gateway")



class Mt5ApiGateway(CallingConvention, HistoryReads, OrderCalls, Gateway):
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

    def remember_server_offset(self, offset_seconds: int) -> None:
        self.clock.seed(offset_seconds)

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
        quote = Quote(symbol=name, time=self.clock.to_utc(tick["time"]), bid=convert.price(tick["bid"], digits),
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
        to_utc = self.clock.to_utc  # what self._to_utc calls, without a frame of its own per row
        for r in rows:
            if self.guard.judge("position", r, convert.ticket_key(r)) is not None:
                refused.add(str(r.get("symbol", ""))[:32] if isinstance(r, dict) else "")
                continue
            out.append(convert.position(r, self._digits_of(r["symbol"]), to_utc))
        if symbol is None:
            self.refused_position_symbols = frozenset(refused)
        return out
