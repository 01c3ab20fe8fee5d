"""The client side of the control socket: a running node, driven from another process.

`connect(url)` gives a RemoteNode whose calls mirror the node's own API, and
whose sockets (RemoteSocket) offer the same async methods as local ones, so
tools such as ping run unchanged over either. This is rumpnet's rumpclient.
"""

from contextlib import asynccontextmanager
import errno
import itertools
import os

import trio

from .kern.protocol import (MAX_REPLY_DATA, MAX_REPLY_HEADER, MAX_REQUEST_DATA, PROTOCOL_VERSION, MessageStream,
                            ProtocolError, parse_url)
from .kern.sockets import SOCK_STREAM, SOMAXCONN
from .kern.tasks import open_service_nursery


class NodeUnreachable(Exception):
    """No node answers at the URL; the message says which and why."""


class RemoteNode:
    def __init__(self, url, messages):
        self.url = url
        self.messages = messages
        self._ids = itertools.count(1)
        self._pending = {}

    async def _reader(self):
        try:
            while True:
                message = await self.messages.receive()
                if message is None:
                    break
                header, data = message
                waiter = self._pending.pop(header.get("id"), None)
                if waiter is not None:
                    waiter[1].append((header, data))
                    waiter[0].set()
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        for event, box in self._pending.values():
            box.append(None)
            event.set()
        self._pending.clear()

    async def call(self, call_name, data=b"", **args):
        """Make one call on the node; returns its result, or raises OSError with the node's errno."""
        result, _ = await self.call_with_data(call_name, data, **args)
        return result

    async def call_with_data(self, call_name, data=b"", **args):
        """Make one call on the node: (its result, the data of its reply), or OSError with the node's errno."""
        request_id = next(self._ids)
        event, box = trio.Event(), []
        self._pending[request_id] = (event, box)
        try:
            await self.messages.send({"id": request_id, "call": call_name, "args": args}, data)
            await event.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise NodeUnreachable(f"{self.url}: the node went away") from None
        finally:
            self._pending.pop(request_id, None)  # answered, failed or cancelled: nobody waits any more
        if not box or box[0] is None:
            raise NodeUnreachable(f"{self.url}: the node went away")
        header, out = box[0]
        if "errno" in header:
            raise OSError(header["errno"], header.get("message") or os.strerror(header["errno"]))
        return header.get("result"), out

    async def socket(self, kind, proto=0):
        return RemoteSocket(self, await self.call("socket", kind=kind, proto=proto), kind)


class RemoteSocket:
    """A socket in a remote node, with a local socket's async methods."""

    def __init__(self, node, fd, kind):
        self.node = node
        self.fd = fd
        self.kind = kind

    async def bind(self, address):
        await self.node.call("bind", fd=self.fd, address=list(address))

    async def connect(self, address):
        await self.node.call("connect", fd=self.fd, address=list(address))

    async def listen(self, backlog=SOMAXCONN):
        await self.node.call("listen", fd=self.fd, backlog=backlog)

    async def accept(self, timeout=None):
        fd, peer = await self.node.call("accept", fd=self.fd, timeout=timeout)
        return RemoteSocket(self.node, fd, self.kind), tuple(peer)

    async def sendto(self, data, address=None):
        """A datagram in one call; a stream in pieces, waiting for room in the node between them."""
        data = bytes(data)
        if self.kind != SOCK_STREAM:
            if len(data) > MAX_REQUEST_DATA:  # more than any datagram, and more than a node reads
                raise OSError(errno.EMSGSIZE, "Message too long")
            return await self.send_nowait(data, address)
        sent = 0
        while True:
            try:
                sent += await self.send_nowait(data[sent:sent + MAX_REQUEST_DATA], address)
            except BlockingIOError:
                await self.wait_writable()
            if sent == len(data):
                return sent

    async def send(self, data):
        return await self.sendto(data)

    async def send_nowait(self, data, address=None):
        """What the node's socket takes without waiting; EAGAIN (BlockingIOError) when a stream has no room."""
        return await self.node.call("sendto", data=bytes(data), fd=self.fd,
                                    address=list(address) if address else None)

    async def recvfrom(self, bufsize=65535, timeout=None):
        address, data = await self.node.call_with_data("recvfrom", fd=self.fd, bufsize=bufsize, timeout=timeout)
        return data, tuple(address)

    async def recv(self, bufsize=65535, timeout=None):
        data, _ = await self.recvfrom(bufsize, timeout)
        return data

    async def shutdown(self, how):
        await self.node.call("shutdown", fd=self.fd, how=how)

    async def wait_readable(self):
        await self.node.call("wait_readable", fd=self.fd)

    async def wait_writable(self):
        await self.node.call("wait_writable", fd=self.fd)

    async def setsockopt(self, name, value):
        await self.node.call("setsockopt", fd=self.fd, name=name, value=value)

    async def getsockname(self):
        return tuple(await self.node.call("getsockname", fd=self.fd))

    async def getpeername(self):
        return tuple(await self.node.call("getpeername", fd=self.fd))

    async def close(self):
        await self.node.call("close", fd=self.fd)

    async def aclose(self):
        await self.close()


def server_url(explicit=None):
    """The node to talk to: --server, else $RUMP_SERVER (as rumpclient reads it)."""
    url = explicit or os.environ.get("RUMP_SERVER")
    if not url:
        raise NodeUnreachable("no node given: set RUMP_SERVER=unix://PATH or use --server unix://PATH")
    return url


@asynccontextmanager
async def connect(url=None):
    url = server_url(url)
    try:
        path = parse_url(url)
    except ValueError as e:
        raise NodeUnreachable(str(e)) from None
    try:
        stream = await trio.open_unix_socket(path)
    except OSError as e:
        hint = " (is the node running? start one with: rumpnet server URL)" \
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED) else ""
        raise NodeUnreachable(f"{url}: cannot connect: {e.strerror}{hint}") from None
    async with stream:
        messages = MessageStream(stream, MAX_REPLY_HEADER, MAX_REPLY_DATA)
        await _hello(url, messages)
        async with open_service_nursery() as nursery:
            remote = RemoteNode(url, messages)
            nursery.start_soon(remote._reader)
            yield remote


async def _hello(url, messages):
    """Say which protocol version this client speaks; NodeUnreachable, in one line, unless the node speaks it too."""
    try:
        await messages.send({"id": 0, "call": "hello", "args": {"version": PROTOCOL_VERSION}})
    except trio.BrokenResourceError:
        pass  # the node may have hung up after saying why: read it
    try:
        message = await messages.receive()
    except (ProtocolError, trio.BrokenResourceError):
        message = None
    if message is None:
        raise NodeUnreachable(f"{url}: the node closed the connection")
    reply = message[0]
    if reply.get("errno") == errno.ENOSYS:
        raise NodeUnreachable(f"{url}: the node speaks a protocol older than version {PROTOCOL_VERSION} "
                              "(it has no hello call)")
    if "errno" in reply:
        raise NodeUnreachable(f"{url}: {reply.get('message')}")
    result = reply.get("result")
    version = result.get("version") if isinstance(result, dict) else None
    if version != PROTOCOL_VERSION:
        raise NodeUnreachable(f"{url}: the node speaks protocol version {version}, this client version {PROTOCOL_VERSION}")
