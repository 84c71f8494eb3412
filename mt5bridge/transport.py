"""The bridge's listener: bounded handshakes in one selector thread, one thread per authenticated session.

Why not rpyc's ThreadedServer: it starts a thread for every accepted socket before a single
byte is checked, so 2 000 idle sockets are 2 000 threads, and its authenticator can only use
per-recv timeouts. Here the accept loop and every handshake in progress share one thread
(non-blocking sockets, one deadline each); connections beyond ``max_unauthenticated`` are
closed at once; only a peer that passed TLS and the token gets a thread, up to
``max_sessions``. The session thread reads request frames (mt5bridge.frames: size-limited
before and after decompression) and answers each with the dispatcher's reply, one at a time.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from typing import Any

from mt5bridge.frames import FrameStream
from mt5bridge.handshake import AUTH_FULL, AUTH_OK, HandshakeRefused, PendingHandshake, normalise_token
from mt5bridge.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger("mt5bridge.server")

#: How often a refusal reason is logged at most (the count of the others follows in the next line).
REFUSAL_LOG_SECONDS = 10.0


class RefusalLog:
    """Count every refused connection by reason; log each reason once per interval, with the count.

    A flood of refusals must be visible but must not become a flood of log lines.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()
        self._lock = threading.Lock()

    def refused(self, reason: str, peer: str, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[reason] += 1
            if now - self._logged_at.get(reason, -REFUSAL_LOG_SECONDS) < REFUSAL_LOG_SECONDS:
                self._unlogged[reason] += 1
                return
            self._logged_at[reason] = now
            also = self._unlogged.pop(reason, 0)
        suffix = f" ({also} more since the last such line)" if also else ""
        log.log(level, "mt5bridge refused a connection from %s: %s%s", peer, reason, suffix,
                extra={"refusal": reason, "refused_total": self.counts[reason]})


def peer_name(sock: socket.socket) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "unknown peer"
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) or "local socket"


class BridgeServer:
    """Listen, handshake, serve. ``start()`` blocks; ``close()`` (any thread) stops everything."""

    def __init__(self, service: Any, *, host: str, port: int, token: str, tls: ssl.SSLContext | None,
                 protocol_config: dict[str, Any] | None = None, limits: Limits = DEFAULT_LIMITS,
                 dispatcher: Any = None) -> None:
        """``service`` answers request frames: ``serve_frame(body: bytes) -> bytes`` (mt5bridge.server.Dispatcher).

        ``protocol_config`` is accepted for callers written for the rpyc transport and not used."""
        self._token = normalise_token(token)
        if not self._token:
            raise ValueError("an empty token would let anyone in")
        self.dispatcher = dispatcher
        self.tls = tls
        self.limits = limits
        self.refusals = RefusalLog()
        self.sessions = Sessions(service, limits)
        self.active = False
        self._pending: dict[socket.socket, PendingHandshake] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.host, self.port = self.listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()

    @property
    def clients(self) -> set[socket.socket]:
        """The authenticated sessions' sockets (tests wait for it to empty)."""
        return self.sessions.clients

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.listener.listen(socket.SOMAXCONN)  # a burst waits in the kernel, not behind SYN-ACK retries
        self.listener.setblocking(False)
        self._selector.register(self.listener, selectors.EVENT_READ)
        self.active = True
        log.info("mt5bridge listening", extra={"host": self.host, "port": self.port, "tls": self.tls is not None})
        try:
            while not self._closed.is_set():
                self._step()
        finally:
            self.close()
            self._selector.close()

    def close(self) -> None:
        if self._closed.is_set() and not self.active:
            return
        self._closed.set()
        self.active = False
        self.sessions.closing = True
        with self._lock:  # only the loop thread changes _pending (under the lock): a snapshot here
            sockets = [self.listener, *(p.sock for p in self._pending.values()), *self.sessions.snapshot()]
        for sock in sockets:
            _close(sock)

    # -- the selector loop: accept and handshakes -----------------------------------------------

    def _step(self) -> None:
        now = time.monotonic()
        wait = min([p.deadline for p in self._pending.values()], default=now + 0.5) - now
        try:
            events = self._selector.select(timeout=max(0.0, min(wait, 0.5)))
        except (OSError, ValueError):
            return  # closed under us
        for key, _ in events:
            if key.fileobj is self.listener:
                self._accept_all()
                continue
            pending = self._pending.get(key.fileobj)
            if pending is None:
                continue
            try:
                self._advance(pending)
            except Exception as exc:  # noqa: BLE001 - one odd peer must never stop the accept loop
                log.warning("mt5bridge handshake with %s failed unexpectedly", pending.peer, exc_info=True)
                self._drop(pending.raw, pending, f"handshake error ({type(exc).__name__})", None)
        self._expire(time.monotonic())

    def _accept_all(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed, or out of descriptors: the next select tells
            peer = peer_name(sock)
            if len(self._pending) >= self.limits.max_unauthenticated:
                _close(sock)
                self.refusals.refused(f"over {self.limits.max_unauthenticated} unauthenticated connections", peer)
                continue
            try:
                pending = PendingHandshake(sock, peer, time.monotonic() + self.limits.handshake_seconds, self.tls,
                                           self._token)
                self._selector.register(sock, selectors.EVENT_READ)
            except (OSError, ValueError) as exc:
                _close(sock)
                self.refusals.refused(f"cannot watch the connection ({type(exc).__name__})", peer)
                continue
            with self._lock:
                self._pending[sock] = pending

    def _advance(self, pending: PendingHandshake) -> None:
        original = pending.raw  # the key the selector knows, even once TLS wraps it
        try:
            done = pending.advance()
        except HandshakeRefused as exc:
            # A bare connect-and-close (health checks, the stack's readiness probe) is counted, said at INFO.
            self._drop(original, pending, str(exc), exc.answer, logging.INFO if exc.probe else logging.WARNING)
            return
        if not done:
            self._selector.modify(original, selectors.EVENT_WRITE if pending.wants_write else selectors.EVENT_READ)
            return
        self._forget(original)
        if not self.sessions.reserve(pending.sock):
            self._answer_and_close(pending, AUTH_FULL)
            self.refusals.refused(f"over {self.limits.max_sessions} sessions", pending.peer)
            return
        try:
            pending.answer(AUTH_OK)
        except OSError:
            self.sessions.release(pending.sock)
            return
        if not self.sessions.serve(pending.sock, pending.peer):
            self.refusals.refused("no thread for the session", pending.peer)

    def _expire(self, now: float) -> None:
        for sock, pending in list(self._pending.items()):
            if now >= pending.deadline:
                self._drop(sock, pending, f"handshake not finished within {self.limits.handshake_seconds:g} s", None)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._pending.pop(sock, None)
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, sock: socket.socket, pending: PendingHandshake, reason: str, answer: bytes | None,
              level: int = logging.WARNING) -> None:
        self._forget(sock)
        if answer is not None:
            self._answer_and_close(pending, answer)
        else:
            _close(pending.sock)
        self.refusals.refused(reason, pending.peer, level)

    @staticmethod
    def _answer_and_close(pending: PendingHandshake, answer: bytes) -> None:
        try:
            pending.sock.settimeout(0.5)  # two bytes to a peer we are dropping: never wait long
            pending.sock.sendall(answer)
        except OSError:
            pass
        _close(pending.sock)


class Sessions:
    """Authenticated connections: one serving thread each, at most ``limit`` at a time."""

    def __init__(self, service: Any, limits: Limits) -> None:
        self.service = service
        self.limits = limits
        self.clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.closing = False

    def reserve(self, sock: socket.socket) -> bool:
        """Take a session slot for ``sock``; False when all are taken."""
        with self._lock:
            if len(self.clients) >= self.limits.max_sessions:
                return False
            self.clients.add(sock)
            return True

    def release(self, sock: socket.socket) -> None:
        with self._lock:
            self.clients.discard(sock)
        _close(sock)

    def serve(self, sock: socket.socket, peer: str) -> bool:
        """Serve a reserved socket in its own thread; False (slot released) if no thread can be had."""
        try:
            threading.Thread(target=self._serve, args=(sock, peer), name="mt5bridge-session", daemon=True).start()
        except RuntimeError:
            self.release(sock)
            return False
        return True

    def snapshot(self) -> list[socket.socket]:
        with self._lock:
            return list(self.clients)

    def _serve(self, sock: socket.socket, peer: str) -> None:
        stream = FrameStream(sock, self.limits.max_request_bytes, peer)
        serve = self.service.serve_frame
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a reply is one write: send it now
            while True:
                stream.send(serve(stream.recv()))
        except (EOFError, OSError):
            pass  # the peer left, the server is closing, or a frame was refused (said by frames.py)
        except Exception:  # noqa: BLE001 - one session failing must not take the server down
            if not self.closing:
                log.warning("mt5bridge session with %s ended abnormally", peer, exc_info=True)
        finally:
            self.release(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
