"""The control socket's wire format: the system-call proxy that clients speak to a node.

Every message, both ways, is

    u32 header length, u32 data length (network order), a JSON header, raw data bytes

A request header is {"id": N, "call": NAME, "args": {...}}; its reply carries
the same id and either {"result": VALUE} or {"errno": E, "message": TEXT}.
Datagram payloads travel as the raw data bytes. Requests on one connection
may be outstanding together, as system calls from several threads are.
"""

import json
import struct

import trio

_LENGTHS = struct.Struct("!II")
MAX_HEADER = 1 << 20
MAX_DATA = 1 << 20


class ProtocolError(Exception):
    pass


def parse_url(url):
    """unix://relative/path or unix:///absolute/path -> the socket's path."""
    if not isinstance(url, str) or not url.startswith("unix://") or len(url) == len("unix://"):
        raise ValueError(f"{url!r}: not a control socket URL (unix://relative/path or unix:///absolute/path)")
    return url[len("unix://"):]


def encode(header, data=b""):
    raw = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTHS.pack(len(raw), len(data)) + raw + bytes(data)


class MessageStream:
    """Whole messages from a trio byte stream."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = bytearray()
        self.send_lock = trio.StrictFIFOLock()

    async def _fill(self, size):
        while len(self.buffer) < size:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return False
            self.buffer += chunk
        return True

    async def receive(self):
        """(header dict, data bytes), or None at end of stream."""
        if not await self._fill(_LENGTHS.size):
            if self.buffer:
                raise ProtocolError("connection closed inside a message")
            return None
        hlen, dlen = _LENGTHS.unpack_from(self.buffer)
        if hlen > MAX_HEADER or dlen > MAX_DATA:
            raise ProtocolError(f"message too large (header {hlen}, data {dlen} bytes)")
        if not await self._fill(_LENGTHS.size + hlen + dlen):
            raise ProtocolError("connection closed inside a message")
        start = _LENGTHS.size
        try:
            header = json.loads(bytes(self.buffer[start:start + hlen]))
        except ValueError as e:
            raise ProtocolError(f"bad message header: {e}") from None
        if not isinstance(header, dict):
            raise ProtocolError("message header is not an object")
        data = bytes(self.buffer[start + hlen:start + hlen + dlen])
        del self.buffer[:start + hlen + dlen]
        return header, data

    async def send(self, header, data=b""):
        async with self.send_lock:
            await self.stream.send_all(encode(header, data))
