"""The bridge's wire: length-prefixed frames with a size limit before and after decompression.

A frame is a 5-byte header (4-byte big-endian length, 1 byte "compressed" flag), the body, and a
newline (the framing rpyc used, kept byte for byte so the frame-limit tests and attack tools keep
their meaning; an rpyc peer still gets nothing: its messages are not requests). A request body is the call name, a newline, and its JSON object of arguments;
a reply body is the JSON envelope (mt5bridge.server). No object ever crosses: only text.

Why not rpyc (used up to issue 16): its generic object protocol (boxing, netref bookkeeping, a
request/reply handshake per attribute) cost ~50 us a call on loopback against ~12 us for a bare
TCP round trip, and the bridge only ever needed one remote function.

Limits: the claimed length is checked before a byte of the body is read, and a compressed body
(never sent by us; accepted from peers) is inflated at most one byte past the limit
(``zlib.decompressobj`` with ``max_length``), so a bomb costs at most the limit. A refused frame
closes the connection (the stream cannot be resynchronised); the refusal is a FrameRefused
(an EOFError), with its reason in the message.
"""

from __future__ import annotations

import logging
import socket
import struct
import zlib

log = logging.getLogger("mt5bridge.frames")

FRAME_HEADER = struct.Struct("!LB")
FLUSHER = b"\n"
#: Between the call name and its JSON arguments in a request body.
NAME_END = b"\n"


class FrameRefused(EOFError):
    """A frame over the size limit, or one that does not inflate; the connection is closed."""


class FrameStream:
    """Frames over one connected (plain or TLS) socket, one peer's view. Not thread-safe: one caller at a time."""

    __slots__ = ("sock", "max_bytes", "peer", "_buffer")

    def __init__(self, sock: socket.socket, max_bytes: int, peer: str = "peer") -> None:
        self.sock = sock
        self.max_bytes = max_bytes
        self.peer = peer
        self._buffer = bytearray()

    def send(self, body: bytes) -> None:
        self.sock.sendall(FRAME_HEADER.pack(len(body), 0) + body + FLUSHER)

    def send_many(self, bodies: list[bytes]) -> None:
        """Several frames in one write (a pipeline: the peer reads them one after the other)."""
        self.sock.sendall(b"".join(FRAME_HEADER.pack(len(body), 0) + body + FLUSHER for body in bodies))

    def recv(self) -> bytes:
        """The next frame's body; EOFError when the peer closed, FrameRefused (after closing) when refused."""
        header = FRAME_HEADER.size
        if not self._buffer:  # the common case: one recv brings exactly one whole frame, taken as it is
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the peer")
            if len(chunk) >= header:
                length, compressed = FRAME_HEADER.unpack_from(chunk)
                if length > self.max_bytes:
                    self._refuse(f"a frame of {length} bytes is over the {self.max_bytes}-byte limit")
                if not compressed and len(chunk) == header + length + len(FLUSHER):
                    return chunk[header : header + length]
            self._buffer += chunk
        self._fill(header)
        length, compressed = FRAME_HEADER.unpack_from(self._buffer)
        if length > self.max_bytes:
            self._refuse(f"a frame of {length} bytes is over the {self.max_bytes}-byte limit")
        end = header + length
        self._fill(end + len(FLUSHER))
        data = bytes(self._buffer[header:end])
        del self._buffer[: end + len(FLUSHER)]
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

    def _fill(self, count: int) -> None:
        """At least `count` bytes buffered; one recv per frame in the common case (it arrives whole)."""
        buffer = self._buffer
        while len(buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(buffer)))
            if not chunk:
                raise EOFError("connection closed by the peer")
            buffer += chunk

    def _refuse(self, reason: str) -> None:
        log.warning("mt5bridge closed the connection from %s: %s", self.peer, reason)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise FrameRefused(f"mt5bridge: {reason}")


def request_body(name: str, payload: str) -> bytes:
    return name.encode("utf-8") + NAME_END + payload.encode("utf-8")


def split_request(body: bytes) -> tuple[str, str] | None:
    """(call name, JSON arguments) of a request body, or None when it is not one."""
    name, sep, payload = body.partition(NAME_END)
    if not sep:
        return None
    try:
        return name.decode("utf-8"), payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
