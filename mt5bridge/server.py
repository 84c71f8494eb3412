"""The MT5 bridge server: a token-guarded service exposing an explicit allowlist of MT5 calls.

Why not mt5linux: it runs rpyc's classic server, so anyone reaching the port runs arbitrary
code, the server can run code in the client, and arguments are pasted into code strings.
Here the only thing a peer can send is a request frame (mt5bridge.frames): a call name and a
JSON object of arguments. The name is looked up in an explicit table (``mt5bridge.calls``: every
MetaTrader5 function plus ``sim_control``), the arguments are checked before touching the
terminal, and the result goes back as JSON text (no objects, no pickle); rates and ticks (numpy
structured arrays) go by column (mt5bridge.plain.to_wire).
A connection must present the shared token before a single request byte is read.

This module imports only the stdlib, mt5bridge and confcheck (stdlib only), so it runs
unchanged on a Windows Python next to terminal64.exe:  ``python -m mt5bridge.server --backend metatrader5``.
"""

import argparse
import dataclasses
import datetime as dt
import errno
import json
import logging
import math
import os
import signal
import socket
import ssl
import sys
import time
from typing import Any

import confcheck
from mt5bridge.backends import BACKEND_NAMES, BackendUnavailable, make_backend
from mt5bridge.calls import CALLS, SECRET_CALLS, SIM_ONLY_CALLS, CallRefused
from mt5bridge.frames import split_request
from mt5bridge.handshake import AUTH_OK, AUTH_REFUSED, TOKEN_LENGTH, TOKEN_MAX_BYTES  # noqa: F401 - re-exported
from mt5bridge.limits import DEFAULT_LIMITS, CallLimited, Limits, TerminalLock, check_call
from mt5bridge.plain import to_wire
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




def _only_given(**kwargs: Any) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if value is not None}


# --- Dispatch -----------------------------------------------------------------------------


class Dispatcher:
    """Decode, validate, run under the terminal lock, encode. Never raises to the session.

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
        """Run allowlisted call ``name`` with JSON object ``payload``; returns a JSON envelope:
        {"ok": true, "result": ...} or {"ok": false, "error": {"kind": ..., "message": ...}}."""
        debug = log.isEnabledFor(logging.DEBUG)
        started = time.monotonic() if debug else 0.0
        call = name if type(name) is str and name in CALLS else "<refused>"
        try:
            result = self._run(name, payload)
            try:  # the envelope around the result's JSON, without encoding a dict around it
                reply = _OK_PREFIX + _ENCODE(result) + "}"
            except (TypeError, ValueError) as exc:
                reply = json.dumps(_error_body("backend_error", f"{call}: result is not plain data ({exc})"))
            if debug:
                log.debug("call", extra={"call": call, "latency_ms": round((time.monotonic() - started) * 1000, 3),
                                         "ok": True})
            return reply
        except CallLimited as exc:
            body = _error_body(exc.kind, str(exc))
        except CallRefused as exc:
            body = _error_body(exc.kind, str(exc))
        except _Busy as exc:
            body = _error_body("busy", str(exc))
        except Exception as exc:  # noqa: BLE001 - a backend failure must reach the client as data
            secret = call in SECRET_CALLS  # its message might echo a credential: type only
            log.warning("backend %s raised %s", call, type(exc).__name__, exc_info=not secret)
            detail = type(exc).__name__ if secret else f"{type(exc).__name__}: {exc}"
            body = _error_body("backend_error", f"{call}: {detail}")
        reply = json.dumps(body)  # an error envelope: plain text only
        if debug:
            log.debug("call", extra={"call": call, "latency_ms": round((time.monotonic() - started) * 1000, 3),
                                     "ok": False})
        return reply

    def serve_frame(self, body: bytes) -> bytes:
        """One request frame's body (call name, newline, JSON arguments) -> the reply frame's body."""
        request = split_request(body)
        if request is None:
            reply = json.dumps(_error_body("bad_request", "a request is a call name, a newline and JSON arguments"))
        else:
            reply = self.dispatch(*request)
        return reply.encode("utf-8")

    def _run(self, name: Any, payload: Any) -> Any:
        if type(name) is not str or type(payload) is not str:
            raise CallRefused("call name and payload must be strings")
        handler = CALLS.get(name)
        if handler is None or (name in SIM_ONLY_CALLS and not self._allow_sim_control):
            raise CallRefused(f"{name[:40]!r} is not an allowed call")
        if len(payload) > MAX_PAYLOAD_CHARS:
            raise CallRefused(f"{name}: payload larger than {MAX_PAYLOAD_CHARS} characters")
        try:  # the arguments of a call made without any (what the client sends for them), not parsed
            raw = {"args": []} if payload == _NO_ARGUMENTS else {} if payload == "{}" else json.loads(payload)
        except ValueError:
            raise CallRefused(f"{name}: payload is not valid JSON") from None
        if type(raw) is not dict:
            raise CallRefused(f"{name}: payload must be a JSON object")
        check_call(name, raw, self._limits)
        if not self._lock.acquire(timeout=self._lock_timeout):
            raise _Busy(f"{name}: terminal busy for more than {self._lock_timeout:g} s with another call")
        try:
            return to_wire(handler(self._backend, raw))
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


_NO_ARGUMENTS = '{"args": []}'
#: A success reply is this, the result's JSON, and "}": what json.dumps({"ok": True, "result": r}) gives.
_OK_PREFIX = '{"ok": true, "result": '
_ENCODE = json.JSONEncoder().encode


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"kind": kind, "message": message}}


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
    return BridgeServer(dispatcher, host=host, port=port, token=token, tls=tls, limits=limits, dispatcher=dispatcher)


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


def _state_file(raw: str) -> str:
    """--state: a writable file in an existing folder, and if it exists, a state file we can read."""
    from mt5bridge.sim.persistence import load_state

    path = confcheck.writable_file(raw)
    load_state(path)  # a one-line ValueError if it is not ours
    return str(path)


def _parser() -> argparse.ArgumentParser:
    parser = confcheck.OneLineParser(
        prog="python -m mt5bridge.server", description="Token-guarded bridge to a MetaTrader 5 terminal."
    )
    parser.add_argument("--backend", choices=BACKEND_NAMES, required=True)
    parser.add_argument("--host", type=confcheck.arg(confcheck.bind_address), default=DEFAULT_HOST,
                        help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=confcheck.arg(confcheck.port(allow_zero=True)), default=DEFAULT_PORT,
                        help="0 picks a free port")
    parser.add_argument(
        "--timeout",
        type=confcheck.arg(_SECONDS),
        default=None,
        help=f"seconds per call; also the most the handshake and a terminal-lock wait may take "
        f"(those are 5 s by default) (default ${TIMEOUT_ENV} or {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sim = parser.add_argument_group("sim backend only")
    sim.add_argument("--seed", type=confcheck.arg(confcheck.integer(0, 2**31 - 1)))
    sim.add_argument("--speed", type=confcheck.arg(confcheck.number(0, 1_000_000, above=True)))
    sim.add_argument(
        "--stepped",
        action="store_true",
        default=None,
        help="simulated time moves only on sim_control advance",
    )
    sim.add_argument("--start", metavar="WHEN", type=confcheck.arg(_start),
                     help="start of the simulated clock: now, or an ISO time (UTC); default $SIM_START, else the fixed 2026-01-05")
    sim.add_argument("--state", metavar="FILE", type=confcheck.arg(_state_file),
                     help="persist the simulated account to FILE (its folder must exist)")
    sim.add_argument(
        "--broker", metavar="PROFILE", type=confcheck.arg(_broker_profile),
        help="broker profile: a name in mt5bridge/sim/profiles or a .toml path",
    )
    return parser


def _start(raw: str) -> dt.datetime:
    """--start: 'now' (the wall clock: an honest demo) or an ISO time, UTC when it names no zone."""
    value = confcheck.text(40)(raw)
    if value.lower() == "now":
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be now or an ISO date or time (UTC)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _start_from_env(backend: str) -> dt.datetime | None:
    """$SIM_START for the sim backend when --start is not given (compose and `make stack` set now)."""
    raw = os.environ.get("SIM_START", "")
    if backend != "sim" or not raw.strip():
        return None
    try:
        return _start(raw)
    except ValueError as exc:
        sys.stderr.write(f"python -m mt5bridge.server: config error: SIM_START: {exc}, got {raw.strip()!r}\n")
        raise SystemExit(2) from None


def _broker_profile(raw: str) -> str:
    """A shipped sim broker profile name or a .toml path, validated now (one line: file, key, reason)."""
    from mt5bridge.sim.profiles import ProfileError, load

    value = raw.strip()
    try:
        load(value)
    except ProfileError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    return value


_SECONDS = confcheck.number(0, 3600, above=True)


def _environment_settings(backend: str, environ: dict[str, str] | os._Environ = os.environ) -> tuple[str, float | None]:
    """(token, timeout from the environment or None): SettingError naming the variable if one is bad."""
    token = confcheck.read(TOKEN_ENV, environ.get(TOKEN_ENV, ""), confcheck.text(TOKEN_MAX_BYTES, max_bytes=TOKEN_MAX_BYTES),
                           secret=True)
    if not token:
        raise confcheck.SettingError(f"{TOKEN_ENV}: is not set; refusing to start without a token", TOKEN_ENV)
    raw_timeout = environ.get(TIMEOUT_ENV, "")
    timeout = confcheck.read(TIMEOUT_ENV, raw_timeout, _SECONDS) if raw_timeout.strip() else None
    if backend == "metatrader5":  # the backend logs in with these at the first initialize()
        confcheck.read("MT5_LOGIN", environ.get("MT5_LOGIN", ""), confcheck.optional(confcheck.integer(1, 10**12)))
        confcheck.read("MT5_PASSWORD", environ.get("MT5_PASSWORD", ""), confcheck.text(), secret=True)
        confcheck.read("MT5_SERVER", environ.get("MT5_SERVER", ""), confcheck.text(128))
        confcheck.read("MT5_PATH", environ.get("MT5_PATH", ""), confcheck.text(1024))
    return token, timeout


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
    try:
        token, env_timeout = _environment_settings(options.backend)
    except confcheck.SettingError as exc:
        parser.exit(2, f"{parser.prog}: config error: {exc}\n")
    timeout = resolve_timeout(options.timeout if options.timeout is not None else env_timeout)
    sim_options = _only_given(
        seed=options.seed, speed=options.speed, stepped=options.stepped, state_file=options.state,
        profile=options.broker, start=options.start if options.start is not None else _start_from_env(options.backend),
    )
    if options.backend != "sim" and sim_options:
        parser.exit(2, f"{parser.prog}: config error: --{', --'.join(sorted(sim_options)).replace('state_file', 'state')}"
                    f": only apply to --backend sim\n")
    configure_logging(options.log_level)
    try:
        backend = make_backend(options.backend, **sim_options)
    except (BackendUnavailable, ValueError) as exc:
        reason = " ".join(str(exc).split())
        option = "--state" if "state file" in reason else f"--backend {options.backend}"
        parser.exit(2, f"{parser.prog}: config error: {option}: {reason}\n")
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
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        parser.exit(2, f"{parser.prog}: config error: --port: cannot listen on {options.host}:{options.port}: {reason}\n")
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
