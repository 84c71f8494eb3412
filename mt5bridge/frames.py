"""rpyc frames with a size limit before and after decompression, over plain or TLS sockets.

Why: rpyc's Channel reads whatever length a frame header claims and inflates compressed
frames with ``zlib.decompress``, so a 284 KB frame can become 300 MB in the server. Here the
claimed length is checked before a byte is read, and inflation stops one byte past the
limit (``zlib.decompressobj`` with ``max_length``), so a bomb costs at most the limit.
A refused frame closes the connection (the stream cannot be resynchronised); the refusal
is an EOFError so rpyc ends the session cleanly, with its reason in the message.
"""

from __future__ import annotations

import logging
import socket
import zlib

from rpyc.core.channel import Channel
from rpyc.core.stream import SocketStream

log = logging.getLogger("mt5bridge.frames")


class FrameRefused(EOFError):
    """A frame over the size limit; the connection is closed."""


class BridgeStream(SocketStream):
    """rpyc's SocketStream that also sees bytes TLS has already decrypted (``pending()``).

    A TLS socket may hold decrypted bytes the kernel no longer reports as readable; rpyc polls
    the file descriptor, so without this it could wait for data it already has.
    """

    __slots__ = ()

    def poll(self, timeout: float) -> bool:
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending() > 0:
            return True
        return super().poll(timeout)


class LimitedChannel(Channel):
    """rpyc Channel whose received frames are at most ``max_bytes`` on the wire and once inflated."""

    __slots__ = ["max_bytes", "peer"]

    def __init__(self, stream: SocketStream, max_bytes: int, peer: str = "peer") -> None:
        super().__init__(stream)
        self.max_bytes = max_bytes
        self.peer = peer

    def recv(self) -> bytes:
        header = self.stream.read(self.FRAME_HEADER.size)
        length, compressed = self.FRAME_HEADER.unpack(header)
        if length > self.max_bytes:
            self._refuse(f"a frame of {length} bytes is over the {self.max_bytes}-byte limit")
        data = self.stream.read(length + len(self.FLUSHER))[: -len(self.FLUSHER)]
        if compressed:
            inflater = zlib.decompressobj()
            try:
                inflated = inflater.decompress(data, self.max_bytes + 1)
            except zlib.error as exc:
                self._refuse(f"a compressed frame does not inflate ({exc})")
            if len(inflated) > self.max_bytes or inflater.unconsumed_tail:
                self._refuse(f"a compressed frame of {length} bytes inflates past the {self.max_bytes}-byte limit")
            data = inflated
        return data

    def _refuse(self, reason: str) -> None:
        log.warning("mt5bridge closed the connection from %s: %s", self.peer, reason)
        try:
            self.stream.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass
        self.close()
        raise FrameRefused(f"mt5bridge: {reason}")
