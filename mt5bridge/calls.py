"""The bridge's allowlist: how the JSON arguments of each exposed call become one backend call.

The exposed surface is every function of the MetaTrader5 package (``mt5bridge.signatures``) plus
``sim_control``. A call arrives as a name and a JSON object, either the call as the client made it,
``{"args": [...], "kwargs": {...}}``, or its arguments by name (``{"symbol": "EURUSD"}``: the
positional ones are put back in their order). Two layers of checks follow, in this order:

1. Transport safety, here: only plain scalars (finite numbers, strings of bounded length, bools,
   null) or, for order_send/order_check, a request object whose field names are the package's.
   Anything else is refused with ``bad_request`` before the terminal sees it.
2. The package's own argument rules, by the backend: the real MetaTrader5 module, or the
   stand-in (``mt5bridge.sim.mt5module``) that applies the same table. A wrong value type comes
   back as the package reports it (None and ``last_error()`` (-2, 'Invalid "volume" argument')),
   so code behaves the same through the bridge as in-process. The call shapes Python itself would
   refuse (keywords to a positional-only call...) are refused here, before the backend, with kind
   ``type_error``: the client raises them as TypeError, as the package does.

Nothing is ever looked up by a client-supplied name outside ``CALLS``. Stdlib only (Windows).
"""

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from mt5bridge.signatures import (
    DATE,
    KW,
    NO_ARGUMENTS,
    REQUEST_FIELDS,
    SIGNATURES,
    Refused,
    Signature,
    bind,
    call_shape,
)

MAX_TEXT_CHARS = 256
MAX_PATH_CHARS = 1024
_SCALARS = (str, int, float, bool, type(None))


class CallRefused(Exception):
    """A call rejected before reaching the terminal (unknown name, unsafe arguments)."""

    kind = "bad_request"


class CallShapeError(CallRefused):
    """The call's shape is one Python refuses for the real package (the client raises TypeError)."""

    kind = "type_error"


class Arguments:
    """The decoded JSON arguments of ``sim_control``, read through strict typed getters.

    Strict means: a str is a str, an object is an object; any argument nobody asked for is an
    error (finish() checks), so a typo or an injected extra key never passes silently.
    """

    def __init__(self, call: str, raw: dict[str, Any]) -> None:
        self._call = call
        self._raw = raw
        self._used: set[str] = set()

    def _get(self, key: str, required: bool) -> Any:
        self._used.add(key)
        value = self._raw.get(key)
        if value is None and required:
            raise CallRefused(f"{self._call}: missing argument {key!r}")
        return value

    def text(self, key: str, *, required: bool = False, max_chars: int = MAX_TEXT_CHARS) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if type(value) is not str:
            raise CallRefused(f"{self._call}: {key} must be a string, got {type(value).__name__}")
        if len(value) > max_chars:
            raise CallRefused(f"{self._call}: {key} is longer than {max_chars} characters")
        return value

    def plain_object(self, key: str) -> dict[str, Any]:
        value = self._get(key, False)
        if value is None:
            return {}
        if type(value) is not dict:
            raise CallRefused(f"{self._call}: {key} must be an object, got {type(value).__name__}")
        return value

    def finish(self) -> None:
        unknown = set(self._raw) - self._used
        if unknown:
            names = ", ".join(repr(name[:40]) for name in sorted(unknown))
            raise CallRefused(f"{self._call}: unexpected argument(s) {names}")


# --- transport safety -------------------------------------------------------------------------


def _safe_scalar(call: str, where: str, value: Any, max_chars: int = MAX_TEXT_CHARS) -> None:
    if type(value) not in _SCALARS:
        raise CallRefused(f"{call}: {where} must be a plain value, got {type(value).__name__}")
    if type(value) is float and not math.isfinite(value):
        raise CallRefused(f"{call}: {where} must be a finite number")
    if type(value) is str and len(value) > max_chars:
        raise CallRefused(f"{call}: {where} is longer than {max_chars} characters")


def _safe_value(call: str, name: str | None, value: Any) -> None:
    where = name or "an unnamed argument"
    if name == "request" and type(value) is dict:
        for field, field_value in value.items():
            if field not in REQUEST_FIELDS:
                raise CallRefused(f"{call}: unknown request field {field[:40]!r}")
            _safe_scalar(call, f"request.{field}", field_value)
        return
    _safe_scalar(call, where, value, MAX_PATH_CHARS if name == "path" else MAX_TEXT_CHARS)


_AS_CALLED = frozenset({"args", "kwargs"})


def _decode(sig: Signature, raw: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    call = sig.name
    if raw and raw.keys() <= _AS_CALLED:
        args, kwargs = raw.get("args", []), raw.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict:
            raise CallRefused(f"{call}: args must be a list and kwargs an object")
        return list(args), dict(kwargs)
    unknown = set(raw) - set(sig.names)
    if unknown:
        names = ", ".join(repr(name[:40]) for name in sorted(unknown))
        raise CallRefused(f"{call}: unexpected argument(s) {names}")
    args, kwargs = call_shape(sig, raw)
    return list(args), kwargs


def _positional_names(sig: Signature) -> tuple[str, ...]:
    return tuple(p.name for p in sig.params if p.how != KW)


#: Per call: the names of its positional parameters, in order, and of its date parameters.
_POSITIONAL = {name: _positional_names(sig) for name, sig in SIGNATURES.items()}
_DATES = {name: frozenset(p.name for p in sig.params if p.kind == DATE) for name, sig in SIGNATURES.items()}


def _positional_name(sig: Signature, index: int) -> str | None:
    positional = _POSITIONAL.get(sig.name) or _positional_names(sig)
    return positional[index] if index < len(positional) else None


def _to_datetime(call: str, name: str, value: Any) -> Any:
    if type(value) is not int:
        return value
    try:
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise CallRefused(f"{call}: {name} is out of range") from None


#: A call made without arguments, as the client sends it: for a call that takes none (terminal_info,
#: account_info, last_error, version - read every cycle) it needs no decoding, checks or binding.
_EMPTY_CALL = {"args": []}


def backend_call(sig: Signature, raw: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) for the backend, after the safety checks and Python's own call-shape rules.

    Dates cross the wire as epoch seconds and reach the backend as UTC-aware datetimes, which
    MetaTrader5 documents as its input and which leave no doubt about the time zone.
    """
    if raw == _EMPTY_CALL and sig.form == NO_ARGUMENTS:
        return (), {}  # what the path below makes of it (nothing to check, bind, or convert), without it
    args, kwargs = _decode(sig, raw)
    call = sig.name
    for index, value in enumerate(args):
        _safe_value(call, _positional_name(sig, index), value)
    for name, value in kwargs.items():
        _safe_value(call, name, value)
    try:
        bound = bind(sig, tuple(args), kwargs)
    except TypeError as exc:
        raise CallShapeError(str(exc)[:300]) from None  # names only, never values
    except Refused:
        return tuple(args), kwargs  # the backend refuses it and sets last_error, as the package does
    dates = _DATES.get(call)
    if dates is None:  # a signature outside the table (tests build their own)
        dates = frozenset(p.name for p in sig.params if p.kind == DATE)
    if dates:
        for index, value in enumerate(args):
            name = _positional_name(sig, index)
            if name in bound and name in dates:
                args[index] = _to_datetime(call, name, value)
        for name, value in kwargs.items():
            if name in dates:
                kwargs[name] = _to_datetime(call, name, value)
    return tuple(args), kwargs


def _api_call(sig: Signature) -> Callable[[Any, dict[str, Any]], Any]:
    def handler(backend: Any, raw: dict[str, Any]) -> Any:
        args, kwargs = backend_call(sig, raw)
        method = getattr(backend, sig.name)  # sig.name is one of the package's literal names
        # Never splat an empty mapping: the real package then refuses positional arguments.
        return method(*args, **kwargs) if kwargs else method(*args)

    handler.__name__ = f"_{sig.name}"
    return handler


def _sim_control(backend: Any, raw: dict[str, Any]) -> Any:
    args = Arguments("sim_control", raw)
    command = args.text("command", required=True, max_chars=64)
    params = args.plain_object("params")
    args.finish()
    return backend.control(command, params)


def _sim_clock(backend: Any, raw: dict[str, Any]) -> Any:
    """Read-only, so not gated like sim_control: a real terminal has no such hook and refuses it."""
    if raw:  # it takes none: any argument is refused (finish)
        Arguments("sim_clock", raw).finish()
    hook = getattr(backend, "sim_clock", None)
    if hook is None:
        raise CallRefused("sim_clock: not a simulated terminal")
    return hook()


#: The complete exposed surface.
CALLS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    **{name: _api_call(sig) for name, sig in SIGNATURES.items()},
    "sim_control": _sim_control,
    "sim_clock": _sim_clock,  # the simulator's UTC now and speed, for the bot's broker clock
}
SIM_ONLY_CALLS = frozenset({"sim_control"})
#: Calls whose arguments may carry credentials: their arguments are never logged.
SECRET_CALLS = frozenset({"initialize", "login"})
