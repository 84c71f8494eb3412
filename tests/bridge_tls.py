"""A self-signed bridge certificate for tests (made once per test process, removed at exit)."""

import atexit
import functools
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import NamedTuple

from mt5bridge.tls import generate_self_signed, server_context


class BridgeCert(NamedTuple):
    cert: str
    key: str
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        return server_context(self.cert, self.key)

    def server_args(self) -> list[str]:
        return ["--cert", self.cert, "--key", self.key]


@functools.cache
def bridge_cert(name: str = "bridge") -> BridgeCert:
    """``name`` makes independent pairs (a second one is "another server" for wrong-CA/pin tests)."""
    folder = Path(tempfile.mkdtemp(prefix=f"tw-{name}-cert-"))
    atexit.register(shutil.rmtree, folder, True)
    cert, key = folder / "bridge.crt", folder / "bridge.key"
    fingerprint = generate_self_signed(cert, key)
    return BridgeCert(str(cert), str(key), fingerprint)


def raw_tls(sock, host: str = "127.0.0.1"):
    """Wrap a raw client socket in TLS without verification (tests that speak the wire themselves)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)
