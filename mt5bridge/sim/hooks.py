"""Test hooks of the SimTerminal: not part of the MT5 API and never affected by injected faults.

Time control, pinned prices, injected faults and terminal/account states, plus ``control``,
the allowlisted dispatcher the bridge server exposes.
"""

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from mt5bridge.constants import (
    DEAL_ENTRY_IN,
    DEAL_TYPE_BALANCE,
    TRADE_RETCODE_CLIENT_DISABLES_AT,
    TRADE_RETCODE_SERVER_DISABLES_AT,
    TRADE_RETCODE_TRADE_DISABLED,
)

from .accountsetup import MAX_EPOCH
from .apicall import is_plain_int
from .book import Deal
from .clock import check_seconds
from .faults import Faults

#: Test hooks reachable through ``control`` (the bridge server exposes it; nothing else is).
CONTROL_COMMANDS = frozenset(
    {
        "fault_disconnect",
        "fault_latency",
        "fault_reject_next",
        "fault_timeout_after_execute",
        "clear_faults",
        "set_trading_state",
        "advance",
        "now",
    }
)


@dataclass
class TradingState:
    """Switches a user or a broker can flip: each blocks trading in its own way.

    ``algo_trading``: the terminal's Algo Trading button (off: 10027, ``terminal_info().trade_allowed``);
    ``tradeapi``: the terminal's "disable automatic trading via external Python API" option (off:
    order_send returns None with last_error -8, ``terminal_info().tradeapi_disabled``);
    ``account_trading``: the broker allows trading on the account (off: 10017,
    ``account_info().trade_allowed``); ``expert_trading``: the broker allows experts on the
    account (off: 10026, ``account_info().trade_expert``).
    """

    algo_trading: bool = True
    tradeapi: bool = True
    account_trading: bool = True
    expert_trading: bool = True

    def refusal(self) -> tuple[int, str] | None:
        """(retcode, comment) an order is refused with, or None."""
        if not self.algo_trading:
            return TRADE_RETCODE_CLIENT_DISABLES_AT, "AutoTrading disabled by client"
        if not self.account_trading:
            return TRADE_RETCODE_TRADE_DISABLED, "Trade disabled"
        if not self.expert_trading:
            return TRADE_RETCODE_SERVER_DISABLES_AT, "AutoTrading disabled by server"
        return None


class SimHooks:
    """Mixin of SimTerminal: everything here takes the terminal lock itself."""

    def now(self) -> datetime:
        """Current simulation time (UTC)."""
        return datetime.fromtimestamp(self._clock.now(), UTC)

    def server_now(self) -> datetime:
        """The trade server's wall clock now, as a naive datetime (what MT5 times encode)."""
        with self._lock:
            server = self._profile.account.server_time.to_server(self._clock.now())
        return datetime.fromtimestamp(server, UTC).replace(tzinfo=None)

    def sim_clock(self) -> dict:
        """SIM ONLY, not in the MetaTrader5 package: this simulator's UTC now and its speed.

        An accelerated simulator (speed > 1) runs ahead of the wall clock by design; the bot's
        broker clock (bot.gateway.clock) measures the server's UTC offset against this instead of
        the wall clock. A stepped clock moves only when told: no time passes during a call, so its
        speed counts as 1.
        """
        return {"utc": self._clock.now(), "speed": 1.0 if self._clock.stepped else self._clock.speed}

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

        Positions are first brought up to now on the old prices; SL/TP and the stop-out are then
        checked against the pinned quote, SL/TP filling at the worse of level and quote (a gap).
        """
        spec = self._symbols.get(symbol) if isinstance(symbol, str) else None
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

    def deposit(self, amount, comment: str = "Deposit", deal_type: int = DEAL_TYPE_BALANCE) -> int:
        """TEST ONLY: a balance operation (deposit, or withdrawal when negative; `deal_type` CREDIT,
        CHARGE, BONUS, ...) booked as MT5 books it: a deal with symbol "", volume 0, the amount as
        profit. Returns its deal ticket."""
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
        if not value.is_finite() or value == 0:
            raise ValueError(f"amount must be a non-zero number, got {amount!r}")
        with self._lock:
            self._sync()
            books = self._broker.books
            ticket = books.take_deal_ticket()
            books.deals.append(Deal(
                ticket=ticket, order=0, time_msc=int(self._server_now * 1000), type=deal_type, entry=DEAL_ENTRY_IN,
                magic=0, position_id=0, reason=0, volume=Decimal(0), price=0, commission=Decimal(0),
                swap=Decimal(0), profit=value, symbol="", comment=comment,
            ))
            books.balance += value
            self._broker.dirty = True
            self._persist()
            return ticket

    def margin_state(self) -> dict:
        """Margin-call flag and the levels it is judged by (MT5 shows it only in the terminal UI)."""
        with self._lock:
            self._sync()
            state = self._broker.account(self._k)
            account = self._profile.account
            return {
                "margin_call": self._broker.margin_call,
                "margin_level": float(state.margin_level),
                "margin_so_call": account.margin_call,
                "margin_so_so": account.stop_out,
            }

    def set_trading_state(self, algo_trading: bool | None = None, tradeapi: bool | None = None,
                          account_trading: bool | None = None, expert_trading: bool | None = None) -> None:
        """Flip the AutoTrading button, the Python-API switch, or the account's trade permissions."""
        with self._lock:
            for name, value in (("algo_trading", algo_trading), ("tradeapi", tradeapi),
                                ("account_trading", account_trading), ("expert_trading", expert_trading)):
                if value is None:
                    continue
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false, got {value!r}")
                setattr(self._trading, name, value)

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
    if not (is_plain_int(price) or isinstance(price, float)) or not math.isfinite(price):
        raise ValueError(f"a price must be a finite number, got {price!r}")
    points = round(Decimal(str(price)) * spec.scale)
    if points % spec.tick_size:
        raise ValueError(f"{spec.name} moves in ticks of {spec.to_price(spec.tick_size)}, got {price!r}")
    return points
