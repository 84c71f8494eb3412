"""Tools of tests/test_bridge_security.py: a watched backend, attack runners, p95, socket watchers."""

from __future__ import annotations

import functools
import selectors
import socket
import threading
import time
import zlib
from collections import Counter

from mt5bridge.limits import MIB


class WatchedBackend:
    """The simulated terminal, with every call counted; symbol_info("HOLD") holds the terminal until released."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.holding = threading.Event()
        self.release = threading.Event()
        self.initialize_arguments: list[tuple] = []
        self._count_lock = threading.Lock()

    def __getattr__(self, name):
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args, **kwargs):
            with self._count_lock:
                self.calls[name] += 1
            if name == "initialize":
                self.initialize_arguments.append((args, kwargs))
            if name == "symbol_info" and args[:1] == ("HOLD",):
                self.holding.set()
                self.release.wait(30)
            return target(*args, **kwargs)

        return call


def report(request, text: str) -> None:
    """The figures of issue 13, shown even when pytest captures output."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(text)  # noqa: T201 - figures the issue asks the tests to print


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def under_attack(valid, attack, *, min_calls: int = 20):
    """Run ``attack`` in a thread while the valid client keeps calling; (attack result, valid p95)."""
    outcome: dict = {}
    done = threading.Event()

    def run():
        try:
            outcome["value"] = attack()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            outcome["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    latencies = []
    while not done.is_set() or len(latencies) < min_calls:
        started = time.perf_counter()
        tick = valid.symbol_info_tick("EURUSD")
        latencies.append(time.perf_counter() - started)
        assert tick is not None and tick["bid"] > 0
        done.wait(0.02)  # pacing: the valid client is a bot, not a flood
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value"), p95(latencies)


def wait_closed(socks: list, opened: float, limit: float) -> dict[int, float]:
    """Seconds after ``opened`` at which the server closed each socket (those closed within ``limit``)."""
    closed: dict[int, float] = {}
    _watch_closures(socks, closed, opened, until=opened + limit)
    return closed


def _watch_closures(socks: list, closed: dict[int, float], opened: float, until: float) -> None:
    """Record in ``closed`` every socket the server closes before ``until`` (a selector: no fd limit)."""
    with selectors.DefaultSelector() as watcher:
        for index, sock in enumerate(socks):
            if index not in closed:
                watcher.register(sock, selectors.EVENT_READ, index)
        while len(closed) < len(socks) and time.perf_counter() < until:
            for key, _ in watcher.select(max(0.0, min(0.1, until - time.perf_counter()))):
                if _is_closed(key.fileobj):
                    closed[key.data] = time.perf_counter() - opened
                    watcher.unregister(key.fileobj)


def flood(address, total: int, watch_seconds: float) -> tuple[list[float], dict[int, float], int]:
    """Open ``total`` silent connections, watching for closures as they open and ``watch_seconds`` after.

    Returns when each was opened, when the server closed each (perf_counter times) and the
    process's thread count once all were open.
    """
    socks, opened, closed = [], [], {}
    with selectors.DefaultSelector() as watcher:
        def note_closures(timeout: float) -> None:
            for key, _ in watcher.select(timeout):
                if _is_closed(key.fileobj):
                    closed[key.data] = time.perf_counter()
                    watcher.unregister(key.fileobj)

        try:
            for index in range(total):
                socks.append(socket.create_connection(address, timeout=5))
                opened.append(time.perf_counter())
                watcher.register(socks[-1], selectors.EVENT_READ, index)
                note_closures(0)
            threads = threading.active_count()
            until = time.perf_counter() + watch_seconds
            while len(closed) < total and time.perf_counter() < until:
                note_closures(0.1)
        finally:
            close_all(socks)
    return opened, closed, threads


def _is_closed(sock) -> bool:
    try:
        return sock.recv(4096) == b""
    except OSError:  # a reset, or TLS cut without close_notify
        return True


def trickle(socks: list, payload: bytes, interval: float, limit: float) -> dict[int, float]:
    """Send ``payload`` one byte per ``interval`` on every socket; when did the server close each?"""
    opened = time.perf_counter()
    closed: dict[int, float] = {}
    position = 0
    while len(closed) < len(socks) and time.perf_counter() - opened < limit:
        for index, sock in enumerate(socks):
            if index in closed or position >= len(payload):
                continue
            try:
                sock.send(payload[position : position + 1])
            except OSError:
                closed[index] = time.perf_counter() - opened
        position += 1
        _watch_closures(socks, closed, opened, until=time.perf_counter() + interval)
    return closed


def close_all(socks) -> None:
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass


@functools.cache
def zlib_bomb() -> bytes:
    """300 MB of zeros deflated (about 290 KB), made in 1 MB chunks so the test never holds 300 MB."""
    squeezer = zlib.compressobj(9)
    chunk = bytes(MIB)
    parts = [squeezer.compress(chunk) for _ in range(300)]
    parts.append(squeezer.flush())
    return b"".join(parts)
