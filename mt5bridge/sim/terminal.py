"""SimTerminal: a stand-in for the MetaTrader5 package, backed by a seeded simulated broker.

Same method names, arguments and result shapes as the real package, including its failure
style: calls never raise on bad input, they return None (or False) and set ``last_error()``.
Everything runs on the standard library and numpy, because the bridge server that serves it runs
on Windows Python next to a real terminal with nothing else installed.

Test hooks (``advance``, ``set_price``, ``fault_*``, ``control``) are separate from the MT5 API
and are never affected by the injected faults.
"""

import logging
import math
import secrets
import threading
import time
from datetime import UTC, datetime

import numpy as np

from mt5bridge.constants import (
    TIMEFRAME_SECONDS,
)

from . import marketcalls
from .accountsetup import check_account_arguments, restore, start_epoch
from .apicall import AUTH_FAILED as _AUTH_FAILED
from .apicall import INVALID_PARAMS as _INVALID_PARAMS
from .apicall import NOT_FOUND as _NOT_FOUND
from .apicall import SUCCESS as _SUCCESS
from .apicall import ApiError as _ApiError
from .apicall import api as _api
from .apicall import is_plain_int as _is_plain_int
from .apicall import positive_int as _positive_int
from .apicall import symbol_filter as _symbol_filter
from .book import Books
from .books_calls import BooksCalls
from .broker import Broker
from .clock import SimClock
from .faults import Faults
from .hooks import CONTROL_COMMANDS, SimHooks, TradingState
from .marketbook import BookSubscriptions
from .persistence import load_state, save_state
from .profiles import DEFAULT as DEFAULT_PROFILE
from .profiles import load as load_profile
from .quotes import Quotes
from .records import AccountInfo, TerminalInfo
from .trading_calls import TradingCalls
from .tradingtime import tick_epoch, tick_index, trading_day
from .views import symbol_view, tick_view

log = logging.getLogger(__name__)

__all__ = ["CONTROL_COMMANDS", "SimTerminal"]

VERSION = (500, 5430, "14 Nov 2025")
MAXBARS = 100_000
CLOCK_SAVE_INTERVAL = 1.0  # wall seconds between saves of a clock that merely moved


class SimTerminal(TradingCalls, BooksCalls, SimHooks):
    """A simulated MetaTrader 5 terminal on an account of the broker ``profile`` (default: demo).

    ``leverage``, ``server`` and ``currency`` default to the profile's; test hooks live in ``SimHooks``.
    """

    def __init__(
        self,
        seed: int = 42,
        speed: float = 1.0,
        stepped: bool = False,
        start: datetime | None = None,
        state_file: str | None = None,
        login: int = 5001234,
        password: str | None = None,
        server: str | None = None,
        balance=10000,
        leverage: int | None = None,
        currency: str | None = None,
        profile: str = DEFAULT_PROFILE,
    ):
        self._profile = load_profile(profile)
        account = self._profile.account
        leverage = account.leverage if leverage is None else leverage
        currency = account.currency if currency is None else currency
        opening_balance = check_account_arguments(
            seed, login, password, balance, leverage, currency, account.currency
        )
        self._symbols = self._profile.symbols
        self._seed = seed
        self._login = login
        self._password = password
        self._server = account.server if server is None else server
        self._leverage = leverage
        self._state_file = state_file
        self._lock = threading.RLock()
        self._faults = Faults()
        self._trading = TradingState()
        self._quotes = Quotes(seed, self._symbols)
        self._books_open = BookSubscriptions()
        self._initialized = False
        self._last_error = _SUCCESS
        self._saved_at = -math.inf
        self._server_time = account.server_time

        state = load_state(state_file) if state_file else None
        if state is not None:
            start_at, books, synced_k, rolled_day = restore(state, state_file, seed, login, self._profile.name)
            watched = state.get("market_watch")
            log.info("sim state restored from %s at %s", state_file, datetime.fromtimestamp(start_at, UTC))
        else:
            start_at = start_epoch(start)
            books = Books(balance=opening_balance)
            synced_k = tick_index(self._server_time.to_server(start_at))
            rolled_day = trading_day(synced_k) - 1  # the rollover before the start is history
            watched = None
        if watched is None:
            watched = [name for name, spec in self._symbols.items() if spec.market_watch]
        self._market_watch = {name for name in watched if name in self._symbols}
        self._clock = SimClock(start_at, speed, stepped)
        self._now = start_at
        self._synced_now: float | None = None  # the clock reading the broker has been brought up to
        self._broker = Broker(books, self._quotes, account, seed, synced_k, rolled_day, leverage)
        with self._lock:
            self._sync()
            self._persist(force=state is None)

    @property
    def profile(self) -> str:
        """Name of the broker profile this terminal plays."""
        return self._profile.name

    # ================================================================ internals
    def _sync(self) -> None:
        """Bring the broker up to the current sim time (callers hold the lock).

        ``_now`` is true UTC (faults, the clock); ``_server_now`` the trade server's wall clock,
        which every time the API reports and the whole market (sessions, rollovers) runs on.
        """
        now = self._now = self._clock.now()
        if now == self._synced_now:
            # A stepped clock stands still between steps: same server time, same k, and market time
            # has acted on the books up to it already (only advance_to moves the broker's synced_k
            # and rolled_day). What calls since may have changed is the books: the margin call.
            self._broker.update_margin_call(self._k)
            return
        self._server_now = self._server_time.to_server(now)
        self._k = tick_index(self._server_now)
        self._synced_now = None  # until market time has caught up: a failure midway is retried
        self._broker.advance_to(self._server_now, self._k)
        self._synced_now = now

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
                "profile": self._profile.name,
                "clock": self._now,
                "synced_k": broker.synced_k,
                "rolled_day": broker.rolled_day,
                "market_watch": sorted(self._market_watch),
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

    def _known_symbol(self, symbol) -> str:
        if not isinstance(symbol, str) or symbol not in self._symbols:
            raise _ApiError(_NOT_FOUND)
        return symbol

    def _symbol_view(self, name: str):
        spec = self._symbols[name]
        bid, ask = self._quote(name)
        converter = self._broker.converter
        rates = (
            converter.profit_rate(spec, self._k, spec.to_price(bid)),
            converter.profit_rate(spec, self._k, spec.to_price(ask)),
        )
        moment = tick_epoch(self._quotes.quote_k(name, self._k))
        return symbol_view(spec, moment, bid, ask, name in self._market_watch, rates)

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

    def set_last_error(self, error: tuple[int, str]) -> None:
        """For the module-shaped stand-in: it refuses bad arguments before a call reaches us."""
        with self._lock:
            self._last_error = error

    @_api()
    def terminal_info(self) -> TerminalInfo:
        return TerminalInfo(
            community_account=False,
            community_connection=False,
            connected=True,
            dlls_allowed=False,
            trade_allowed=self._trading.algo_trading,
            tradeapi_disabled=not self._trading.tradeapi,
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
            company=self._profile.account.company,
            name="Tradewatch Simulated Terminal",
            language="English",
            path="C:\\Program Files\\Tradewatch Sim",
            data_path="C:\\Users\\sim\\AppData\\Roaming\\MetaQuotes\\Terminal\\SIM",
            commondata_path="C:\\Users\\sim\\AppData\\Roaming\\MetaQuotes\\Terminal\\Common",
        )

    @_api()
    def account_info(self) -> AccountInfo:
        state = self._broker.account(self._k)
        account = self._profile.account
        return AccountInfo(
            login=self._login,
            trade_mode=account.trade_mode,
            leverage=self._leverage,
            limit_orders=200,
            margin_so_mode=0,
            trade_allowed=self._trading.account_trading,
            trade_expert=self._trading.expert_trading,
            margin_mode=account.margin_mode,
            currency_digits=2,
            fifo_close=False,
            balance=float(state.balance),
            credit=0.0,
            profit=float(state.profit),
            equity=float(state.equity),
            margin=float(state.margin),
            margin_free=float(state.margin_free),
            margin_level=float(state.margin_level),
            margin_so_call=account.margin_call,
            margin_so_so=account.stop_out,
            margin_initial=0.0,
            margin_maintenance=0.0,
            assets=0.0,
            liabilities=0.0,
            commission_blocked=0.0,
            name=account.name,
            server=self._server,
            currency=account.currency,
            company=account.company,
        )

    # ================================================================ market data
    @_api()
    def symbols_total(self) -> int:
        return len(self._symbols)

    @_api()
    def symbols_get(self, group=None) -> tuple:
        wanted = _symbol_filter(group)
        return tuple(self._symbol_view(name) for name in self._symbols if wanted(name))

    @_api()
    def symbol_info(self, symbol):
        return self._symbol_view(self._known_symbol(symbol))

    @_api(failure=False)
    def symbol_select(self, symbol, enable=True) -> bool:
        """Add a symbol to Market Watch (or remove it: refused while it has open positions)."""
        symbol = self._known_symbol(symbol)
        if not isinstance(enable, bool):
            raise _ApiError(_INVALID_PARAMS)
        if enable:
            self._market_watch.add(symbol)
        elif any(p.symbol == symbol for p in self._broker.books.positions.values()):
            raise _ApiError(_INVALID_PARAMS)
        else:
            self._market_watch.discard(symbol)
        self._broker.dirty = True
        return True

    @_api()
    def symbol_info_tick(self, symbol):
        """None for a symbol outside Market Watch, as the real terminal answers."""
        symbol = self._known_symbol(symbol)
        if symbol not in self._market_watch:
            raise _ApiError(_NOT_FOUND)
        moment = tick_epoch(self._quotes.quote_k(symbol, self._k))  # frozen during a quote break
        return tick_view(self._symbols[symbol], moment, *self._quote(symbol))

    @_api()
    def copy_rates_from_pos(self, symbol, timeframe, start_pos, count) -> np.ndarray:
        symbol = self._known_symbol(symbol)
        seconds = TIMEFRAME_SECONDS.get(timeframe) if _is_plain_int(timeframe) else None
        if seconds is None:
            raise _ApiError(_INVALID_PARAMS)
        start_pos, count = _positive_int(start_pos, 0), _positive_int(count, 1)
        count = min(count, MAXBARS - start_pos)
        if count <= 0:
            raise _ApiError(_NOT_FOUND)
        last = self._k // seconds - start_pos
        return self._quotes.path(symbol).bars(seconds, last - count + 1, last, self._k)

    # ---- i11-api: the calls the stand-in adds (logic and checks in marketcalls)
    @_api()
    def market_call(self, name: str, *args):
        """copy_rates_from/range, copy_ticks_from/range, market_book_add/release/get."""
        market = marketcalls.Market(self._quotes, self._k, self._symbols, MAXBARS, self._books_open)
        try:
            return marketcalls.run(name, market, args)
        except marketcalls.Unavailable as exc:
            raise _ApiError(exc.error) from None
