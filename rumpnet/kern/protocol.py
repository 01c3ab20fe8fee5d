"""The control socket's wire format: the system-call proxy that clients speak to a node.

Every message, both ways, is

    u32 header length, u32 data length (network order), a JSON header, raw data bytes

A request header is {"id": N, "call": NAME, "args": {...}}; its reply carries
the same id and either {"result": VALUE} or {"errno": E, "message": TEXT}.
Datagram payloads travel as the raw data bytes. Requests on one connection
may be outstanding together, as system calls from several threads are.
The first request on a connection is "hello" with the client's PROTOCOL_VERSION.

A node takes small requests (a datagram is at most 64 KiB) and may answer
with large listings, so each side bounds what it reads by its own limits.
"""

import errno
import json
import math
import struct

import trio

PROTOCOL_VERSION = 1

_LENGTHS = struct.Struct("!II")
MAX_REQUEST_HEADER = 1 << 16  # the longest request is a path or a name: far less
MAX_REQUEST_DATA = 1 << 16  # an IPv4 datagram is at most 65535 bytes
MAX_REPLY_HEADER = 64 << 20  # a listing of the ARP table or of every socket
MAX_REPLY_DATA = 1 << 16


class ProtocolError(Exception):
    """The peer sent something that is not a message of this protocol; the connection cannot go on."""

    def __init__(self, message, code=errno.EPROTO):
        super().__init__(message)
        self.errno = code


def parse_url(url):
    """unix://relative/path or unix:///absolute/path -> the socket's path."""
    if not isinstance(url, str) or not url.startswith("unix://") or len(url) == len("unix://"):
        raise ValueError(f"{url!r}: not a control socket URL (unix://relative/path or unix:///absolute/path)")
    return url[len("unix://"):]


def encode(header, data=b""):
    """A message's bytes; ValueError for NaN or infinity, which JSON cannot carry."""
    raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return _LENGTHS.pack(len(raw), len(data)) + raw + bytes(data)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def decode_header(raw):
    """A header's bytes -> dict; ProtocolError for anything that is not one JSON object."""
    try:
        header = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ProtocolError("bad message header: nested too deeply") from None
    except ValueError as e:  # also bad UTF-8 and integers too long to convert
        raise ProtocolError(f"bad message header: {e}") from None
    if not isinstance(header, dict):
        raise ProtocolError("message header is not an object")
    return header


class MessageStream:
    """Whole messages from a trio byte stream, each at most max_header and max_data bytes long.

    The buffer holds at most one message and one read beyond it.
    """

    def __init__(self, stream, max_header=MAX_REQUEST_HEADER, max_data=MAX_REQUEST_DATA):
        self.stream = stream
        self.max_header = max_header
        self.max_data = max_data
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
        if hlen > self.max_header or dlen > self.max_data:
            raise ProtocolError(f"message too large (header {hlen}, data {dlen} bytes; "
                                f"at most {self.max_header} and {self.max_data})")
        if not await self._fill(_LENGTHS.size + hlen + dlen):
            raise ProtocolError("connection closed inside a message")
        start = _LENGTHS.size
        header = decode_header(bytes(self.buffer[start:start + hlen]))
        data = bytes(self.buffer[start + hlen:start + hlen + dlen])
        del self.buffer[:start + hlen + dlen]
        return header, data

    async def send(self, header, data=b""):
        await self.send_raw(encode(header, data))

    async def send_raw(self, message):
        """Send an encoded message whole, after any other being sent."""
        async with self.send_lock:
            await self.stream.send_all(message)
