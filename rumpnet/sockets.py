"""Sockets: what a program holds, for UDP and for raw IP (BSD's kern/uipc_socket.c).

The same objects serve local programs (a trio program that runs a node) and
remote ones (the control socket's system-call proxy calls these methods).
Addresses are ("A.B.C.D", port) tuples, as in Python's socket module; errors
are OSError with the errno a BSD kernel would give.
"""

import errno
import ipaddress
import math
import os
import socket
from collections import deque

import trio

from . import numbers
from .ip import ip_output

SOCK_DGRAM = 2
SOCK_RAW = 3
SOCKET_OPTIONS = ("SO_BROADCAST", "SO_REUSEADDR", "SO_RCVBUF", "SO_RCVTIMEO", "IP_TTL")
SOCKADDR_IN_LEN = 16  # a queued datagram's source address, charged to the queue as BSD's sbappendaddr does
SB_MAX = 4 * 1024 * 1024  # the largest SO_RCVBUF (BSD's kern.sbmax)


def oserror(code):
    return OSError(code, os.strerror(code))


def pack_address(text):
    """Strictly dotted-quad (inet_aton would take "10.1" too)."""
    if not isinstance(text, str):
        raise OSError(errno.EINVAL, f"{text!r} is not an IPv4 address")
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise OSError(errno.EINVAL, f"{text!r} is not an IPv4 address") from None


def parse_sockaddr(address, low_port=0):
    """("A.B.C.D", port) to (packed address, port), "" meaning 0.0.0.0; EINVAL for anything else.

    A remote caller may send anything, so nothing here trusts the shape.
    """
    if not isinstance(address, (tuple, list)) or len(address) != 2:
        raise OSError(errno.EINVAL, f"{address!r} is not an (address, port) pair")
    host, port = address
    if isinstance(port, bool) or not isinstance(port, int) or not low_port <= port <= 65535:
        raise OSError(errno.EINVAL, f"port {port!r} is not {low_port} to 65535")
    return pack_address("0.0.0.0" if host == "" else host), port


def unpack_address(packed):
    return socket.inet_ntoa(packed)


class Socket:
    """A socket's receive queue, pending error and options; the protocol subclasses send."""

    kind = "?"

    def __init__(self, node, proto):
        self.node = node
        self.proto = proto
        self.queue = deque()
        self.queued_bytes = 0
        self._waiters = trio.lowlevel.ParkingLot()
        self.error = 0
        self.closed = False
        self.local = (b"\0\0\0\0", 0)
        self.remote = None
        self.broadcast = False
        self.reuseaddr = False
        self.ttl = None
        self.timeout = None
        self.rcvbuf = node.sysctl["net.inet.udp.recvspace"]
        self.drops = 0
        self.service = None  # the node's own service that holds this socket ("echo"), so that it can be found

    # -- the receive side, fed by the protocol --------------------------------

    def deliver(self, data, address):
        """Queue a datagram; False (and counted) when the queue is full.

        Each datagram costs its length plus its source address, so even empty
        datagrams fill the queue, as in BSD.
        """
        size = len(data) + SOCKADDR_IN_LEN
        if self.queued_bytes + size > self.rcvbuf:
            self.drops += 1
            return False
        self.queue.append((data, address))
        self.queued_bytes += size
        if self._waiters:
            self._waiters.unpark_all()
        return True

    def notify(self, error):
        """An asynchronous error (ICMP unreachable): the next call returns it."""
        self.error = error
        self._waiters.unpark_all()

    def _take_error(self):
        error, self.error = self.error, 0
        if error:
            raise oserror(error)

    async def recvfrom(self, bufsize=65535, timeout=None):
        """Wait for a datagram: (data, (address, port)); EAGAIN after timeout seconds.

        A longer datagram is cut to bufsize, the rest discarded, as recvfrom(2)
        does. Cancellation (trio.move_on_after, fail_after) works as for any trio call.
        """
        self._check_open()
        timeout = self.timeout if timeout is None else _value("timeout", timeout, 0, math.inf)
        if not self.queue:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                while not self.queue:
                    self._check_open()
                    self._take_error()
                    await self._waiters.park()
            if not self.queue:
                raise oserror(errno.EAGAIN)
        data, address = self.queue.popleft()
        self.queued_bytes -= len(data) + SOCKADDR_IN_LEN
        return data[:bufsize], (unpack_address(address[0]), address[1])

    async def recv(self, bufsize=65535, timeout=None):
        data, _ = await self.recvfrom(bufsize, timeout)
        return data

    # -- options ---------------------------------------------------------------

    def setsockopt(self, name, value):
        if name == "SO_BROADCAST":
            self.broadcast = bool(value)
        elif name == "SO_REUSEADDR":
            self.reuseaddr = bool(value)
        elif name == "SO_RCVBUF":
            if isinstance(value, int) and not isinstance(value, bool) and value > SB_MAX:
                raise OSError(errno.ENOBUFS, f"SO_RCVBUF may be at most {SB_MAX} bytes")
            self.rcvbuf = _value(name, value, 1, SB_MAX, int)
        elif name == "SO_RCVTIMEO":
            self.timeout = None if value is None else _value(name, value, 0, math.inf) or None
        elif name == "IP_TTL":
            self.ttl = _value(name, value, 1, 255, int)
        else:
            raise OSError(errno.ENOPROTOOPT, f"unknown socket option {name!r} (known: {', '.join(SOCKET_OPTIONS)})")

    def getsockname(self):
        return unpack_address(self.local[0]), self.local[1]

    def getpeername(self):
        if self.remote is None:
            raise oserror(errno.ENOTCONN)
        return unpack_address(self.remote[0]), self.remote[1]

    def close(self):
        if not self.closed:
            self.closed = True
            self.node.detach_socket(self)
            self._waiters.unpark_all()

    def _check_open(self):
        if self.closed:
            raise oserror(errno.EBADF)

    def describe(self):
        remote = self.remote or (b"\0\0\0\0", 0)
        return {"proto": self.kind, "recv_q": self.queued_bytes, "send_q": 0,
                "local": list(self.getsockname()), "remote": [unpack_address(remote[0]), remote[1]]}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawSocket(Socket):
    """A raw IP socket: sends a protocol's message, receives whole IP packets (as rump.ping uses)."""

    kind = "raw"

    def bind(self, address):
        self._check_open()
        packed = pack_address(address[0])
        if packed != b"\0\0\0\0" and not self.node.is_local(packed):
            raise oserror(errno.EADDRNOTAVAIL)
        self.local = (packed, 0)

    def connect(self, address):
        self._check_open()
        self.remote = (pack_address(address[0]), 0)

    async def sendto(self, data, address=None):
        self._check_open()
        self._take_error()
        if address is None:
            if self.remote is None:
                raise oserror(errno.EDESTADDRREQ)
            dst = self.remote[0]
        else:
            dst = pack_address(address[0])
        # as rip_output does: a raw socket may always send to a broadcast address
        ip_output(self.node, self.proto, self.local[0], dst, bytes(data), ttl=self.ttl, broadcast_ok=True)
        await trio.lowlevel.checkpoint()
        return len(data)

    async def send(self, data):
        return await self.sendto(data)


def _value(name, value, low, high, kind=None):
    """value when it is a finite number (an int when kind is int; never a bool) from low to high; else EINVAL."""
    try:
        if kind is int and not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        return numbers.in_range(value, low, high)
    except ValueError as e:
        raise OSError(errno.EINVAL, f"{name}: {e}") from None
