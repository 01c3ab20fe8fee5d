"""A stream socket as a trio.abc.HalfCloseableStream, so trio code runs on a node unchanged.

Wraps a local Socket or a RemoteSocket (they have the same async calls): an
HTTP server or a line protocol written against trio's Stream interface
(send_all, receive_some, send_eof, aclose) then talks TCP through rumpnet.
"""

import errno

import trio

from .sockets import SHUT_WR

RECEIVE_SIZE = 65536  # what receive_some asks for when the caller gives no size


class SocketStream(trio.abc.HalfCloseableStream):
    def __init__(self, sock):
        self.socket = sock
        self._closed = False

    async def send_all(self, data):
        self._check()
        try:
            await self.socket.send(bytes(data))
        except OSError as e:
            raise trio.BrokenResourceError(f"the connection failed: {e.strerror}") from e

    async def wait_send_all_might_not_block(self):
        self._check()
        await self.socket.wait_writable()

    async def send_eof(self):
        self._check()
        try:
            await self.socket.shutdown(SHUT_WR)
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise trio.BrokenResourceError(f"the connection failed: {e.strerror}") from e

    async def receive_some(self, max_bytes=None):
        self._check()
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        try:
            return await self.socket.recv(max_bytes or RECEIVE_SIZE)
        except OSError as e:
            raise trio.BrokenResourceError(f"the connection failed: {e.strerror}") from e

    async def aclose(self):
        if not self._closed:
            self._closed = True
            await self.socket.aclose()
        else:
            await trio.lowlevel.checkpoint()

    def _check(self):
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
