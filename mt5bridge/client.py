"""Client of the MT5 bridge: the MetaTrader5 call surface over a token-guarded link of JSON frames.

Methods keep MetaTrader5's names and calling conventions (every function of the package, each
sent as the caller made the call, so the server applies the package's argument rules) but return
plain data (dicts, lists of dicts, tuples for version/last_error, None on failure; rates and ticks
as a dict of columns, ``{"time": [...], "open": [...], ...}``), so nothing returned depends on the
connection staying up. Transport failures become typed exceptions (mt5bridge.errors).
A client that timed out or lost its connection is dead for good: the bot makes a new one,
and must reconcile any order whose call timed out before sending anything again.
"""

import datetime as dt
import json
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from typing import Any

from mt5bridge.constants import PACKAGE_CONSTANTS
from mt5bridge.errors import (
    BridgeCallError,
    BridgeConnectionLost,
    BridgeTimeout,
)
from mt5bridge.frames import FrameStream, request_body
from mt5bridge.handshake import client_handshake
from mt5bridge.limits import MAX_REPLY_BYTES
from mt5bridge.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    MAX_PAYLOAD_CHARS,
    TOKEN_ENV,
    resolve_timeout,
)
from mt5bridge.signatures import SIGNATURES
from mt5bridge.tls import client_trust

log = logging.getLogger("mt5bridge.client")

#: One encoder for every request: ``json.dumps(..., allow_nan=False)`` builds a new one per call.
_ENCODE = json.JSONEncoder(allow_nan=False).encode
_DECODE = json.JSONDecoder().decode
#: The request body of each call made without arguments (``account_info()``): built once.
_EMPTY_BODIES = {name: request_body(name, _ENCODE({"args": []})) for name in SIGNATURES}
#: A pipeline's bounds: its requests are written before any reply is read, so they must fit the
#: socket buffers (a few hundred KiB on any OS) whatever the peer does meanwhile.
MAX_PIPELINE = 32
MAX_PIPELINE_BYTES = 64 * 1024


def connect(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    timeout: float | None = None,
    *,
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool | None = None,
) -> "BridgeClient":
    """Open a TLS, token-authenticated connection to a bridge server.

    token defaults to $MT5_BRIDGE_TOKEN; timeout (seconds per call, also the whole connect +
    handshake) defaults to $MT5_BRIDGE_TIMEOUT or 10. The server is trusted through ``ca_file``
    and/or the pinned SHA-256 ``fingerprint`` of its certificate; ``insecure=True`` is plain TCP.
    When none of the three is given they come from $MT5_BRIDGE_CA_FILE / _FINGERPRINT / _INSECURE.
    Raises BridgeUnavailable, BridgeAuthError (BridgeTLSError), BridgeTimeout or BridgeConnectionLost.
    """
    token = os.environ.get(TOKEN_ENV, "") if token is None else token
    try:
        timeout = resolve_timeout(timeout)
        trust = client_trust(ca_file, fingerprint, insecure)
    except ValueError as exc:
        raise ValueError(f"mt5bridge: {exc}") from None
    where = f"{host}:{port}"
    sock = client_handshake(host, port, token=token, trust=trust, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a request is one small write
        sock.settimeout(timeout)  # per read of a reply: a call with no answer within it is timed out
    except OSError:
        _close_socket(sock)
        raise BridgeConnectionLost(f"mt5bridge connection to {where} failed right after the handshake") from None
    return BridgeClient(FrameStream(sock, MAX_REPLY_BYTES, where), sock, where=where, timeout=timeout)


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _wire_value(value: Any) -> Any:
    """Datetimes cross as epoch seconds, converted with ``.timestamp()`` like the package does
    (a naive datetime is local time); everything else as it is (JSON refuses what is not plain)."""
    if isinstance(value, dt.datetime):
        return math.floor(value.timestamp())
    return value


class BridgeClient:
    """One authenticated connection; methods mirror the MetaTrader5 module.

    Thread-safe (calls are serialised), but one call at a time is all the terminal does anyway.
    """

    #: Results are decoded JSON: already the plain data ``mt5bridge.plain.to_plain`` makes (dicts with
    #: text keys, lists, scalars), so a caller need not convert them again (the bot's gateway does not).
    plain_results = True

    def __init__(self, stream: FrameStream, sock: socket.socket, *, where: str, timeout: float) -> None:
        self._stream = stream
        self._sock = sock
        self._where = where
        self._timeout = timeout
        self._lock = threading.Lock()
        self._dead_reason: str | None = None
        self._owed: deque[_Slot] = deque()  # pipelined calls whose replies are still on the wire

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once closed, timed out or disconnected; every further call raises BridgeConnectionLost."""
        return self._dead_reason is not None

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        self._kill("the client was closed")

    def __enter__(self) -> "BridgeClient":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _kill(self, reason: str) -> None:
        if self._dead_reason is None:
            self._dead_reason = reason
        try:
            _close_socket(self._sock)
        except OSError:
            pass

    # -- transport ------------------------------------------------------------------------

    def _transport(self, name: str, request: Any) -> Any:
        """Run one exchange and map transport failures to typed errors (the client is then dead)."""
        if self._dead_reason is not None:
            raise BridgeConnectionLost(f"mt5bridge client is dead ({self._dead_reason}); connect again")
        try:
            return request()
        except TimeoutError:
            self._kill(f"{name} timed out")
            raise BridgeTimeout(
                f"mt5bridge {name}: no reply within {self._timeout:g} s from {self._where}; "
                f"its outcome is unknown"
            ) from None
        except (EOFError, OSError) as exc:
            self._kill(f"connection lost during {name}")
            raise BridgeConnectionLost(
                f"mt5bridge connection to {self._where} lost during {name}: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:
            self._kill(f"unexpected {type(exc).__name__} during {name}")
            raise BridgeConnectionLost(
                f"mt5bridge {name} failed locally: {type(exc).__name__}: {exc}"
            ) from exc

    def _exchange(self, body: bytes) -> bytes:
        """One request frame out, its reply frame back (the caller holds the lock)."""
        self._stream.send(body)
        return self._stream.recv()

    def _call(self, name: str, **arguments: Any) -> Any:
        """Send one allowlisted call with named arguments (None = not given)."""
        return self._send(name, {key: value for key, value in arguments.items() if value is not None})

    def _send(self, name: str, given: dict[str, Any]) -> Any:
        """Send one allowlisted call; returns the plain result or raises a BridgeError.

        A call shape Python refuses for the real package comes back as kind ``type_error`` and is
        raised here as TypeError, as the package raises it.
        """
        return self._exchange_body(name, _encoded(name, given))

    def _exchange_body(self, name: str, request: bytes) -> Any:
        """Send a request body, return the plain result of its reply (or raise its error)."""
        debug = log.isEnabledFor(logging.DEBUG)  # asked first: building the record costs more than the call's JSON
        started = time.monotonic() if debug else 0.0
        with self._lock:
            if self._dead_reason is not None:
                raise BridgeConnectionLost(f"mt5bridge client is dead ({self._dead_reason}); connect again")
            if self._owed:
                self._settle(name)
            try:  # inline, not through _transport's closure: this is every call's path
                self._stream.send(request)
                reply = self._stream.recv()
            except Exception:  # noqa: BLE001 - mapped to the typed error by _transport
                reply = self._transport(name, _reraise)
        if debug:
            log.debug("mt5bridge call", extra={"call": name, "latency_ms": round((time.monotonic() - started) * 1000, 3)})
        return self._result(name, reply)

    def _result(self, name: str, reply: bytes) -> Any:
        """The result in a reply envelope, or the error it carries raised as BridgeCallError (TypeError)."""
        try:
            body = _DECODE(reply.decode("utf-8"))
            if body["ok"]:
                return body["result"]
            error = body["error"]
            kind, message = str(error["kind"]), str(error["message"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BridgeCallError(f"{name}: malformed reply from the server ({exc})") from None
        if kind == "type_error":
            raise TypeError(message)
        raise BridgeCallError(f"mt5bridge {name} failed: {message}", kind=kind)

    def _api(self, name: str, args: tuple, kwargs: dict) -> Any:
        """One MetaTrader5 function, sent as the call was made; the server applies the package's rules."""
        return self._exchange_body(name, self._body(name, args, kwargs))

    def pipeline(self, calls: list[tuple[str, tuple, dict]]) -> "Pipelined":
        """Several MetaTrader5 calls in one round trip: every request frame is written now, and each
        reply is read when it is asked for (`Pipelined.result`), or before this client's next call.

        Why (issue 16): a cycle makes ~13 reads, and on a loaded box each round trip costs more than
        the call (both processes have to be woken, each time). The server needs nothing new: it
        answers the frames of a connection in turn, and frames may arrive together. Replies read
        late overlap the terminal's work with the caller's. Only MetaTrader5 calls, each sent as
        one call would send it; a call that cannot be sent (arguments not plain data, too long) is an
        error item. A transport failure raises as any call's does (the client is then dead). At most
        ``MAX_PIPELINE`` calls and ``MAX_PIPELINE_BYTES``: the requests always fit the socket
        buffers, so neither side can block the other.
        """
        if len(calls) > MAX_PIPELINE:
            raise ValueError(f"mt5bridge pipeline: {len(calls)} calls, at most {MAX_PIPELINE}")
        slots = [_Slot(name) for name, _args, _kwargs in calls]
        bodies = []
        for slot, (name, args, kwargs) in zip(slots, calls, strict=True):
            try:
                if name not in SIGNATURES:
                    raise BridgeCallError(f"{name!r} is not a MetaTrader5 call", kind="bad_request")
                bodies.append(self._body(name, args, kwargs))
            except BridgeCallError as exc:
                slot.error = exc  # never sent: no reply is owed for it
        if sum(len(body) for body in bodies) > MAX_PIPELINE_BYTES:
            raise ValueError(f"mt5bridge pipeline: requests over {MAX_PIPELINE_BYTES} bytes; send them one by one")
        with self._lock:
            if self._dead_reason is not None:
                raise BridgeConnectionLost(f"mt5bridge client is dead ({self._dead_reason}); connect again")
            self._settle("pipeline")
            self._transport("pipeline", lambda: self._stream.send_many(bodies))
            self._owed.extend(slot for slot in slots if slot.error is None)
        return Pipelined(self, slots)

    def _settle(self, name: str, until: "_Slot | None" = None) -> None:
        """Read the replies owed to pipelines (up to `until`'s) before anything else is read; the lock is held.
        A transport failure fails every owed slot and raises as `name`'s failure."""
        owed = self._owed
        while owed:
            slot = owed.popleft()
            try:
                slot.reply = self._transport(name, self._stream.recv)
            except (BridgeConnectionLost, BridgeTimeout) as exc:
                slot.error = exc
                while owed:
                    owed.popleft().error = exc
                raise
            if slot is until:
                return

    @staticmethod
    def _body(name: str, args: tuple, kwargs: dict) -> bytes:
        """The request body of a MetaTrader5 call made with these arguments (BridgeCallError if it cannot be sent)."""
        if not args and not kwargs:
            return _EMPTY_BODIES[name]
        payload = {"args": [_wire_value(value) for value in args]}
        if kwargs:
            payload["kwargs"] = {key: _wire_value(value) for key, value in kwargs.items()}
        return _encoded(name, payload)

    def sim_control(self, command: str, /, **params: Any) -> dict[str, Any]:
        """Drive the simulated terminal (faults, time); the server refuses it for a real terminal."""
        return self._call("sim_control", command=command, params=params)

    def sim_clock(self) -> dict[str, Any]:
        """The simulated terminal's UTC now and speed (the server refuses it for a real terminal)."""
        return self._call("sim_clock")


class _Slot:
    """One pipelined call: its reply's bytes once read, or the error that took its place."""

    __slots__ = ("name", "reply", "error")

    def __init__(self, name: str) -> None:
        self.name = name
        self.reply: bytes | None = None
        self.error: BaseException | None = None


class Pipelined:
    """The replies of one `BridgeClient.pipeline`, in the order of its calls."""

    def __init__(self, client: BridgeClient, slots: list[_Slot]) -> None:
        self._client = client
        self._slots = slots

    def __len__(self) -> int:
        return len(self._slots)

    def settle(self) -> None:
        """Read every reply still owed (before an order is sent: nothing of a pipeline is left on the
        wire); a transport failure is left for the next call to meet (the client is then dead)."""
        for index in range(len(self._slots) - 1, -1, -1):  # replies come in order: the last owed one settles all
            slot = self._slots[index]
            if slot.reply is None and slot.error is None:
                self.result(index)
                return

    def result(self, index: int) -> tuple[Any, BaseException | None]:
        """(result, None) or (None, the error the call raised: BridgeError, TypeError); waits for its reply."""
        slot, client = self._slots[index], self._client
        if slot.reply is None and slot.error is None:
            with client._lock:
                if slot.reply is None and slot.error is None:
                    try:
                        client._settle("pipeline", until=slot)
                    except (BridgeConnectionLost, BridgeTimeout):
                        pass  # slot.error is set
        if slot.error is not None:
            return None, slot.error
        try:
            return _converted(slot.name, client._result(slot.name, slot.reply)), None
        except (BridgeCallError, TypeError) as exc:
            return None, exc


def _encoded(name: str, payload: dict[str, Any]) -> bytes:
    """A request body, or BridgeCallError when the arguments cannot cross (the server would refuse them)."""
    try:
        text = _ENCODE(payload)
    except (TypeError, ValueError) as exc:
        raise BridgeCallError(f"{name}: arguments are not plain finite data ({exc})", kind="bad_request") from None
    if len(text) > MAX_PAYLOAD_CHARS:  # the server would refuse it: say so without sending it
        raise BridgeCallError(
            f"{name}: arguments of {len(text)} characters are over the bridge's {MAX_PAYLOAD_CHARS}",
            kind="bad_request",
        )
    return request_body(name, text)


def _reraise() -> Any:
    """Raise the exception being handled again (for `_transport` to map it)."""
    raise  # noqa: PLE0704 - only ever called inside an except block


def _converted(name: str, result: Any) -> Any:
    """A decoded result as the package returns it (tuples where JSON has lists: version, last_error)."""
    convert = _RESULT_CONVERSIONS.get(name)
    return convert(result) if convert is not None and result is not None else result


def _api_method(name: str) -> Any:
    def call(self: BridgeClient, *args: Any, **kwargs: Any) -> Any:
        return _converted(name, self._api(name, args, kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = _DOCS.get(name, f"MetaTrader5.{name} through the bridge; returns plain data.")
    return call


_RESULT_CONVERSIONS = {"version": tuple, "last_error": tuple}
_DOCS = {
    "initialize": "Without credentials the server logs in with its own MT5_LOGIN/MT5_PASSWORD/MT5_SERVER.",
    "shutdown": "Shuts the terminal connection down (MetaTrader5.shutdown), not this client: see close().",
    "order_send": "BridgeTimeout here means the order MAY have executed: reconcile, never resend blindly.",
}

for _name in SIGNATURES:
    setattr(BridgeClient, _name, _api_method(_name))
# Module-shaped: ``mt5 = connect(...)`` then ``mt5.ORDER_TYPE_BUY`` works as with the package.
for _name, _value in PACKAGE_CONSTANTS.items():
    setattr(BridgeClient, _name, _value)
