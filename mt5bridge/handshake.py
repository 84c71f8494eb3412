"""The bridge handshake, both sides: TLS (unless --insecure), then the shared token, then request frames (mt5bridge.frames).

Wire: the client sends a 4-byte big-endian length then the UTF-8 token; the server answers
AUTH_OK, AUTH_REFUSED (wrong token), AUTH_FULL (at its session limit) or, to a plain client
reaching a TLS server, AUTH_TLS_REQUIRED in clear; then it closes unless AUTH_OK.
The token is normalised identically on both sides (surrounding whitespace stripped, as a
token read from a file or .env carries a newline) and compared with hmac.compare_digest.

The server side is a non-blocking state machine (``PendingHandshake``) driven by one selector
thread (mt5bridge.transport), so a peer sending a byte every few seconds costs a socket, not
a thread, and the whole handshake has one deadline rather than a timeout per recv.
"""

from __future__ import annotations

import hmac
import socket
import ssl
import struct
import time

from mt5bridge.errors import (
    BridgeAuthError,
    BridgeConnectionLost,
    BridgeTimeout,
    BridgeTLSError,
    BridgeUnavailable,
)
from mt5bridge.tls import ClientTrust, fingerprint_of_der, fingerprints_match

TOKEN_LENGTH = struct.Struct("!I")
TOKEN_MAX_BYTES = 1024
AUTH_OK = b"OK"
AUTH_REFUSED = b"NO"
AUTH_FULL = b"BY"
AUTH_TLS_REQUIRED = b"TL"
TLS_RECORD_HANDSHAKE = 0x16  # the first byte of every TLS ClientHello


def normalise_token(token: str | bytes) -> bytes:
    """The token as both sides compare it: UTF-8, surrounding whitespace stripped."""
    if isinstance(token, bytes):
        token = token.decode("utf-8")
    return token.strip().encode("utf-8")


def tokens_match(offered: bytes, expected: bytes) -> bool:
    try:
        offered = normalise_token(offered)
    except UnicodeDecodeError:
        return False
    return bool(offered) and hmac.compare_digest(offered, expected)


class HandshakeRefused(Exception):
    """The peer failed the handshake; ``reason`` is logged, ``answer`` (if any) is sent before closing."""

    def __init__(self, reason: str, answer: bytes | None = None, *, probe: bool = False) -> None:
        super().__init__(reason)
        self.answer = answer
        self.probe = probe  # connected and closed without a byte: a health check or port scan


class PendingHandshake:
    """One connection between accept() and AUTH_OK, advanced whenever its socket is ready.

    ``advance()`` returns True once the token is accepted, False while it needs more bytes,
    and raises HandshakeRefused when the peer fails. ``wants_write`` tells the selector what
    TLS is waiting for.
    """

    def __init__(self, sock: socket.socket, peer: str, deadline: float, context: ssl.SSLContext | None,
                 token: bytes) -> None:
        sock.setblocking(False)
        self.sock: socket.socket = sock
        self.raw = sock
        self.peer = peer
        self.deadline = deadline
        self._context = context
        self._token = token
        self._stage = "peek" if context is not None else "token"
        self._buffer = bytearray()
        self.wants_write = False

    def advance(self) -> bool:
        if self._stage == "peek":
            first = self._recv(1, socket.MSG_PEEK)
            if first is None:
                return False
            if first[0] != TLS_RECORD_HANDSHAKE:
                raise HandshakeRefused("a plain (non-TLS) client reached the TLS bridge", AUTH_TLS_REQUIRED)
            self.sock = self._context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
            self._stage = "tls"
        if self._stage == "tls":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                self.wants_write = False
                return False
            except ssl.SSLWantWriteError:
                self.wants_write = True
                return False
            except (ssl.SSLError, OSError) as exc:
                raise HandshakeRefused(f"TLS handshake failed ({getattr(exc, 'reason', None) or exc})") from None
            self.wants_write = False
            self._stage = "token"
        return self._read_token()

    def _read_token(self) -> bool:
        while True:
            need = TOKEN_LENGTH.size
            if len(self._buffer) >= need:
                (length,) = TOKEN_LENGTH.unpack(self._buffer[:need])
                if not 0 < length <= TOKEN_MAX_BYTES:
                    raise HandshakeRefused("wrong or missing token", AUTH_REFUSED)
                need += length
            if len(self._buffer) == need and need > TOKEN_LENGTH.size:
                if not tokens_match(bytes(self._buffer[TOKEN_LENGTH.size :]), self._token):
                    raise HandshakeRefused("wrong or missing token", AUTH_REFUSED)
                return True
            chunk = self._recv(need - len(self._buffer))
            if chunk is None:
                return False
            self._buffer += chunk

    def _recv(self, count: int, flags: int = 0) -> bytes | None:
        try:
            chunk = self.sock.recv(count, flags) if flags else self.sock.recv(count)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        except ssl.SSLWantWriteError:
            self.wants_write = True
            return None
        except (ssl.SSLError, OSError) as exc:
            raise HandshakeRefused(f"connection failed during the handshake ({type(exc).__name__})") from None
        if not chunk:
            if self._stage == "peek" or (self._stage == "token" and self._context is None and not self._buffer):
                raise HandshakeRefused("closed the connection without sending anything", probe=True)
            raise HandshakeRefused("closed the connection during the handshake")
        return chunk

    def answer(self, reply: bytes) -> None:
        """Send a 2-byte answer (fits any socket buffer), then the socket goes back to blocking mode."""
        self.sock.settimeout(max(0.1, self.deadline - time.monotonic()))
        self.sock.sendall(reply)
        self.sock.settimeout(None)


# --- Client side ----------------------------------------------------------------------------


def client_handshake(host: str, port: int, *, token: str, trust: ClientTrust, timeout: float) -> socket.socket:
    """Connect, TLS (verified by CA or pinned fingerprint), present the token; the socket for the frames.

    Everything finishes within ``timeout`` in total. Raises BridgeUnavailable, BridgeTLSError,
    BridgeAuthError, BridgeTimeout or BridgeConnectionLost, each with one clear line.
    """
    token_bytes = normalise_token(token)
    if len(token_bytes) > TOKEN_MAX_BYTES:
        raise BridgeAuthError(f"mt5bridge token is longer than {TOKEN_MAX_BYTES} bytes")
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise BridgeUnavailable(f"mt5bridge server at {where} is not reachable: {exc}") from None
    try:
        context = trust.context()
        if context is not None:
            sock = _tls(sock, context, host, where, trust, deadline)
        _present_token(sock, token_bytes, where, deadline, tls=context is not None)
    except BaseException:
        _close(sock)
        raise
    sock.settimeout(None)  # the client sets its own per-call timeout
    return sock


def _remaining(deadline: float, where: str, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise BridgeTimeout(f"mt5bridge server at {where} did not finish the {what} in time")
    return left


def _tls(sock: socket.socket, context: ssl.SSLContext, host: str, where: str, trust: ClientTrust,
         deadline: float) -> ssl.SSLSocket:
    sock.settimeout(_remaining(deadline, where, "TLS handshake"))
    try:
        tls = context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        raise BridgeTLSError(
            f"mt5bridge server at {where} presented a certificate MT5_BRIDGE_CA_FILE does not trust: "
            f"{exc.verify_message}"
        ) from None
    except TimeoutError:
        raise BridgeTimeout(f"mt5bridge server at {where} did not finish the TLS handshake in time") from None
    except (ssl.SSLError, OSError) as exc:
        raise BridgeTLSError(
            f"mt5bridge TLS handshake with {where} failed ({getattr(exc, 'reason', None) or exc}); "
            f"is the server running with --insecure?"
        ) from None
    if trust.fingerprint:
        der = tls.getpeercert(binary_form=True) or b""
        if not fingerprints_match(trust.fingerprint, der):
            _close(tls)
            raise BridgeTLSError(
                f"mt5bridge server at {where} presented certificate SHA-256 {fingerprint_of_der(der)}, "
                f"not the pinned MT5_BRIDGE_FINGERPRINT: wrong server or someone in between"
            )
    return tls


def _present_token(sock: socket.socket, token: bytes, where: str, deadline: float, *, tls: bool) -> None:
    try:
        sock.settimeout(_remaining(deadline, where, "token handshake"))
        sock.sendall(TOKEN_LENGTH.pack(len(token)) + token)
        answer = b""
        while len(answer) < len(AUTH_OK):
            sock.settimeout(_remaining(deadline, where, "token handshake"))
            chunk = sock.recv(len(AUTH_OK) - len(answer))
            if not chunk:
                raise EOFError("connection closed during the token handshake")
            answer += chunk
    except TimeoutError:
        raise BridgeTimeout(f"mt5bridge server at {where} did not answer the token handshake in time") from None
    except (EOFError, OSError) as exc:
        raise BridgeConnectionLost(f"mt5bridge server at {where} dropped the token handshake: {exc}") from None
    if answer == AUTH_OK:
        return
    if answer == AUTH_FULL:
        raise BridgeUnavailable(f"mt5bridge server at {where} is at its connection limit; try again later")
    if answer == AUTH_TLS_REQUIRED and not tls:
        raise BridgeTLSError(
            f"mt5bridge server at {where} requires TLS: set MT5_BRIDGE_CA_FILE or MT5_BRIDGE_FINGERPRINT "
            f"(the token just crossed in clear: rotate it if the link is not trusted)"
        )
    hint = "none was given: set MT5_BRIDGE_TOKEN" if not token else "check MT5_BRIDGE_TOKEN"
    raise BridgeAuthError(f"mt5bridge refused the token ({hint}) at {where}")


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
