"""A TLS bridge server in a thread of the test process, on a free port (for tests that need no subprocess)."""

import threading
import time

from bridge_tls import bridge_cert

from mt5bridge.client import connect
from mt5bridge.server import BridgeServer, build_server

STARTUP_SECONDS = 30


def start_bridge(backend, token: str, **options) -> tuple[BridgeServer, threading.Thread]:
    """Start serving ``backend``; returns once the socket listens (waits on that, not a fixed time)."""
    server = build_server(backend, token=token, port=0, timeout=10, tls=bridge_cert().server_context(), **options)
    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.active, "bridge server did not start listening"
    return server, thread


def connect_bridge(server: BridgeServer, token: str, timeout: float = 10):
    """A client of start_bridge's server, pinning its certificate."""
    return connect("127.0.0.1", server.port, token=token, timeout=timeout, fingerprint=bridge_cert().fingerprint)


def stop_bridge(server: BridgeServer, thread: threading.Thread) -> None:
    """Close after the clients are gone, so no serving thread is left polling a closed socket."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while server.clients and time.monotonic() < deadline:
        time.sleep(0.01)
    server.close()
    thread.join(10)
