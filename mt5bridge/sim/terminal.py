"""SimTerminal: a stand-in for the MetaTrader5 package, backed by a seeded simulated broker.

Same method names, arguments and result shapes as the real package, including its failure
style: calls never raise on bad input, they return None (or False) and set ``last_error()``.
Everything runs on the standard library and numpy, because the bridge server that serves it runs
on Windows Python next to a real terminal with nothing else installed.

Test hooks (``advance``, ``set_price``, ``fault_*``, ``control``) are separate from the MT5 API
and are never affected by the injected faults.
"""

import fnmatch
import functools
import inspect
import logging
import math
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from mt5bridge.constants import (
    ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
    ACCOUNT_TRADE_MODE_DEMO,
    ORDER_TYPE_BUY,
    ORDER_TYPE_SELL,
    RES_E_AUTH_FAILED,
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_TIMEOUT,
    RES_E_INVALID_PARAMS,
    RES_E_NOT_FOUND,
    RES_S_OK,
    TIMEFRAME_SECONDS,
    TRADE_RETCODE_DONE,
)

from . import money
from .book import Books
from .broker import Broker
from .clock import SimClock, check_seconds
from .faults import Faults
from .orderrequest import Rejected, echo, parse
from .persistence import load_state, save_state
from .quotes import Quotes
from .records import AccountInfo, OrderCheckResult, OrderSendResult, TerminalInfo
from .symbols import SYMBOLS
from .tradingtime import DEFAULT_START, tick_epoch, tick_index, to_epoch, trading_day
from .views import deal_view, order_view, position_view, symbol_view, tick_view

log = logging.getLogger(__name__)

VERSION = (500, 5430, "14 Nov 2025")
MAXBARS = 100_000
COMPANY = "Tradewatch Simulated Markets"
CLOCK_SAVE_INTERVAL = 1.0  # wall seconds between saves of a clock that merely moved
MIN_EPOCH = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_EPOCH = datetime(2100, 1, 1, tzinfo=UTC).timestamp()  # keeps a runaway advance() finite

_SUCCESS = (RES_S_OK, "Success")
_NO_IPC = (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
_IPC_TIMEOUT = (RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
_AUTH_FAILED = (RES_E_AUTH_FAILED, "Terminal: Authorization failed")
_NOT_FOUND = (RES_E_NOT_FOUND, "Terminal: Not found")
_INVALID_PARAMS = (RES_E_INVALID_PARAMS, "Terminal: Invalid params")

#: Test hooks reachable through ``control`` (the bridge server exposes it; nothing else is).
CONTROL_COMMANDS = frozenset(
    {
        "fault_disconnect",
        "fault_latency",
        "fault_reject_next",
        "fault_timeout_after_execute",
        "clear_faults",
        "advance",
        "now",
    }
)


class _ApiError(Exception):
    def __init__(self, error: tuple[int, str]):
        super().__init__(error[1])
        self.error = error


class _ReplyAfter:
    """An order_send that executed but must look lost: sleep, then fail with an IPC timeout."""

    def __init__(self, delay: float):
        self.delay = delay


def _api(failure=None, needs_connection=True):
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
                    self._last_error = _NO_IPC
                    return failure
                try:
                    result = method(self, *args, **kwargs)
                except _ApiError as exc:
                    self._last_error = exc.error
                    result = failure
                else:
                    self._last_error = _SUCCESS
                finally:
                    self._persist()
            if isinstance(result, _ReplyAfter):
                time.sleep(result.delay)
                with self._lock:
                    self._last_error = _IPC_TIMEOUT
                return failure
            return result

        return call

    return decorate


def _symbol_filter(group: str | None):
    """MT5 group syntax: comma-separated wildcards, '!' excludes (e.g. ``"*USD*,!XAU*"``)."""
    if group is None:
        return lambda name: True
    if not isinstance(group, str):
        raise _ApiError(_INVALID_PARAMS)
    patterns = [p.strip() for p in group.split(",") if p.strip()]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]

    def matches(name: str) -> bool:
        if include and not any(fnmatch.fnmatchcase(name, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in exclude)

    return matches


def _epoch_arg(value) -> float:
    try:
        epoch = to_epoch(value)
    except TypeError:
        raise _ApiError(_INVALID_PARAMS) from None
    if not math.isfinite(epoch):
        raise _ApiError(_INVALID_PARAMS)
    return epoch


def _known_symbol(symbol) -> str:
    if not isinstance(symbol, str) or symbol not in SYMBOLS:
        raise _ApiError(_NOT_FOUND)
    return symbol


def _is_plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value, minimum: int) -> int:
    if not _is_plain_int(value) or value < minimum:
        raise _ApiError(_INVALID_PARAMS)
    return value


def _amount(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _ApiError(_INVALID_PARAMS)
    return Decimal(str(value))


class SimTerminal:
    """A simulated MetaTrader 5 terminal on a hedging USD demo account."""

    def __init__(
        self,
        seed: int = 42,
        speed: float = 1.0,
        stepped: bool = False,
        start: datetime | None = None,
        state_file: str | None = None,
        login: int = 5001234,
        password: str | None = None,
        server: str = "TradewatchSim-Demo",
        balance=10000,
        leverage: int = 100,
        currency="USD",
    ):
        opening_balance = _check_account_arguments(seed, login, password, balance, leverage, currency)
        self._seed = seed
        self._login = login
        self._password = password
        self._server = server
        self._leverage = leverage
        self._state_file = state_file
        self._lock = threading.RLock()
        self._faults = Faults()
        self._quotes = Quotes(seed)
        self._initialized = False
        self._last_error = _SUCCESS
        self._saved_at = -math.inf

        state = load_state(state_file) if state_file else None
        if state is not None:
            start_epoch, books, synced_k, rolled_day = _restore(state, state_file, seed, login)
            log.info("sim state restored from %s at %s", state_file, datetime.fromtimestamp(start_epoch, UTC))
        else:
            start_epoch = _start_epoch(start)
            books = Books(balance=opening_balance)
            synced_k = tick_index(start_epoch)
            rolled_day = trading_day(synced_k) - 1  # the rollover before the start is history
        self._clock = SimClock(start_epoch, speed, stepped)
        self._now = start_epoch
        self._broker = Broker(books, self._quotes, leverage, seed, synced_k, rolled_day)
        with self._lock:
            self._sync()
            self._persist(force=state is None)

    # ================================================================ internals
    def _sync(self) -> None:
        """Bring the broker up to the current sim time (callers hold the lock)."""
        self._now = self._clock.now()
        self._k = tick_index(self._now)
        self._broker.advance_to(self._now, self._k)

    def _persist(self, force: bool = False) -> None:
        if not self._state_file:
            return
        wall = time.monotonic()
        moved = not self._clock.stepped and wall - self._saved_at >= CLOCK_SAVE_INTERVAL
        if not (force or self._broker.dirty or moved):
            return
        broker = self._broker
        save_state(
            self._state_file,
            {
                "seed": self._seed,
                "login": self._login,
                "clock": self._now,
                "synced_k": broker.synced_k,
                "rolled_day": broker.rolled_day,
                "books": broker.books.to_dict(),
            },
        )
        broker.dirty = False
        self._saved_at = wall

    def _check_account(self, login, password, server) -> None:
        """Authorization as a terminal does it; only enforced when the sim has a password."""
        if self._password is None:
            return
        if login is not None and login != self._login:
            raise _ApiError(_AUTH_FAILED)
        if password is not None and not secrets.compare_digest(
            str(password).encode(), self._password.encode()
        ):
            raise _ApiError(_AUTH_FAILED)
        if server is not None and server != self._server:
            raise _ApiError(_AUTH_FAILED)

    def _quote(self, symbol: str) -> tuple[int, int]:
        return self._quotes.quote(symbol, self._k)

    # ================================================================ connection
    @_api(failure=False, needs_connection=False)
    def initialize(
        self, path=None, *, login=None, password=None, server=None, timeout=None, portable=False
    ) -> bool:
        self._check_account(login, password, server)
        self._initialized = True
        return True

    @_api(failure=False)
    def login(self, login, password=None, server=None, timeout=None) -> bool:
        self._check_account(login, password, server)
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._initialized = False
            # A clean stop saves the clock too (between changes of the books it is saved at most once
            # a wall second, and never in stepped mode): the next start resumes where this one ended.
            self._persist(force=True)

    @_api()
    def version(self) -> tuple:
        return VERSION

    def last_error(self) -> tuple[int, str]:
        with self._lock:
            return self._last_error

    @_api()
    def terminal_info(self) -> TerminalInfo:
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=True,
            dlls_allowed=False,
            trade_allowed=True,
            tradeapi_disabled=False,
            email_enabled=False,
            ftp_enabled=False,
            notifications_enabled=False,
            mqid=False,
            build=VERSION[1],
            maxbars=MAXBARS,
            codepage=0,
            ping_last=25_000,
            community_balance=0.0,
            retransmission=0.0,
            company=COMPANY,
            name="Tradewatch Simulated Terminal",
            language="English",
            path="C:\\Program Files\\Tradewatch Sim",
            data_path="C:\\Users\\sim\\AppData\\Roaming\\MetaQuotes\\Terminal\\SIM",
            commondata_path="C:\\Users\\sim\\AppData\\Roaming\\MetaQuotes\\Terminal\\Common",
        )

    @_api()
    def account_info(self) -> AccountInfo:
        state = self._broker.account(self._k)
        return AccountInfo(
            login=self._login,
            trade_mode=ACCOUNT_TRADE_MODE_DEMO,
            leverage=self._leverage,
            limit_orders=200,
            margin_so_mode=0,
            trade_allowed=True,
            trade_expert=True,
            margin_mode=ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
            currency_digits=2,
            fifo_close=False,
            balance=float(state.balance),
            credit=0.0,
            profit=float(state.profit),
            equity=float(state.equity),
            margin=float(state.margin),
            margin_free=float(state.margin_free),
            margin_level=float(state.margin_level),
            margin_so_call=50.0,
            margin_so_so=30.0,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name="Tradewatch Sim",
            server=self._server,
            currency=money.ACCOUNT_CURRENCY,
            company=COMPANY,
        )

    # ================================================================ market data
    @_api()
    def symbols_total(self) -> int:
        return len(SYMBOLS)

    @_api()
    def symbols_get(self, group=None) -> tuple:
        wanted = _symbol_filter(group)
        epoch = tick_epoch(self._k)
        return tuple(
            symbol_view(spec, epoch, *self._quote(name)) for name, spec in SYMBOLS.items() if wanted(name)
        )

    @_api()
    def symbol_info(self, symbol):
        symbol = _known_symbol(symbol)
        return symbol_view(SYMBOLS[symbol], tick_epoch(self._k), *self._quote(symbol))

    @_api(failure=False)
    def symbol_select(self, symbol, enable=True) -> bool:
        _known_symbol(symbol)
        return True

    @_api()
    def symbol_info_tick(self, symbol):
        symbol = _known_symbol(symbol)
        return tick_view(SYMBOLS[symbol], tick_epoch(self._k), *self._quote(symbol))

    @_api()
    def copy_rates_from_pos(self, symbol, timeframe, start_pos, count) -> np.ndarray:
        symbol = _known_symbol(symbol)
        seconds = TIMEFRAME_SECONDS.get(timeframe) if _is_plain_int(timeframe) else None
        if seconds is None:
            raise _ApiError(_INVALID_PARAMS)
        start_pos, count = _positive_int(start_pos, 0), _positive_int(count, 1)
        count = min(count, MAXBARS - start_pos)
        if count <= 0:
            raise _ApiError(_NOT_FOUND)
        last = self._k // seconds - start_pos
        return self._quotes.path(symbol).bars(seconds, last - count + 1, last, self._k)

    # ================================================================ trading
    @_api()
    def order_calc_margin(self, action, symbol, volume, price):
        spec = SYMBOLS[_known_symbol(symbol)]
        if action not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            raise _ApiError(_INVALID_PARAMS)
        required = money.margin(spec, _amount(volume), _amount(price), self._leverage)
        return float(money.cents(required))

    @_api()
    def order_calc_profit(self, action, symbol, volume, price_open, price_close):
        spec = SYMBOLS[_known_symbol(symbol)]
        if action not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            raise _ApiError(_INVALID_PARAMS)
        opened, closed = _amount(price_open), _amount(price_close)
        if closed == 0:
            raise _ApiError(_INVALID_PARAMS)
        return float(money.profit(spec, action == ORDER_TYPE_BUY, _amount(volume), opened, closed))

    @_api()
    def order_check(self, request) -> OrderCheckResult:
        if not isinstance(request, Mapping):
            raise _ApiError(_INVALID_PARAMS)
        request = dict(request)
        try:
            parsed = parse(request)
            after, required = self._broker.check(parsed, self._now, self._k)
            retcode, comment = 0, "Done"
        except Rejected as rejected:
            after, required = self._broker.account(self._k), Decimal(0)
            retcode, comment = rejected.retcode, rejected.comment
        return OrderCheckResult(
            retcode=retcode,
            balance=float(after.balance),
            equity=float(after.equity),
            profit=float(after.profit),
            margin=float(required),
            margin_free=float(after.margin_free),
            margin_level=float(after.margin_level),
            comment=comment,
            request=echo(request),
        )

    @_api()
    def order_send(self, request):
        if not isinstance(request, Mapping):
            raise _ApiError(_INVALID_PARAMS)
        request = dict(request)
        books = self._broker.books
        request_id = books.take_request_id()
        self._broker.dirty = True
        bid = ask = 0
        if isinstance(request.get("symbol"), str) and request["symbol"] in SYMBOLS:
            bid, ask = self._quote(request["symbol"])
        spec = SYMBOLS.get(request.get("symbol")) if isinstance(request.get("symbol"), str) else None

        def result(retcode, comment, deal=0, order=0, volume=0.0, price=0.0):
            return OrderSendResult(
                retcode=retcode,
                deal=deal,
                order=order,
                volume=volume,
                price=price,
                bid=spec.to_float(bid) if spec else 0.0,
                ask=spec.to_float(ask) if spec else 0.0,
                comment=comment,
                request_id=request_id,
                retcode_external=0,
                request=echo(request),
            )

        forced = self._faults.take_reject()
        if forced is not None:
            log.info("order_send rejected by fault injection with %d", forced)
            return result(forced, "Rejected (injected fault)")
        timeout = self._faults.take_timeout()
        try:
            fill = self._broker.execute(parse(request), self._now, self._k)
        except Rejected as rejected:
            log.info("order_send rejected: %d %s", rejected.retcode, rejected.comment)
            reply = result(rejected.retcode, rejected.comment)
        else:
            if fill.order:
                log.info(
                    "order_send filled %s %s at %s (order %d, deal %d)",
                    request.get("symbol"),
                    fill.volume,
                    spec.to_price(fill.price),
                    fill.order,
                    fill.deal,
                )
            price = spec.to_float(fill.price) if fill.price else 0.0
            reply = result(
                TRADE_RETCODE_DONE, "Request executed", fill.deal, fill.order, float(fill.volume), price
            )
        return _ReplyAfter(timeout) if timeout is not None else reply

    # ================================================================ books
    def _position_views(self, positions) -> tuple:
        views = []
        for position in positions:
            profit, current = self._broker.valuation(position, self._k)
            views.append(position_view(position, SYMBOLS[position.symbol], profit, current))
        return tuple(views)

    def _select_open(self, symbol, group, ticket):
        positions = list(self._broker.books.positions.values())
        if ticket is not None:
            positions = [p for p in positions if p.ticket == ticket]
        if symbol is not None:
            positions = [p for p in positions if p.symbol == symbol]
        wanted = _symbol_filter(group)
        return [p for p in positions if wanted(p.symbol)]

    @_api()
    def positions_total(self) -> int:
        return len(self._broker.books.positions)

    @_api()
    def positions_get(self, symbol=None, group=None, ticket=None) -> tuple:
        return self._position_views(self._select_open(symbol, group, ticket))

    @_api()
    def orders_total(self) -> int:
        return 0  # market orders fill at once; pending orders are not simulated

    @_api()
    def orders_get(self, symbol=None, group=None, ticket=None) -> tuple:
        _symbol_filter(group)
        return ()

    def _history(self, records, time_of, order_of, date_from, date_to, group, ticket, position) -> list:
        """MT5 selection rules: by ticket, by position, or by a date range (with optional group)."""
        if ticket is not None:
            return [r for r in records if order_of(r) == ticket]
        if position is not None:
            return [r for r in records if r.position_id == position]
        if date_from is None or date_to is None:
            raise _ApiError(_INVALID_PARAMS)
        first_ms = math.floor(_epoch_arg(date_from) * 1000)
        last_ms = math.floor(_epoch_arg(date_to) * 1000)
        wanted = _symbol_filter(group)
        return [r for r in records if first_ms <= time_of(r) <= last_ms and wanted(r.symbol)]

    def _orders(self, date_from, date_to, group, ticket, position) -> list:
        return self._history(
            self._broker.books.orders,
            lambda o: o.time_setup_msc,
            lambda o: o.ticket,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )

    def _deals(self, date_from, date_to, group, ticket, position) -> list:
        return self._history(
            self._broker.books.deals,
            lambda d: d.time_msc,
            lambda d: d.order,
            date_from,
            date_to,
            group,
            ticket,
            position,
        )

    @_api()
    def history_orders_total(self, date_from, date_to) -> int:
        return len(self._orders(date_from, date_to, None, None, None))

    @_api()
    def history_orders_get(
        self, date_from=None, date_to=None, group=None, ticket=None, position=None
    ) -> tuple:
        orders = self._orders(date_from, date_to, group, ticket, position)
        return tuple(order_view(o, SYMBOLS[o.symbol]) for o in orders)

    @_api()
    def history_deals_total(self, date_from, date_to) -> int:
        return len(self._deals(date_from, date_to, None, None, None))

    @_api()
    def history_deals_get(
        self, date_from=None, date_to=None, group=None, ticket=None, position=None
    ) -> tuple:
        deals = self._deals(date_from, date_to, group, ticket, position)
        return tuple(deal_view(d, SYMBOLS[d.symbol]) for d in deals)

    # ================================================================ test hooks
    def now(self) -> datetime:
        """Current simulation time (UTC)."""
        return datetime.fromtimestamp(self._clock.now(), UTC)

    def advance(self, seconds: float) -> datetime:
        """Move simulation time forward (any mode) and let the market act on the books."""
        with self._lock:
            if self._clock.now() + check_seconds(seconds, "advance") >= MAX_EPOCH:
                raise ValueError(f"advance({seconds!r}) would go past the year 2100")
            self._clock.advance(seconds)
            self._sync()
            self._persist(force=True)
            return datetime.fromtimestamp(self._now, UTC)

    def set_price(self, symbol: str, bid: float, ask: float | None = None) -> None:
        """TEST ONLY: pin ``symbol`` at ``bid``/``ask`` (default: typical spread) from now on.

        Positions are first brought up to now on the old prices; SL/TP are then checked against
        the pinned quote, filling at the worse of level and quote (a gap).
        """
        spec = SYMBOLS.get(symbol) if isinstance(symbol, str) else None
        if spec is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        bid_points = _price_points(spec, bid)
        ask_points = bid_points + spec.typical_spread if ask is None else _price_points(spec, ask)
        if bid_points <= 0 or ask_points < bid_points:
            raise ValueError(f"need 0 < bid <= ask, got bid={bid!r} ask={ask!r}")
        with self._lock:
            self._sync()
            self._quotes.pin(symbol, bid_points, ask_points)
            self._broker.recheck(symbol, self._k)
            self._persist()

    def clear_price(self, symbol: str) -> None:
        """TEST ONLY: let ``symbol`` follow its seeded path again."""
        with self._lock:
            self._sync()
            if self._quotes.is_pinned(symbol):
                self._quotes.unpin(symbol)
                self._broker.recheck(symbol, self._k)
            self._persist()

    def fault_disconnect(self, seconds: float) -> None:
        """Every API call fails with 'No IPC connection' for ``seconds`` of SIM time."""
        with self._lock:
            self._faults.disconnect(self._clock.now(), seconds)

    def fault_latency(self, seconds: float) -> None:
        """Add ``seconds`` of wall-clock delay to every API call (0 clears)."""
        with self._lock:
            self._faults.set_latency(seconds)

    def fault_reject_next(self, count: int, retcode: int) -> None:
        """Reject the next ``count`` order_send calls with ``retcode``, without executing them."""
        with self._lock:
            self._faults.reject_next(count, retcode)

    def fault_timeout_after_execute(self, count: int = 1, delay: float = 0.0) -> None:
        """The next ``count`` order_send calls execute, wait ``delay`` wall seconds, then fail (-10005)."""
        with self._lock:
            self._faults.timeout_after_execute(count, delay)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = Faults()

    def control(self, command: str, params: dict | None = None) -> dict:
        """Dispatch one allowlisted test hook by name; returns plain data (for the bridge server)."""
        if command not in CONTROL_COMMANDS:
            raise ValueError(
                f"unknown control command {command!r}; allowed: {', '.join(sorted(CONTROL_COMMANDS))}"
            )
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise ValueError(f"control params must be a mapping, got {type(params).__name__}")
        method = getattr(self, command)
        try:
            inspect.signature(method).bind(**params)
        except TypeError as exc:
            raise ValueError(f"bad parameters for {command}: {exc}") from None
        method(**params)
        now = self.now()
        return {"command": command, "now": now.isoformat(), "epoch": now.timestamp()}


def _price_points(spec, price) -> int:
    if not (_is_plain_int(price) or isinstance(price, float)) or not math.isfinite(price):
        raise ValueError(f"a price must be a finite number, got {price!r}")
    return round(Decimal(str(price)) * spec.scale)


def _check_account_arguments(seed, login, password, balance, leverage, currency) -> Decimal:
    """Validate the constructor's account arguments; returns the opening balance."""
    if not _is_plain_int(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if currency != money.ACCOUNT_CURRENCY:
        raise ValueError(f"only {money.ACCOUNT_CURRENCY} accounts are simulated, got {currency!r}")
    if not _is_plain_int(leverage) or leverage <= 0:
        raise ValueError(f"leverage must be a positive integer, got {leverage!r}")
    if not _is_plain_int(login) or login <= 0:
        raise ValueError(f"login must be a positive integer, got {login!r}")
    if password is not None and not isinstance(password, str):
        raise ValueError("password must be a string or None")
    try:
        opening_balance = money.cents(Decimal(str(balance)))
    except ArithmeticError:
        raise ValueError(f"balance must be a number, got {balance!r}") from None
    if opening_balance < 0:
        raise ValueError(f"balance must not be negative, got {balance!r}")
    return opening_balance


def _start_epoch(start: datetime | None) -> float:
    if start is None:
        return DEFAULT_START.timestamp()
    if not isinstance(start, datetime):
        raise ValueError(f"start must be a datetime, got {start!r}")
    epoch = to_epoch(start)
    if not MIN_EPOCH <= epoch < MAX_EPOCH:
        raise ValueError(f"start must be between 2000 and 2100, got {start!r}")
    return epoch


def _restore(state: dict, state_file: str, seed: int, login: int) -> tuple[float, Books, int, int]:
    """Clock, books and market-time cursors from a saved state (which must be this account's)."""
    if state.get("seed") != seed or state.get("login") != login:
        raise ValueError(
            f"sim state file {state_file} belongs to seed {state.get('seed')} / login {state.get('login')}, "
            f"not seed {seed} / login {login}: use those or remove the file"
        )
    try:
        return (
            float(state["clock"]),
            Books.from_dict(state["books"]),
            int(state["synced_k"]),
            int(state["rolled_day"]),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"sim state file {state_file} is incomplete or corrupt: {exc!r}") from None
