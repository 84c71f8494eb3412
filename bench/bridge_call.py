"""Bridge call against a bare TCP round trip on loopback (issue 16 target: at most 3x).

Both measured in this process, interleaved in rounds, median of the rounds: a bare TCP echo of
a 64-byte message (TCP_NODELAY both sides, as the bridge) and bridge calls over plain TCP to an
in-process server on the stepped simulator. `sim_clock` does next to nothing in the backend, so
it shows the bridge's own cost (framing, JSON, dispatch, lock); `last_error` adds the stand-in's
argument binding; `copy_rates_from_pos` of 12 and 121 bars shows bars by column.

    .venv/bin/python bench/bridge_call.py [--calls 2000] [--rounds 7]

`start_in_process()` is the way to get such a server and client in another bench (bench/cycle.py).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mt5bridge.backends import make_backend  # noqa: E402
from mt5bridge.client import BridgeClient, connect  # noqa: E402
from mt5bridge.server import build_server  # noqa: E402
from mt5bridge.transport import BridgeServer  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def start_in_process(backend=None, token: str = TOKEN) -> tuple[BridgeServer, threading.Thread, BridgeClient]:
    """A plain-TCP bridge server on a free loopback port in a thread, and an initialised client.

    Stop with ``client.close(); server.close(); thread.join()``."""
    server = build_server(backend or make_backend("sim", stepped=True), token=token, port=0, insecure=True,
                          allow_sim_control=True)
    thread = threading.Thread(target=server.start, name="bench-bridge", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.active and time.monotonic() < deadline:
        time.sleep(0.01)
    client = connect("127.0.0.1", server.port, token=token, insecure=True)
    client.initialize()
    return server, thread, client


def _echo_pair() -> tuple[socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    listener.close()
    for sock in (client, served):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo() -> None:
        while data := served.recv(65536):
            served.sendall(data)
        served.close()

    threading.Thread(target=echo, daemon=True).start()
    return client, served


def _per_call_us(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args([] if argv is None else argv)  # None: called by python -m bench
    tcp, _ = _echo_pair()
    message = b"x" * 64

    def round_trip() -> None:
        tcp.sendall(message)
        tcp.recv(65536)

    server, thread, client = start_in_process()
    cases = {
        "bare TCP round trip": round_trip,
        "bridge sim_clock": client.sim_clock,
        "bridge last_error": client.last_error,
        "bridge 12 bars": lambda: client.copy_rates_from_pos("EURUSD", 1, 0, 12),
        "bridge 121 bars": lambda: client.copy_rates_from_pos("EURUSD", 1, 0, 121),
    }
    figures: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for fn in cases.values():
            _per_call_us(fn, 200)  # warm up
        for _ in range(options.rounds):
            for name, fn in cases.items():  # interleaved: a noisy moment hits every case alike
                calls = options.calls if "bars" not in name else max(1, options.calls // 10)
                figures[name].append(_per_call_us(fn, calls))
    finally:
        client.close()
        server.close()
        thread.join(10)
        tcp.close()
    bare = statistics.median(figures["bare TCP round trip"])
    for name, values in figures.items():
        median = statistics.median(values)
        sys.stdout.write(f"{name:<22} {median:8.1f} us  ({median / bare:4.1f}x bare TCP)\n")
    ratio = statistics.median(figures["bridge sim_clock"]) / bare
    sys.stdout.write(f"target: bridge call <= 3x bare TCP: {'met' if ratio <= 3 else 'NOT met'} ({ratio:.2f}x)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
