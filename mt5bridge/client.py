"""Client of the MT5 bridge: the MetaTrader5 call surface over a token-guarded rpyc link.

Methods keep MetaTrader5's names and arguments but return plain data (dicts, lists of
dicts, tuples for version/last_error, None on failure), so nothing returned depends on
the connection staying up. Transport failures become typed exceptions (mt5bridge.errors).
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
from decimal import Decimal
from typing import Any

import rpyc
from rpyc.core import consts
from rpyc.utils.factory import connect_channel

from mt5bridge.errors import (
    BridgeCallError,
    BridgeConnectionLost,
    BridgeTimeout,
)
from mt5bridge.frames import BridgeStream, LimitedChannel
from mt5bridge.handshake import client_handshake
from mt5bridge.limits import MAX_REPLY_BYTES
from mt5bridge.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    HARDENED_RPYC_CONFIG,
    MAX_PAYLOAD_CHARS,
    TOKEN_ENV,
    resolve_timeout,
)
from mt5bridge.tls import client_trust

log = logging.getLogger("mt5bridge.client")


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
        conn = connect_channel(
            LimitedChannel(BridgeStream(sock), MAX_REPLY_BYTES, where),
            service=rpyc.VoidService,
            config=dict(HARDENED_RPYC_CONFIG, sync_request_timeout=timeout),
        )
    except BaseException:
        _close_socket(sock)
        raise
    client = BridgeClient(conn, sock, where=where, timeout=timeout)
    client._root = client._transport("connect", lambda: conn.root)
    return client


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _epoch_seconds(value: Any, name: str) -> int:
    """datetime -> epoch seconds; a naive datetime is taken as UTC (MetaTrader5's convention)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return math.floor(value.timestamp())
    if type(value) is int:
        return value
    raise BridgeCallError(
        f"{name} must be a datetime or epoch seconds, got {type(value).__name__}", kind="bad_request"
    )


def _json_default(value: Any) -> Any:
    """MT5 takes doubles: a Decimal price/volume crosses as the nearest float."""
    if isinstance(value, Decimal) and value.is_finite():
        return float(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def _remote_error(name: str, exc: BaseException) -> BridgeCallError:
    """An exception rpyc carried back from the server, cut to its first line (no remote traceback)."""
    lines = str(exc).strip().splitlines()
    return BridgeCallError(
        f"mt5bridge {name}: server raised {type(exc).__name__}: {lines[0] if lines else ''}"
    )


class BridgeClient:
    """One authenticated connection; methods mirror the MetaTrader5 module.

    Thread-safe (calls are serialised), but one call at a time is all the terminal does anyway.
    """

    def __init__(self, conn: Any, sock: socket.socket, *, where: str, timeout: float) -> None:
        self._conn = conn
        self._sock = sock
        self._root: Any = None
        self._where = where
        self._timeout = timeout
        self._lock = threading.Lock()
        self._dead_reason: str | None = None

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
        # Shut the socket first so rpyc's polite close cannot wait on an unresponsive peer.
        _close_socket(self._sock)
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - the connection is being abandoned anyway
            pass

    # -- transport ------------------------------------------------------------------------

    def _transport(self, name: str, request: Any) -> Any:
        """Run one rpyc request and map transport failures to typed errors."""
        if self._dead_reason is not None:
            raise BridgeConnectionLost(f"mt5bridge client is dead ({self._dead_reason}); connect again")
        try:
            return request()
        except TimeoutError as exc:
            if hasattr(exc, "_remote_tb"):
                raise _remote_error(name, exc) from None
            self._kill(f"{name} timed out")
            raise BridgeTimeout(
                f"mt5bridge {name}: no reply within {self._timeout:g} s from {self._where}; "
                f"its outcome is unknown"
            ) from None
        except (EOFError, OSError) as exc:
            if hasattr(exc, "_remote_tb"):
                raise _remote_error(name, exc) from None
            self._kill(f"connection lost during {name}")
            raise BridgeConnectionLost(
                f"mt5bridge connection to {self._where} lost during {name}: {type(exc).__name__}: {exc}"
            ) from None
        except Exception as exc:
            if hasattr(exc, "_remote_tb"):  # rpyc re-raised a server-side exception
                raise _remote_error(name, exc) from None
            self._kill(f"unexpected {type(exc).__name__} during {name}")
            raise BridgeConnectionLost(
                f"mt5bridge {name} failed locally: {type(exc).__name__}: {exc}"
            ) from exc

    def _call(self, name: str, **arguments: Any) -> Any:
        """Send one allowlisted call; returns the plain result or raises a BridgeError."""
        given = {key: value for key, value in arguments.items() if value is not None}
        try:
            payload = json.dumps(given, allow_nan=False, default=_json_default)
        except (TypeError, ValueError) as exc:
            raise BridgeCallError(
                f"{name}: arguments are not plain finite data ({exc})", kind="bad_request"
            ) from None
        if len(payload) > MAX_PAYLOAD_CHARS:  # the server would refuse it: say so without sending it
            raise BridgeCallError(
                f"{name}: arguments of {len(payload)} characters are over the bridge's {MAX_PAYLOAD_CHARS}",
                kind="bad_request",
            )
        started = time.monotonic()
        with self._lock:
            reply = self._transport(
                name,
                lambda: self._conn.sync_request(
                    consts.HANDLE_CALLATTR, self._root, "call", (name, payload), ()
                ),
            )
        log.debug(
            "mt5bridge call",
            extra={"call": name, "latency_ms": round((time.monotonic() - started) * 1000, 3)},
        )
        if type(reply) is not str:
            self._kill("the server sent a non-JSON reply")
            raise BridgeConnectionLost(f"mt5bridge {name}: server sent {type(reply).__name__}, not JSON text")
        try:
            body = json.loads(reply)
            if body["ok"]:
                return body["result"]
            error = body["error"]
            kind, message = str(error["kind"]), str(error["message"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BridgeCallError(f"{name}: malformed reply from the server ({exc})") from None
        raise BridgeCallError(f"mt5bridge {name} failed: {message}", kind=kind)

    # -- the MetaTrader5 surface ------------------------------------------------------------

    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
        portable: bool | None = None,
    ) -> bool:
        """Without credentials the server logs in with its own MT5_LOGIN/MT5_PASSWORD/MT5_SERVER."""
        return self._call(
            "initialize",
            path=path,
            login=login,
            password=password,
            server=server,
            timeout=timeout,
            portable=portable,
        )

    def login(
        self,
        login: int,
        *,
        password: str | None = None,
        server: str | None = None,
        timeout: int | None = None,
    ) -> bool:
        return self._call("login", login=login, password=password, server=server, timeout=timeout)

    def shutdown(self) -> None:
        """Shuts the terminal connection down (MetaTrader5.shutdown), not this client: see close()."""
        return self._call("shutdown")

    def version(self) -> tuple[Any, ...] | None:
        result = self._call("version")
        return tuple(result) if result is not None else None

    def last_error(self) -> tuple[int, str]:
        return tuple(self._call("last_error"))

    def terminal_info(self) -> dict[str, Any] | None:
        return self._call("terminal_info")

    def account_info(self) -> dict[str, Any] | None:
        return self._call("account_info")

    def symbol_info(self, symbol: str) -> dict[str, Any] | None:
        return self._call("symbol_info", symbol=symbol)

    def symbol_info_tick(self, symbol: str) -> dict[str, Any] | None:
        return self._call("symbol_info_tick", symbol=symbol)

    def symbols_get(self, group: str | None = None) -> list[dict[str, Any]] | None:
        return self._call("symbols_get", group=group)

    def copy_rates_from_pos(
        self, symbol: str, timeframe: int, start_pos: int, count: int
    ) -> list[dict[str, Any]] | None:
        return self._call(
            "copy_rates_from_pos", symbol=symbol, timeframe=timeframe, start_pos=start_pos, count=count
        )

    def order_check(self, request: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("order_check", request=request)

    def order_send(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """BridgeTimeout here means the order MAY have executed: reconcile, never resend blindly."""
        return self._call("order_send", request=request)

    def positions_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> list[dict[str, Any]] | None:
        return self._call("positions_get", symbol=symbol, group=group, ticket=ticket)

    def orders_get(
        self, symbol: str | None = None, group: str | None = None, ticket: int | None = None
    ) -> list[dict[str, Any]] | None:
        return self._call("orders_get", symbol=symbol, group=group, ticket=ticket)

    def history_orders_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        group: str | None = None,
        *,
        ticket: int | None = None,
        position: int | None = None,
    ) -> list[dict[str, Any]] | None:
        return self._call(
            "history_orders_get", **self._history_arguments(date_from, date_to, group, ticket, position)
        )

    def history_deals_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        group: str | None = None,
        *,
        ticket: int | None = None,
        position: int | None = None,
    ) -> list[dict[str, Any]] | None:
        return self._call(
            "history_deals_get", **self._history_arguments(date_from, date_to, group, ticket, position)
        )

    @staticmethod
    def _history_arguments(
        date_from: Any, date_to: Any, group: str | None, ticket: int | None, position: int | None
    ) -> dict[str, Any]:
        return {
            "date_from": None if date_from is None else _epoch_seconds(date_from, "date_from"),
            "date_to": None if date_to is None else _epoch_seconds(date_to, "date_to"),
            "group": group,
            "ticket": ticket,
            "position": position,
        }

    def sim_control(self, command: str, /, **params: Any) -> dict[str, Any]:
        """Drive the simulated terminal (faults, time); the server refuses it for a real terminal."""
        return self._call("sim_control", command=command, params=params)
