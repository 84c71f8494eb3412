"""The MT5 bridge server: a token-guarded rpyc service exposing an explicit allowlist of MT5 calls.

Why not mt5linux: it runs rpyc's classic server, so anyone reaching the port runs arbitrary
code, the server can run code in the client, and arguments are pasted into code strings.
Here the only thing a peer can reach is ``call(name: str, payload: str) -> str``: the name
is looked up in an explicit table of wrappers, each wrapper validates its JSON arguments
before touching the terminal, and the result goes back as JSON (no netrefs, no pickle).
A connection must present the shared token before a single rpyc byte is read.

This module imports only the stdlib, rpyc and mt5bridge, so it runs unchanged on a Windows
Python next to terminal64.exe:  ``python -m mt5bridge.server --backend metatrader5``.
"""

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

import rpyc

from mt5bridge.backends import BACKEND_NAMES, BackendUnavailable, make_backend
from mt5bridge.handshake import AUTH_OK, AUTH_REFUSED, TOKEN_LENGTH, TOKEN_MAX_BYTES  # noqa: F401 - re-exported
from mt5bridge.limits import DEFAULT_LIMITS, CallLimited, Limits, TerminalLock, check_call
from mt5bridge.plain import to_plain
from mt5bridge.tlscli import add_tls_arguments, gen_cert_main, tls_context_or_exit, warn_if_insecure
from mt5bridge.transport import BridgeServer

log = logging.getLogger("mt5bridge.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 18812
DEFAULT_TIMEOUT = 10.0
TOKEN_ENV = "MT5_BRIDGE_TOKEN"
TIMEOUT_ENV = "MT5_BRIDGE_TIMEOUT"

# --- Wire protocol shared with the client ------------------------------------------------

#: The handshake (TLS, token) and the transport live in mt5bridge.handshake / mt5bridge.transport;
#: these names stay importable from here.
MAX_PAYLOAD_CHARS = 1_000_000

#: rpyc settings for both sides: no pickle, no attribute access beyond what we allow
#: explicitly, no custom exception classes, no tracebacks over the wire.
HARDENED_RPYC_CONFIG: dict[str, Any] = {
    "allow_safe_attrs": False,
    "allow_exposed_attrs": False,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_getattr": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "instantiate_oldstyle_exceptions": False,
    "include_local_traceback": False,
    "include_local_version": False,
    "close_catchall": True,
}


def recv_exact(sock: socket.socket, count: int) -> bytes:
    """Read exactly ``count`` bytes or raise EOFError if the peer closes first."""
    chunks = []
    while count > 0:
        chunk = sock.recv(count)
        if not chunk:
            raise EOFError("connection closed during the token handshake")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


# --- Argument validation ------------------------------------------------------------------


class CallRefused(Exception):
    """A call rejected before reaching the terminal (unknown name, bad arguments)."""


#: Fields MetaTrader5's order_send/order_check accept, with the JSON type each must have.
ORDER_REQUEST_FIELDS: dict[str, type] = {
    "action": int,
    "magic": int,
    "order": int,
    "symbol": str,
    "volume": float,
    "price": float,
    "stoplimit": float,
    "sl": float,
    "tp": float,
    "deviation": int,
    "type": int,
    "type_filling": int,
    "type_time": int,
    "expiration": int,
    "comment": str,
    "position": int,
    "position_by": int,
}
MAX_TEXT_CHARS = 256


class Arguments:
    """The decoded JSON arguments of one call, read through strict typed getters.

    Strict means: an int is an int (not a bool, not a float), a str is a str, a number
    is finite; any argument nobody asked for is an error (finish() checks), so a typo or
    an injected extra key never passes silently.
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

    def _refuse(self, key: str, expected: str, value: Any) -> CallRefused:
        return CallRefused(f"{self._call}: {key} must be {expected}, got {type(value).__name__}")

    def text(self, key: str, *, required: bool = False, max_chars: int = MAX_TEXT_CHARS) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if type(value) is not str:
            raise self._refuse(key, "a string", value)
        if len(value) > max_chars:
            raise CallRefused(f"{self._call}: {key} is longer than {max_chars} characters")
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int | None = None) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if type(value) is not int:
            raise self._refuse(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise CallRefused(f"{self._call}: {key} must be >= {minimum}")
        return value

    def flag(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is not None and type(value) is not bool:
            raise self._refuse(key, "a boolean", value)
        return value

    def order_request(self, key: str = "request") -> dict[str, Any]:
        value = self._get(key, True)
        if type(value) is not dict:
            raise self._refuse(key, "an object", value)
        request: dict[str, Any] = {}
        for field, field_value in value.items():
            expected = ORDER_REQUEST_FIELDS.get(field)
            if expected is None:
                raise CallRefused(f"{self._call}: unknown request field {field[:40]!r}")
            request[field] = _checked_request_value(self._call, field, expected, field_value)
        if "action" not in request:
            raise CallRefused(f"{self._call}: request needs an 'action'")
        return request

    def plain_object(self, key: str) -> dict[str, Any]:
        value = self._get(key, False)
        if value is None:
            return {}
        if type(value) is not dict:
            raise self._refuse(key, "an object", value)
        return value

    def finish(self) -> None:
        unknown = set(self._raw) - self._used
        if unknown:
            names = ", ".join(repr(name[:40]) for name in sorted(unknown))
            raise CallRefused(f"{self._call}: unexpected argument(s) {names}")


def _checked_request_value(call: str, field: str, expected: type, value: Any) -> Any:
    if expected is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise CallRefused(f"{call}: request.{field} must be a finite number")
        return float(value)
    if type(value) is not expected:
        raise CallRefused(f"{call}: request.{field} must be {expected.__name__}, got {type(value).__name__}")
    if expected is str and len(value) > MAX_TEXT_CHARS:
        raise CallRefused(f"{call}: request.{field} is longer than {MAX_TEXT_CHARS} characters")
    return value


def _epoch_to_datetime(call: str, key: str, seconds: int) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise CallRefused(f"{call}: {key} is out of range") from None


def _only_given(**kwargs: Any) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if value is not None}


# --- The allowlist: one explicit wrapper per exposed call -----------------------------------


def _initialize(backend: Any, args: Arguments) -> Any:
    path = args.text("path", max_chars=1024)
    kwargs = _only_given(
        login=args.integer("login", minimum=0),
        password=args.text("password"),
        server=args.text("server"),
        timeout=args.integer("timeout", minimum=0),
        portable=args.flag("portable"),
    )
    args.finish()
    return backend.initialize(path, **kwargs) if path else backend.initialize(**kwargs)


def _login(backend: Any, args: Arguments) -> Any:
    login = args.integer("login", required=True, minimum=0)
    kwargs = _only_given(
        password=args.text("password"), server=args.text("server"), timeout=args.integer("timeout", minimum=0)
    )
    args.finish()
    return backend.login(login, **kwargs)


def _no_arguments(method: str) -> Callable[[Any, Arguments], Any]:
    def wrapper(backend: Any, args: Arguments) -> Any:
        args.finish()
        return getattr(backend, method)()  # method is one of our literal names below

    wrapper.__name__ = f"_{method}"
    return wrapper


def _symbol_info(backend: Any, args: Arguments) -> Any:
    symbol = args.text("symbol", required=True)
    args.finish()
    return backend.symbol_info(symbol)


def _symbol_info_tick(backend: Any, args: Arguments) -> Any:
    symbol = args.text("symbol", required=True)
    args.finish()
    return backend.symbol_info_tick(symbol)


def _symbols_get(backend: Any, args: Arguments) -> Any:
    kwargs = _only_given(group=args.text("group"))
    args.finish()
    return backend.symbols_get(**kwargs)


def _copy_rates_from_pos(backend: Any, args: Arguments) -> Any:
    symbol = args.text("symbol", required=True)
    timeframe = args.integer("timeframe", required=True, minimum=1)
    start_pos = args.integer("start_pos", required=True, minimum=0)
    count = args.integer("count", required=True, minimum=0)
    args.finish()
    return backend.copy_rates_from_pos(symbol, timeframe, start_pos, count)


def _order_check(backend: Any, args: Arguments) -> Any:
    request = args.order_request()
    args.finish()
    return backend.order_check(request)


def _order_send(backend: Any, args: Arguments) -> Any:
    request = args.order_request()
    args.finish()
    return backend.order_send(request)


def _open_filter(call: str, args: Arguments) -> dict[str, Any]:
    """positions_get / orders_get take at most one of symbol, group, ticket."""
    kwargs = _only_given(
        symbol=args.text("symbol"), group=args.text("group"), ticket=args.integer("ticket", minimum=0)
    )
    args.finish()
    if len(kwargs) > 1:
        raise CallRefused(
            f"{call}: give at most one of symbol, group, ticket (got {', '.join(sorted(kwargs))})"
        )
    return kwargs


def _positions_get(backend: Any, args: Arguments) -> Any:
    kwargs = _open_filter("positions_get", args)
    return backend.positions_get(**kwargs)


def _orders_get(backend: Any, args: Arguments) -> Any:
    kwargs = _open_filter("orders_get", args)
    return backend.orders_get(**kwargs)


def _history_selection(call: str, args: Arguments) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """history_*_get: (date_from, date_to[, group]) or ticket= or position=, exactly one form.

    Dates travel as epoch seconds and reach the backend as UTC-aware datetimes, which
    MetaTrader5 documents as its input and which leave no doubt about the time zone.
    """
    date_from = args.integer("date_from")
    date_to = args.integer("date_to")
    group = args.text("group")
    ticket = args.integer("ticket", minimum=0)
    position = args.integer("position", minimum=0)
    args.finish()
    by_dates = date_from is not None or date_to is not None
    if by_dates + (ticket is not None) + (position is not None) != 1:
        raise CallRefused(f"{call}: give exactly one of (date_from, date_to), ticket, position")
    if ticket is not None or position is not None:
        if group is not None:
            raise CallRefused(f"{call}: group only goes with date_from/date_to")
        return (), _only_given(ticket=ticket, position=position)
    if date_from is None or date_to is None:
        raise CallRefused(f"{call}: date_from and date_to go together")
    dates = (_epoch_to_datetime(call, "date_from", date_from), _epoch_to_datetime(call, "date_to", date_to))
    return dates, _only_given(group=group)


def _history_orders_get(backend: Any, args: Arguments) -> Any:
    positional, kwargs = _history_selection("history_orders_get", args)
    return backend.history_orders_get(*positional, **kwargs)


def _history_deals_get(backend: Any, args: Arguments) -> Any:
    positional, kwargs = _history_selection("history_deals_get", args)
    return backend.history_deals_get(*positional, **kwargs)


def _sim_control(backend: Any, args: Arguments) -> Any:
    command = args.text("command", required=True, max_chars=64)
    params = args.plain_object("params")
    args.finish()
    return backend.control(command, params)


#: The complete exposed surface. A name not in this table is refused; nothing is ever
#: looked up by a client-supplied name anywhere else.
CALLS: dict[str, Callable[[Any, Arguments], Any]] = {
    "initialize": _initialize,
    "login": _login,
    "shutdown": _no_arguments("shutdown"),
    "version": _no_arguments("version"),
    "last_error": _no_arguments("last_error"),
    "terminal_info": _no_arguments("terminal_info"),
    "account_info": _no_arguments("account_info"),
    "symbol_info": _symbol_info,
    "symbol_info_tick": _symbol_info_tick,
    "symbols_get": _symbols_get,
    "copy_rates_from_pos": _copy_rates_from_pos,
    "order_check": _order_check,
    "order_send": _order_send,
    "positions_get": _positions_get,
    "orders_get": _orders_get,
    "history_orders_get": _history_orders_get,
    "history_deals_get": _history_deals_get,
    "sim_control": _sim_control,
}
SIM_ONLY_CALLS = frozenset({"sim_control"})
#: Calls whose arguments may carry credentials: their arguments are never logged.
SECRET_CALLS = frozenset({"initialize", "login"})


# --- Dispatch -----------------------------------------------------------------------------


class Dispatcher:
    """Decode, validate, run under the terminal lock, encode. Never raises to rpyc.

    The MetaTrader5 module is not thread-safe, so one lock serialises every backend call.
    A call waits for the lock at most ``lock_timeout`` seconds and then reports the
    terminal busy, instead of piling up threads behind a hung terminal.
    """

    def __init__(
        self, backend: Any, *, allow_sim_control: bool, lock_timeout: float, limits: Limits = DEFAULT_LIMITS
    ) -> None:
        self._backend = backend
        self._allow_sim_control = allow_sim_control
        self._lock_timeout = lock_timeout
        self._limits = limits
        self._lock = TerminalLock()  # first come, first served: one client cannot starve another

    def dispatch(self, name: Any, payload: Any) -> str:
        started = time.monotonic()
        call = name if type(name) is str and name in CALLS else "<refused>"
        try:
            body = {"ok": True, "result": self._run(name, payload)}
        except CallLimited as exc:
            body = _error_body(exc.kind, str(exc))
        except CallRefused as exc:
            body = _error_body("bad_request", str(exc))
        except _Busy as exc:
            body = _error_body("busy", str(exc))
        except Exception as exc:  # noqa: BLE001 - a backend failure must reach the client as data
            secret = call in SECRET_CALLS  # its message might echo a credential: type only
            log.warning("backend %s raised %s", call, type(exc).__name__, exc_info=not secret)
            detail = type(exc).__name__ if secret else f"{type(exc).__name__}: {exc}"
            body = _error_body("backend_error", f"{call}: {detail}")
        try:
            reply = json.dumps(body)
        except (TypeError, ValueError) as exc:
            reply = json.dumps(_error_body("backend_error", f"{call}: result is not plain data ({exc})"))
        log.debug(
            "call",
            extra={
                "call": call,
                "latency_ms": round((time.monotonic() - started) * 1000, 3),
                "ok": body["ok"],
            },
        )
        return reply

    def _run(self, name: Any, payload: Any) -> Any:
        if type(name) is not str or type(payload) is not str:
            raise CallRefused("call name and payload must be strings")
        handler = CALLS.get(name)
        if handler is None or (name in SIM_ONLY_CALLS and not self._allow_sim_control):
            raise CallRefused(f"{name[:40]!r} is not an allowed call")
        if len(payload) > MAX_PAYLOAD_CHARS:
            raise CallRefused(f"{name}: payload larger than {MAX_PAYLOAD_CHARS} characters")
        try:
            raw = json.loads(payload)
        except ValueError:
            raise CallRefused(f"{name}: payload is not valid JSON") from None
        if type(raw) is not dict:
            raise CallRefused(f"{name}: payload must be a JSON object")
        check_call(name, raw, self._limits)
        if not self._lock.acquire(timeout=self._lock_timeout):
            raise _Busy(f"{name}: terminal busy for more than {self._lock_timeout:g} s with another call")
        try:
            return to_plain(handler(self._backend, Arguments(name, raw)))
        finally:
            self._lock.release()

    def shutdown_backend(self) -> None:
        """Best effort terminal shutdown when the server stops."""
        if self._lock.acquire(timeout=self._lock_timeout):
            try:
                self._backend.shutdown()
            except Exception:  # noqa: BLE001 - stopping anyway
                log.warning("backend shutdown failed", exc_info=True)
            finally:
                self._lock.release()


class _Busy(Exception):
    pass


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message}}


class BridgeService(rpyc.Service):
    """The rpyc root object. Its one reachable attribute is ``call``."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def _rpyc_getattr(self, name: str) -> Any:
        """rpyc consults this for every attribute a peer asks for: allow ``call`` only."""
        if name == "call":
            return self.exposed_call
        raise AttributeError("mt5bridge exposes only 'call'")

    def _rpyc_setattr(self, name: str, value: Any) -> None:
        raise AttributeError("access denied")

    def _rpyc_delattr(self, name: str) -> None:
        raise AttributeError("access denied")

    def exposed_call(self, name: str, payload: str) -> str:
        """Run allowlisted call ``name`` with JSON object ``payload``; returns a JSON envelope:
        {"ok": true, "result": ...} or {"ok": false, "error": {"kind": ..., "message": ...}}."""
        return self._dispatcher.dispatch(name, payload)


def build_server(
    backend: Any,
    *,
    token: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    timeout: float = DEFAULT_TIMEOUT,
    allow_sim_control: bool = False,
    tls: ssl.SSLContext | None = None,
    insecure: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> BridgeServer:
    """A bound, ready-to-start server: .start() blocks serving, .close() stops it. Port 0 picks a free one.

    ``tls`` (mt5bridge.tls.server_context) or an explicit ``insecure=True`` (plain TCP): never plain by default.
    The handshake deadline and the terminal-lock wait are the limits' values, at most ``timeout``.
    """
    if (tls is None) == (not insecure):
        raise ValueError("give a TLS context or insecure=True (plain TCP), not both or neither")
    limits = dataclasses.replace(
        limits,
        handshake_seconds=min(limits.handshake_seconds, timeout),
        lock_wait_seconds=min(limits.lock_wait_seconds, timeout),
    )
    dispatcher = Dispatcher(
        backend, allow_sim_control=allow_sim_control, lock_timeout=limits.lock_wait_seconds, limits=limits
    )
    return BridgeServer(
        BridgeService(dispatcher),
        host=host,
        port=port,
        token=token,
        tls=tls,
        limits=limits,
        protocol_config=dict(HARDENED_RPYC_CONFIG, sync_request_timeout=timeout),
        dispatcher=dispatcher,
    )


# --- Logging ------------------------------------------------------------------------------

_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line, hand-written because python-json-logger may be absent on Windows."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# --- Command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mt5bridge.server", description="Token-guarded bridge to a MetaTrader 5 terminal."
    )
    parser.add_argument("--backend", choices=BACKEND_NAMES, required=True)
    parser.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds per call; also the most the handshake and a terminal-lock wait may take "
        f"(those are 5 s by default) (default ${TIMEOUT_ENV} or {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sim = parser.add_argument_group("sim backend only")
    sim.add_argument("--seed", type=int)
    sim.add_argument("--speed", type=float)
    sim.add_argument(
        "--stepped",
        action="store_true",
        default=None,
        help="simulated time moves only on sim_control advance",
    )
    sim.add_argument("--state", metavar="FILE", help="persist the simulated account to FILE")
    return parser


def resolve_timeout(value: float | None, environ: dict[str, str] | os._Environ = os.environ) -> float:
    """Explicit value, else $MT5_BRIDGE_TIMEOUT, else 10 s; must be a positive number."""
    if value is None:
        raw = environ.get(TIMEOUT_ENV, "").strip()
        try:
            value = float(raw) if raw else DEFAULT_TIMEOUT
        except ValueError:
            raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {value!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gen-cert"]:
        return gen_cert_main(argv[1:])
    parser = _parser()
    add_tls_arguments(parser)
    options = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        parser.exit(2, f"mt5bridge.server: {TOKEN_ENV} is not set; refusing to start without a token\n")
    try:
        timeout = resolve_timeout(options.timeout)
    except ValueError as exc:
        parser.exit(2, f"mt5bridge.server: {exc}\n")
    sim_options = _only_given(
        seed=options.seed, speed=options.speed, stepped=options.stepped, state_file=options.state
    )
    if options.backend != "sim" and sim_options:
        parser.exit(2, f"mt5bridge.server: {', '.join(sorted(sim_options))} only apply to --backend sim\n")
    configure_logging(options.log_level)
    try:
        backend = make_backend(options.backend, **sim_options)
    except (BackendUnavailable, ValueError) as exc:
        parser.exit(2, f"mt5bridge.server: {exc}\n")
    try:
        server = build_server(
            backend,
            token=token,
            host=options.host,
            port=options.port,
            timeout=timeout,
            allow_sim_control=options.backend == "sim",
            tls=tls_context_or_exit(parser, options),  # checked before the port is bound
            insecure=options.insecure,
        )
    except OSError as exc:
        parser.exit(2, f"mt5bridge.server: cannot listen on {options.host}:{options.port}: {exc}\n")
    if len(token) < 16:
        log.warning("%s is shorter than 16 characters: use a long random token", TOKEN_ENV)
    warn_if_insecure(options.insecure)
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    log.info("mt5bridge starting", extra={"backend": options.backend, "timeout_s": timeout})
    try:
        server.start()
    finally:
        server.dispatcher.shutdown_backend()
        log.info("mt5bridge stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
