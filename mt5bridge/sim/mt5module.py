"""A stand-in for the MetaTrader5 module, with the real package's calling conventions.

``import mt5bridge.sim.mt5module as mt5`` works like ``import MetaTrader5 as mt5``: the same 32
functions (each taking its arguments the way the package does, see ``mt5bridge.signatures``), the
223 constants and nothing else, over a simulated terminal. ``SimTerminal`` stays the lenient
engine underneath (tests drive its clock and faults); this layer is the strict front the bot and
the bridge talk to, so a call the real package would refuse (an int volume, keywords to
``copy_rates_from_pos``, a positional symbol to ``positions_get``) fails here the same way:
TypeError, or the failure value with ``last_error()`` == ``(-2, 'Invalid "volume" argument')``.

Two ways in:
- ``Mt5Module(terminal)``: an object with those functions as methods, over a given terminal
  (the bridge server and the bot's sim gateway use it);
- the module itself: its functions act on a default ``SimTerminal`` created on first use, or on
  the one given to ``attach(terminal)``.
Datetime arguments are converted with ``.timestamp()`` (naive = local time), as the package does.
"""

import datetime as dt
import threading
from typing import Any

from mt5bridge import constants as _constants
from mt5bridge import signatures as _signatures

from .marketcalls import CALLS as _MARKET_CALLS
from .terminal import SimTerminal

# Only the package's names are public here (constants are checked against it): imports are private.


def _epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, dt.datetime) else value


class _Route:
    """How ``Mt5Module._invoke`` hands one function's bound arguments to the terminal, worked out
    once per function from its signature instead of on every call."""

    def __init__(self, sig: _signatures.Signature):
        self.sig = sig
        self.dates = tuple(p.name for p in sig.params if p.kind == _signatures.DATE)
        self.names = tuple(p.name for p in sig.params)  # every parameter, in the package's order
        self.unnamed = tuple(p.name for p in sig.params if p.how != _signatures.KW)
        self.market = sig.name in _MARKET_CALLS
        # Bound values in order are the terminal method's positional arguments: no keywords, no
        # dates to convert, no special routing.
        self.direct = (
            sig.form != _signatures.POSITIONAL_AND_KEYWORD
            and not self.dates
            and not self.market
            and sig.name not in ("initialize", "order_send", "order_check")
        )
        # The fast way in (see _method): argument types that bind() accepts whatever the values,
        # for the calls whose bound arguments go to the terminal method positionally, in order.
        routed_positionally = not self.market and sig.name != "initialize"
        self.plain = _signatures.plain_positional_types(sig) if routed_positionally else frozenset()
        positional = [p for p in sig.params if p.how != _signatures.KW]  # as self.unnamed
        self.date_positions = frozenset(i for i, p in enumerate(positional) if p.kind == _signatures.DATE)


_ROUTES = {name: _Route(sig) for name, sig in _signatures.SIGNATURES.items()}


class Mt5Module:
    """The MetaTrader5 functions over one simulated terminal."""

    def __init__(self, terminal: SimTerminal):
        self.terminal = terminal

    def _invoke(self, name: str, args: tuple, kwargs: dict) -> Any:
        route = _ROUTES[name]
        try:
            bound = _signatures.bind(route.sig, args, kwargs)
        except _signatures.Refused as refused:
            self.terminal.set_last_error(refused.error)
            return route.sig.failure
        if route.direct:  # bind() kept the arguments' order; none is a keyword
            return getattr(self.terminal, name)(*bound.values())
        for date in route.dates:
            if date in bound:
                bound[date] = _epoch(bound[date])
        if route.market:  # added by the stand-in: one hook into the terminal
            positional = [bound[n] for n in route.names if n in bound]
            result = self.terminal.market_call(name, *positional)
            return route.sig.failure if result is None else result
        method = getattr(self.terminal, name)
        if name == "initialize":
            return method(bound.pop("path", None), **bound)
        if name in ("order_send", "order_check"):
            return method(bound["request"])
        positional = [bound.pop(n) for n in route.unnamed if n in bound]
        return method(*positional, **bound)

    def sim_clock(self) -> dict:
        """SIM ONLY, not in the MetaTrader5 package: the simulator's UTC now and speed.

        See ``SimTerminal.sim_clock``: the bot's broker clock reads it instead of the wall clock.
        """
        return self.terminal.sim_clock()

    def control(self, command: str, params: dict | None = None) -> dict:
        """The simulator's test hooks (bridge ``sim_control``); not part of the MetaTrader5 API."""
        return self.terminal.control(command, params)


def _method(name: str):
    route = _ROUTES[name]
    plain, dates = route.plain, route.date_positions

    def call(self, *args, **kwargs):
        # Plainly good positional arguments (exact types bind() accepts whatever their values)
        # bind to the parameters in order: the terminal method gets them as they are, dates as
        # epochs, exactly as _invoke would pass them. Anything else goes the full way, which
        # refuses as the package does. Why: the bot's every broker call passes here (issue 16).
        if not kwargs and tuple(map(type, args)) in plain:
            if dates:
                args = tuple(_epoch(value) if i in dates else value for i, value in enumerate(args))
            return getattr(self.terminal, name)(*args)
        return self._invoke(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"MetaTrader5.{name}, with the package's argument rules."
    return call


for _name in _signatures.SIGNATURES:
    setattr(Mt5Module, _name, _method(_name))


# --- the module-level API: functions over a default terminal ------------------------------------

_lock = threading.Lock()
_current: Mt5Module | None = None


def attach(terminal: SimTerminal) -> None:
    """Make the module functions act on ``terminal`` from now on."""
    global _current
    with _lock:
        _current = Mt5Module(terminal)


def _api() -> Mt5Module:
    global _current
    with _lock:
        if _current is None:
            _current = Mt5Module(SimTerminal())
        return _current


def _function(name: str):
    def call(*args, **kwargs):
        return _api()._invoke(name, args, kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"MetaTrader5.{name} over the attached simulated terminal."
    return call


globals().update({name: _function(name) for name in _signatures.SIGNATURES})
globals().update(_constants.PACKAGE_CONSTANTS)  # the package's constants, and no others
