"""How each MetaTrader5 function takes its arguments (wheel 5.0.6231), as one table, and the binder.

The real package is a C extension with three calling forms (tests/fixtures/mt5-api-5.0.6231.json):
"no arguments", "positional only" and "positional and keyword". Its failures come in two shapes,
and code that works against the simulator must meet both:

- Python-level misuse raises TypeError, as any builtin does: arguments to a no-argument call,
  keywords to a positional-only call (``order_calc_profit() takes no keyword arguments`` is
  what the real package says), a wrong number of positional arguments, an unknown keyword.
- Values the package itself checks return the call's failure value (None or False) and set
  ``last_error()`` to ``(-2, 'Invalid "volume" argument')`` (the name is the argument's or the
  request field's): an int where a float is expected, a float where an int is, None, a str for
  a symbol that is not one. Unnamed arguments to the keyword-only filters (positions_get,
  orders_get, symbols_get, the ticket=/position= forms of history_*_get) give
  ``(-2, 'Unnamed arguments not allowed')``.

Where the JSON says nothing (the exact TypeError texts, a missing required argument of a
"positional and keyword" call), we chose CPython's builtin wording and the -2 refusal; the
conformance test pins both. This module is stdlib-only: the bridge server on a bare Windows
Python applies the same table to decide how named arguments from the wire become a call.
"""

import dataclasses
import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

from mt5bridge.constants import RES_E_INVALID_PARAMS

NO_ARGUMENTS = "no arguments"
POSITIONAL_ONLY = "positional only"
POSITIONAL_AND_KEYWORD = "positional and keyword"

#: How a parameter may be passed (inside a "positional and keyword" call).
POS, KW, ANY = "positional", "keyword", "either"

#: Value kinds: the Python types the package accepts for each.
STR, INT, FLOAT, BOOL, DATE, REQUEST = "str", "int", "float", "bool", "date", "request"

UNNAMED = (RES_E_INVALID_PARAMS, "Unnamed arguments not allowed")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    how: str = POS
    required: bool = True


@dataclass(frozen=True)
class Signature:
    name: str
    form: str
    params: tuple[Param, ...] = ()
    failure: Any = None  # what the call returns when it fails: None, or False for bool calls
    #: bind()'s memo of the call shapes it accepted: (len(args), *keyword names) -> _Shape.
    shapes: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _pos(name: str, kind: str, required: bool = True) -> Param:
    return Param(name, kind, POS, required)


def _kw(name: str, kind: str) -> Param:
    return Param(name, kind, KW, False)


def _sig(name: str, form: str, *params: Param, failure: Any = None) -> Signature:
    return Signature(name, form, params, failure)


_SYMBOL = _pos("symbol", STR)
_FILTERS = (_kw("symbol", STR), _kw("group", STR), _kw("ticket", INT))
_HISTORY = (
    _pos("date_from", DATE, False),
    _pos("date_to", DATE, False),
    _kw("group", STR),
    _kw("ticket", INT),
    _kw("position", INT),
)

#: Every function of the package, in the package's order.
SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        _sig(
            "initialize",
            POSITIONAL_AND_KEYWORD,
            Param("path", STR, ANY, False),
            _kw("login", INT),
            _kw("password", STR),
            _kw("server", STR),
            _kw("timeout", INT),
            _kw("portable", BOOL),
            failure=False,
        ),
        _sig("shutdown", NO_ARGUMENTS),
        _sig(
            "login",
            POSITIONAL_AND_KEYWORD,
            Param("login", INT, ANY, True),
            _kw("password", STR),
            _kw("server", STR),
            _kw("timeout", INT),
            failure=False,
        ),
        _sig("version", NO_ARGUMENTS),
        _sig("terminal_info", NO_ARGUMENTS),
        _sig("account_info", NO_ARGUMENTS),
        _sig(
            "copy_ticks_from",
            POSITIONAL_ONLY,
            _SYMBOL,
            _pos("date_from", DATE),
            _pos("count", INT),
            _pos("flags", INT),
        ),
        _sig(
            "copy_ticks_range",
            POSITIONAL_ONLY,
            _SYMBOL,
            _pos("date_from", DATE),
            _pos("date_to", DATE),
            _pos("flags", INT),
        ),
        _sig(
            "copy_rates_from",
            POSITIONAL_ONLY,
            _SYMBOL,
            _pos("timeframe", INT),
            _pos("date_from", DATE),
            _pos("count", INT),
        ),
        _sig(
            "copy_rates_from_pos",
            POSITIONAL_ONLY,
            _SYMBOL,
            _pos("timeframe", INT),
            _pos("start_pos", INT),
            _pos("count", INT),
        ),
        _sig(
            "copy_rates_range",
            POSITIONAL_ONLY,
            _SYMBOL,
            _pos("timeframe", INT),
            _pos("date_from", DATE),
            _pos("date_to", DATE),
        ),
        _sig("positions_total", NO_ARGUMENTS),
        _sig("positions_get", POSITIONAL_AND_KEYWORD, *_FILTERS),
        _sig("orders_total", NO_ARGUMENTS),
        _sig("orders_get", POSITIONAL_AND_KEYWORD, *_FILTERS),
        _sig("history_orders_total", POSITIONAL_ONLY, _pos("date_from", DATE), _pos("date_to", DATE)),
        _sig("history_orders_get", POSITIONAL_AND_KEYWORD, *_HISTORY),
        _sig("history_deals_total", POSITIONAL_ONLY, _pos("date_from", DATE), _pos("date_to", DATE)),
        _sig("history_deals_get", POSITIONAL_AND_KEYWORD, *_HISTORY),
        _sig("order_check", POSITIONAL_AND_KEYWORD, Param("request", REQUEST, ANY, True)),
        _sig("order_send", POSITIONAL_AND_KEYWORD, Param("request", REQUEST, ANY, True)),
        _sig(
            "order_calc_margin",
            POSITIONAL_ONLY,
            _pos("action", INT),
            _SYMBOL,
            _pos("volume", FLOAT),
            _pos("price", FLOAT),
        ),
        _sig(
            "order_calc_profit",
            POSITIONAL_ONLY,
            _pos("action", INT),
            _SYMBOL,
            _pos("volume", FLOAT),
            _pos("price_open", FLOAT),
            _pos("price_close", FLOAT),
        ),
        _sig("symbol_info", POSITIONAL_ONLY, _SYMBOL),
        _sig("symbol_info_tick", POSITIONAL_ONLY, _SYMBOL),
        _sig("symbol_select", POSITIONAL_ONLY, _SYMBOL, _pos("enable", BOOL, False), failure=False),
        _sig("symbols_total", NO_ARGUMENTS),
        _sig("symbols_get", POSITIONAL_AND_KEYWORD, _kw("group", STR)),
        _sig("market_book_add", POSITIONAL_ONLY, _SYMBOL, failure=False),
        _sig("market_book_release", POSITIONAL_ONLY, _SYMBOL, failure=False),
        _sig("market_book_get", POSITIONAL_ONLY, _SYMBOL),
        _sig("last_error", NO_ARGUMENTS),
    )
}

#: order_send/order_check request fields and the kind each value must have.
REQUEST_FIELDS: dict[str, str] = {
    "action": INT,
    "magic": INT,
    "order": INT,
    "symbol": STR,
    "volume": FLOAT,
    "price": FLOAT,
    "stoplimit": FLOAT,
    "sl": FLOAT,
    "tp": FLOAT,
    "deviation": INT,
    "type": INT,
    "type_filling": INT,
    "type_time": INT,
    "expiration": INT,
    "comment": STR,
    "position": INT,
    "position_by": INT,
}


class Refused(Exception):
    """A value the package refuses: the call returns its failure value, last_error() is ``error``."""

    def __init__(self, error: tuple[int, str]):
        super().__init__(error[1])
        self.error = error


def invalid(name: str) -> tuple[int, str]:
    return (RES_E_INVALID_PARAMS, f'Invalid "{name}" argument')


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: The check of each value kind (no coercion: 1 is not a float, True is not an int).
_KIND_CHECKS = {
    STR: lambda value: isinstance(value, str),
    INT: _is_int,
    FLOAT: lambda value: isinstance(value, float),
    BOOL: lambda value: isinstance(value, bool),
    DATE: lambda value: isinstance(value, dt.datetime) or _is_int(value),
    REQUEST: lambda value: isinstance(value, dict),
}


def is_kind(kind: str, value: Any) -> bool:
    """Whether ``value`` is what the package accepts for ``kind`` (no coercion: 1 is not a float)."""
    return _kind_check(kind)(value)


def _kind_check(kind: str):
    check = _KIND_CHECKS.get(kind)
    if check is None:
        raise ValueError(f"unknown kind {kind!r}")
    return check


def check_request(request: dict) -> None:
    """Known request fields must hold the right kind; unknown ones are the terminal's business."""
    for field, kind in REQUEST_FIELDS.items():
        if field in request and not is_kind(kind, request[field]):
            raise Refused(invalid(field))


def _count_error(sig: Signature, given: int) -> TypeError:
    required = sum(p.required for p in sig.params)
    total = len(sig.params)
    if required == total:
        bound, amount = "exactly", total
    elif given < required:
        bound, amount = "at least", required
    else:
        bound, amount = "at most", total
    plural = "" if amount == 1 else "s"
    return TypeError(f"{sig.name}() takes {bound} {amount} argument{plural} ({given} given)")


@dataclass(frozen=True)
class _Shape:
    """What bind() learnt from one accepted call shape: the names of the positional arguments and,
    in the order of the bound mapping, each bound argument's name, value check and kind."""

    positional: tuple[str, ...]
    checks: tuple[tuple[str, Any, str], ...]


def _shape(sig: Signature, given: int, names: tuple[str, ...]) -> _Shape:
    """The argument rules that depend only on the call's shape (how many positional arguments,
    which keywords in which order), never on the values: raises as the package does, or says
    where each argument goes. A pure function of its arguments, so bind() memoises it."""
    if sig.form == NO_ARGUMENTS:
        if names:
            raise TypeError(f"{sig.name}() takes no keyword arguments")
        if given:
            raise TypeError(f"{sig.name}() takes no arguments ({given} given)")
        return _Shape((), ())
    if sig.form == POSITIONAL_ONLY:
        if names:
            raise TypeError(f"{sig.name}() takes no keyword arguments")
        required = sum(p.required for p in sig.params)
        if not required <= given <= len(sig.params):
            raise _count_error(sig, given)
        order = sig.names[:given]
    else:
        positional = [p for p in sig.params if p.how in (POS, ANY)]
        if given > len(positional):
            raise Refused(UNNAMED)
        order = tuple(p.name for p in positional[:given])
        for name in names:
            param = sig.param(name)
            if param is None or param.how == POS:
                raise TypeError(f"'{name}' is an invalid keyword argument for {sig.name}()")
            if name in order:
                raise TypeError(f"argument for {sig.name}() given by name ('{name}') and position")
            order += (name,)
        for param in sig.params:
            if param.required and param.name not in order:
                raise Refused(invalid(param.name))
    kinds = [(name, sig.param(name).kind) for name in order]
    return _Shape(order[:given], tuple((name, _kind_check(kind), kind) for name, kind in kinds))


def bind(sig: Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Map a call onto ``sig``'s parameters, as the package does.

    Returns {name: value} for the arguments given; raises TypeError for Python-level misuse
    and Refused for what the package reports through last_error(). Shape rules (``_shape``) are
    memoised per signature, only for shapes they accepted; every value is checked on every call.
    Why: the bot's every broker call passes here, and re-deriving the same shape from the table
    was most of the simulator's per-call cost.
    """
    key = (len(args), *kwargs)
    shape = sig.shapes.get(key)
    if shape is None:
        shape = sig.shapes[key] = _shape(sig, len(args), key[1:])
    bound = dict(zip(shape.positional, args, strict=True))
    if kwargs:
        bound.update(kwargs)
    for (name, check, kind), value in zip(shape.checks, bound.values(), strict=True):
        if not check(value):
            raise Refused(invalid(name))
        if kind == REQUEST:
            check_request(value)
    return bound


#: The exact types of each value kind's plainest values: a value of one of these types always
#: passes its kind's check (subclasses, e.g. of str, are left to the check itself).
_PLAIN_TYPES = {
    STR: (str,),
    INT: (int,),
    FLOAT: (float,),
    BOOL: (bool,),
    DATE: (dt.datetime, int),
}


def plain_positional_types(sig: Signature) -> frozenset[tuple[type, ...]]:
    """The exact argument types of the positional calls (no keywords) that ``bind`` accepts
    whatever the values: ``tuple(map(type, args)) in`` this set means bind(sig, args, {}) binds
    every argument, in order, and refuses nothing. Empty for the calls that take a request.

    Why (issue 16): the in-process stand-in (``mt5bridge.sim.mt5module``) answers the bot's every
    broker call; one C-level set lookup replaces the binder's Python checks for the calls whose
    arguments are plainly good, and everything else still goes through ``bind``.
    """
    if sig.form == NO_ARGUMENTS:
        return frozenset({()})
    if any(p.kind == REQUEST for p in sig.params):
        return frozenset()
    # As _shape: positional arguments fill the parameters that may be positional, in order.
    usable = tuple(p for p in sig.params if sig.form == POSITIONAL_ONLY or p.how in (POS, ANY))
    shapes = set()
    for given in range(len(usable) + 1):
        named = {p.name for p in usable[:given]}
        if all(p.name in named for p in sig.params if p.required):
            shapes.update(itertools.product(*(_PLAIN_TYPES[p.kind] for p in usable[:given])))
    return frozenset(shapes)


def call_shape(sig: Signature, bound: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """(args, kwargs) that make the call ``bound`` describes: positional parameters in order."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in sig.params:
        if param.name not in bound:
            continue
        if param.how == KW:
            kwargs[param.name] = bound[param.name]
        elif len(args) == [p.name for p in sig.params if p.how != KW].index(param.name):
            args.append(bound[param.name])
        else:
            kwargs[param.name] = bound[param.name]  # a gap before it: only a keyword can say which
    return tuple(args), kwargs
