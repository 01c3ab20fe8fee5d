"""The socket layer: what a program holds (BSD's kern/uipc_socket.c, uipc_socket2.c).

A socket owns two buffers (sockbufs), one to receive and one to send: records,
each a datagram and its source, for datagram and raw sockets; one byte
stream for stream sockets. The socket layer does what every protocol shares:
the calls programs make, the buffers' limits (SO_RCVBUF, SO_SNDBUF), the
waiting (for data, for room, for a connection) and the queue of connections
a listening socket has not accepted yet. A protocol does the rest through a
small table of user requests (UserRequests, BSD's pr_usrreqs), and calls back
the few entry points BSD's protocols call: deliver() and append() (sbappend),
notify() (so_error), connected() (soisconnected), cantrcvmore()
(socantrcvmore), new_connection() (sonewconn) and wakeup() (sorwakeup and
sowwakeup in one).

The same objects serve local programs (a trio program that runs a node) and
remote ones (the control socket's system-call proxy calls these methods).
Addresses are ("A.B.C.D", port) tuples, as in Python's socket module; errors
are OSError with the errno a BSD kernel would give.
"""

from collections import deque
from contextlib import ExitStack, contextmanager
import errno
import functools
import math
import os
import socket

import trio

from . import numbers

SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SOMAXCONN = 128  # the longest queue of connections a listening socket holds unaccepted
SOCKET_OPTIONS = ("SO_BROADCAST", "SO_REUSEADDR", "SO_RCVBUF", "SO_SNDBUF", "SO_RCVTIMEO", "IP_TTL", "TCP_NODELAY")
PROTOCOL_OPTIONS = ("TCP_NODELAY",)  # options the protocol keeps, through UserRequests.ctloutput
SOCKADDR_IN_LEN = 16  # a queued datagram's source address, charged to the queue as BSD's sbappendaddr does
SB_MAX = 4 * 1024 * 1024  # the largest SO_RCVBUF or SO_SNDBUF (BSD's kern.sbmax)
SB_DEFAULT = 32768  # a buffer's size until its protocol reserves another
MAX_SOCKETS = 65536  # open sockets in one node, of every protocol (BSD's kern.maxfiles)
RECVMMSG_MAX = 1024  # datagrams one recvmmsg takes at most (Linux's UIO_MAXIOV)
ADDRESS_CACHE = 1024  # addresses kept converted between text and packed form, the least recently used dropped


def oserror(code):
    return OSError(code, os.strerror(code))


def pack_address(text):
    """Strictly dotted-quad: inet_aton would also take "10.1", "0x0a.1" or "010.0.0.1", so only the
    text that its packed form prints back as is taken (ipaddress's rule, at a fraction of the cost)."""
    packed = _dotted_quad(text) if isinstance(text, str) else None
    if packed is None:
        raise OSError(errno.EINVAL, f"{text!r} is not an IPv4 address")
    return packed


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def _dotted_quad(text):
    """text packed, or None. Cached: a socket sends to the same few addresses datagram after datagram."""
    try:
        packed = socket.inet_aton(text)
    except (OSError, ValueError):  # ValueError: a NUL or a character that is not ASCII
        return None
    return packed if socket.inet_ntoa(packed) == text else None


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


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def unpack_address(packed):
    """The dotted quad of a packed address. Cached: datagrams come from the same few peers."""
    return socket.inet_ntoa(packed)


@contextmanager
def closed_on_error(sock):
    """sock, closed if the block raises (a cancellation too): for a socket set up before it is handed on."""
    try:
        yield sock
    except BaseException:
        sock.close()
        raise


class SockBuf:
    """One direction of a socket: datagram records or a byte stream, at most hiwat bytes (BSD's sockbuf).

    cc counts what the buffer holds: for a record, its data and its source
    address, so even empty datagrams fill the buffer, as in BSD.
    """

    def __init__(self, hiwat):
        self.hiwat = hiwat
        self.cc = 0
        self.records = deque()  # (data, packed source) of datagrams, oldest first
        self.stream = bytearray()

    def space(self):
        return max(0, self.hiwat - self.cc)

    def append_record(self, data, address):
        size = len(data) + SOCKADDR_IN_LEN
        if self.cc + size > self.hiwat:
            return False
        self.records.append((data, address))
        self.cc += size
        return True

    def take_record(self):
        data, address = self.records.popleft()
        self.cc -= len(data) + SOCKADDR_IN_LEN
        return data, address

    def take_records(self, count):
        """Up to count of the oldest records, in one call for a batch."""
        records = self.records
        taken = [records.popleft() for _ in range(min(count, len(records)))]
        self.cc -= sum(len(data) for data, _ in taken) + SOCKADDR_IN_LEN * len(taken)
        return taken

    def append_bytes(self, data):
        """As much of data as there is room for; how many bytes that was."""
        count = min(len(data), self.space())
        self.stream += data[:count]
        self.cc += count
        return count

    def take_bytes(self, size):
        data = bytes(self.stream[:size])
        del self.stream[:size]
        self.cc -= len(data)
        return data

    def flush(self):
        self.records.clear()
        self.stream.clear()
        self.cc = 0


class UserRequests:
    """What a protocol does for its sockets (BSD's pr_usrreqs); the socket layer calls these.

    A protocol subclasses this and registers an instance with
    Node.register_protocol(kind, proto, usrreqs). Each hook gets the socket;
    per-connection state lives in sock.pcb. What a hook does not support it
    refuses with EOPNOTSUPP, the default.
    """

    name = "?"  # what netstat prints in the Proto column
    stream = False  # a byte stream (SOCK_STREAM) rather than datagram records

    def attach(self, sock):
        """A new socket: reserve its buffers (sock.reserve), make its pcb."""

    def bind(self, sock, address):
        raise oserror(errno.EOPNOTSUPP)

    def connect(self, sock, address):
        """Start connecting; a stream protocol calls sock.connected() once it is (now or later)."""
        raise oserror(errno.EOPNOTSUPP)

    def listen(self, sock):
        raise oserror(errno.EOPNOTSUPP)

    def accept(self, sock):
        """A queued connection is being handed to the program."""

    def send(self, sock, data, address):
        """A datagram to address (None: the connected peer); a stream protocol takes data into sock.snd."""
        raise oserror(errno.EOPNOTSUPP)

    def send_burst(self, sock, datagrams, address):
        """Datagrams of a sendmmsg (or sendto's one): how many of the first the protocol sent at once,
        in a way of its own (UDP's fast path); the socket sends the rest one by one through send().
        0 by default."""
        return 0

    def rcvd(self, sock):
        """The program took bytes from sock.rcv: there is room for more (a stream's window opens)."""

    def shutdown(self, sock):
        """The program will send no more: a stream protocol ends its stream once sock.snd is sent."""

    def detach(self, sock):
        """The socket is closed: forget it."""

    def ctloutput(self, sock, name, value):
        """An option of the protocol's own (TCP_NODELAY); ENOPROTOOPT for one it does not have."""
        raise OSError(errno.ENOPROTOOPT, f"{self.name} has no option {name}")

    def state(self, sock):
        """The connection's state as netstat prints it ("" for a protocol without states)."""
        return ""


class Socket:
    """A socket of any protocol: its buffers, state, options and the calls a program makes."""

    def __init__(self, node, kind, proto, usrreqs):
        if node.open_sockets >= MAX_SOCKETS:
            raise OSError(errno.ENFILE, f"this node has {MAX_SOCKETS} sockets open, as many as it holds")
        self.node = node
        self.kind = kind
        self.proto = proto
        self.usrreqs = usrreqs
        self.rcv = SockBuf(SB_DEFAULT)
        self.snd = SockBuf(SB_DEFAULT)
        self.pcb = None  # the protocol's own state for this socket (BSD's so_pcb)
        self._waiters = trio.lowlevel.ParkingLot()
        self._maybe_parked = False  # a task may be in _waiters: set before parking, cleared by wakeup()
        self.error = 0
        self.closed = False
        self.local = (b"\0\0\0\0", 0)
        self.remote = None
        self.isconnected = False
        self.listening = False
        self.backlog = 0
        self.completed = deque()  # connections waiting for accept()
        self.cant_send = False
        self.cant_recv = False
        self.broadcast = False
        self.reuseaddr = False
        self.ttl = None
        self.timeout = None
        self.drops = 0
        self.service = None  # the node's own service that holds this socket ("echo"), so that it can be found
        usrreqs.attach(self)
        node.open_sockets += 1

    def reserve(self, sndbuf, rcvbuf):
        """Set both buffers' limits (BSD's soreserve), as a protocol's attach does."""
        self.snd.hiwat, self.rcv.hiwat = sndbuf, rcvbuf

    # -- entry points for the protocol ---------------------------------------------

    def deliver(self, data, address):
        """Queue a datagram from address; False (and counted) when the receive buffer is full."""
        if self.cant_recv or not self.rcv.append_record(data, address):
            self.drops += 1
            return False
        self.wakeup()
        return True

    def append(self, data):
        """Add stream bytes to the receive buffer; how many fitted."""
        count = self.rcv.append_bytes(data)
        if count:
            self.wakeup()
        return count

    def notify(self, error):
        """An asynchronous error (ICMP unreachable, a refused connection): the next call returns it."""
        self.error = error
        self.wakeup()

    def connected(self):
        """The protocol has connected this socket (BSD's soisconnected)."""
        self.isconnected = True
        self.wakeup()

    def cantrcvmore(self):
        """The peer sends no more: once the buffer is read, recv returns b"" (end of file)."""
        self.cant_recv = True
        self.wakeup()

    def new_connection(self):
        """A connected socket queued for accept() on this listening one (BSD's sonewconn); None when the queue is full."""
        if len(self.completed) >= self.backlog or self.node.open_sockets >= MAX_SOCKETS:
            return None
        sock = Socket(self.node, self.kind, self.proto, self.usrreqs)
        sock.reserve(self.snd.hiwat, self.rcv.hiwat)
        self.completed.append(sock)
        self.wakeup()
        return sock

    def wakeup(self):
        """Wake every task waiting on this socket, for data, room or a state change.

        Called for every datagram queued, so it reads a flag that _wait sets
        before parking, not trio's ParkingLot (asking it is a Python call)."""
        if self._maybe_parked:
            self._maybe_parked = False
            self._waiters.unpark_all()

    # -- readiness ---------------------------------------------------------------------

    def readable(self):
        return bool(self.rcv.cc or self.completed or self.cant_recv or self.error or self.closed)

    def writable(self):
        if self.error or self.cant_send or self.closed or not self.usrreqs.stream:
            return True
        return self.isconnected and self.snd.space() > 0

    async def wait_readable(self):
        """Wait until recv or accept would not wait (data, a connection, end of file or an error)."""
        await self._wait(self.readable)

    async def wait_writable(self):
        """Wait until send would take at least one byte without waiting (or would fail at once)."""
        await self._wait(self.writable)

    async def _wait(self, ready, timeout=None):
        """Wait until ready(); EAGAIN after timeout seconds. Cancellation works as for any trio call.

        Ready at once, it returns at once: a receiver that keeps up with its
        queue pays no trip through the scheduler per datagram.
        """
        if ready():
            return
        self.node.busy_poll.waiting()
        if timeout is None:  # no cancel scope of its own: a blocking receive per datagram pays for none
            while not ready():
                self._maybe_parked = True
                await self._waiters.park()
            return
        with trio.move_on_after(timeout):
            while not ready():
                self._maybe_parked = True
                await self._waiters.park()
            return
        raise oserror(errno.EAGAIN)

    # -- the calls a program makes ---------------------------------------------------------
    # A call that need not wait still takes a cancellation and lets other tasks run (trio's
    # checkpoint), as trio's own sockets do: the cancellation before it acts, so that a call that
    # raises Cancelled has done nothing (no datagram sent, no address bound); the other tasks
    # after, so that a reply is sent before the scheduler's pass, not after it.

    async def bind(self, address):
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        self.usrreqs.bind(self, address)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def connect(self, address):
        """Fix the peer of a datagram socket; connect a stream socket, waiting until it is connected.

        As BSD's in_pcbconnect, an unbound socket gets an ephemeral port and
        a wildcard local address becomes the one the route to the peer uses.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self.listening:
            raise OSError(errno.EOPNOTSUPP, "a listening socket cannot connect")
        if self.usrreqs.stream and self.isconnected:
            raise oserror(errno.EISCONN)
        self.usrreqs.connect(self, address)
        if self.usrreqs.stream:
            await self._wait(lambda: self.isconnected or self.error or self.closed)
            self._check_open()
            self._take_error()
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def listen(self, backlog=SOMAXCONN):
        """Take connections; at most backlog (bounded by SOMAXCONN) wait to be accepted."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if self.isconnected:
            raise oserror(errno.EINVAL)
        self.usrreqs.listen(self)
        self.listening = True
        self.backlog = max(1, min(int(backlog), SOMAXCONN))
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def accept(self, timeout=None):
        """Wait for a connection: (new socket, peer address)."""
        self._check_open()
        if not self.listening:
            raise OSError(errno.EINVAL, "accept: the socket is not listening")
        await self._wait(lambda: self.completed or self.error or self.closed, self._timeout(timeout))
        self._check_open()
        self._take_error()
        sock = self.completed.popleft()
        self.usrreqs.accept(sock)
        return sock, sock.getpeername()

    async def sendto(self, data, address=None):
        """Send data: a datagram at once, or all of a stream's bytes, waiting for room as they go."""
        data = bytes(data)
        if not self.usrreqs.stream:
            await trio.lowlevel.checkpoint_if_cancelled()
            if not self.usrreqs.send_burst(self, (data,), address):  # the protocol's fast path, if it has one
                self._send_datagram(data, address)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return len(data)
        sent, view = 0, memoryview(data)  # a view: the rest is not copied again for every piece
        while True:
            await self.wait_writable()
            sent += self._send_bytes(view[sent:], address)
            if sent == len(data):
                return sent

    async def send(self, data):
        return await self.sendto(data)

    def send_nowait(self, data, address=None):
        """Send without waiting: a datagram, or as many stream bytes as there is room for; EAGAIN when none."""
        data = bytes(data)
        if not self.usrreqs.stream:
            self._send_datagram(data, address)
            return len(data)
        if not self.writable():
            raise oserror(errno.EAGAIN)
        return self._send_bytes(data, address)

    async def sendmmsg(self, datagrams, address=None):
        """Send several datagrams as one burst (BSD's sendmmsg(2)); returns how many went.

        The link wakes its peers once for the whole burst instead of once a
        datagram. The protocol may send the first datagrams its own way
        (send_burst: UDP's fast path); the rest go one by one. An error on the
        first datagram is raised; a later one ends the burst early, and the
        count says where.
        """
        if self.usrreqs.stream:
            raise OSError(errno.EOPNOTSUPP, "sendmmsg sends datagrams")
        datagrams = list(datagrams)
        await trio.lowlevel.checkpoint_if_cancelled()
        with ExitStack() as burst:
            for ifp in self.node.interfaces.values():
                burst.enter_context(ifp.burst())
            sent = self.usrreqs.send_burst(self, datagrams, address)
            for data in datagrams[sent:]:
                try:
                    self._send_datagram(bytes(data), address)
                except OSError:
                    if not sent:
                        raise
                    break
                sent += 1
        await trio.lowlevel.cancel_shielded_checkpoint()
        return sent

    def _send_datagram(self, data, address):
        self._check_open()
        self._take_error()
        if self.cant_send:
            raise oserror(errno.EPIPE)
        try:
            self.usrreqs.send(self, data, address)
        finally:
            if self.node.ipintrq.queue:
                self.node.ipintrq.drain()  # a packet to the node itself is received before the next is sent

    def _send_bytes(self, data, address):
        """Put what fits of data in the send buffer, through the protocol; how many bytes."""
        self._check_open()
        self._take_error()
        if self.cant_send:
            raise oserror(errno.EPIPE)
        if not self.isconnected:
            raise oserror(errno.ENOTCONN)
        if address is not None:
            raise oserror(errno.EISCONN)
        count = min(len(data), self.snd.space())
        try:
            self.usrreqs.send(self, bytes(data[:count]), None)
        finally:
            self.node.ipintrq.drain()
        return count

    async def recvfrom(self, bufsize=65535, timeout=None):
        """Wait for data: (data, (address, port)); EAGAIN after timeout seconds.

        A datagram longer than bufsize is cut to it, the rest discarded, as
        recvfrom(2) does; a stream gives at most bufsize bytes, and b"" at its end.
        """
        await self._wait_to_receive(timeout)
        if self.usrreqs.stream:
            data = self.rcv.take_bytes(bufsize)
            if data:
                self.usrreqs.rcvd(self)
            return data, self.getpeername() if self.remote else ("0.0.0.0", 0)
        if not self.rcv.records:
            return b"", ("0.0.0.0", 0)  # shut down for reading
        data, address = self.rcv.take_record()
        return data[:bufsize], (unpack_address(address[0]), address[1])

    async def recvmmsg(self, vlen=RECVMMSG_MAX, bufsize=65535, timeout=None):
        """Wait for datagrams and take up to vlen of those queued: [(data, (address, port)), ...]
        (BSD's recvmmsg(2)). A reader that keeps up with a burst pays one call for it, not one a
        datagram; [] once shut down for reading. Each datagram is cut to bufsize, as by recvfrom."""
        if self.usrreqs.stream:
            raise OSError(errno.EOPNOTSUPP, "recvmmsg receives datagrams")
        await self._wait_to_receive(timeout)
        taken = []
        source = peer = None
        for data, address in self.rcv.take_records(vlen):
            if address != source:  # a burst comes from one peer: one address tuple for it
                source, peer = address, (unpack_address(address[0]), address[1])
            taken.append((data[:bufsize], peer))
        return taken

    async def _wait_to_receive(self, timeout):
        """Wait until a receive would not wait; raise what a receive raises with nothing queued."""
        self._check_open()
        await self._wait(self.readable, self._timeout(timeout))
        self._check_open()
        if not self.rcv.cc:
            self._take_error()

    async def recv(self, bufsize=65535, timeout=None):
        data, _ = await self.recvfrom(bufsize, timeout)
        return data

    async def shutdown(self, how):
        """End reading (SHUT_RD), sending (SHUT_WR: the peer reads end of file once the buffer is sent) or both."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise OSError(errno.EINVAL, f"shutdown: how must be 0, 1 or 2, not {how!r}")
        if not self.isconnected and self.remote is None:
            raise oserror(errno.ENOTCONN)
        if how != SHUT_WR:
            self.rcv.flush()
            self.cantrcvmore()
        if how != SHUT_RD and not self.cant_send:
            self.cant_send = True
            self.usrreqs.shutdown(self)
            self.wakeup()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _timeout(self, timeout):
        if timeout is None:
            return self.timeout
        return _value("timeout", timeout, 0, math.inf)

    def _take_error(self):
        error, self.error = self.error, 0
        if error:
            raise oserror(error)

    # -- options ---------------------------------------------------------------

    def setsockopt(self, name, value):
        if name == "SO_BROADCAST":
            self.broadcast = bool(value)
        elif name == "SO_REUSEADDR":
            self.reuseaddr = bool(value)
        elif name in ("SO_RCVBUF", "SO_SNDBUF"):
            if isinstance(value, int) and not isinstance(value, bool) and value > SB_MAX:
                raise OSError(errno.ENOBUFS, f"{name} may be at most {SB_MAX} bytes")
            (self.rcv if name == "SO_RCVBUF" else self.snd).hiwat = _value(name, value, 1, SB_MAX, int)
            self.wakeup()
        elif name == "SO_RCVTIMEO":
            self.timeout = None if value is None else _value(name, value, 0, math.inf) or None
        elif name == "IP_TTL":
            self.ttl = _value(name, value, 1, 255, int)
        elif name in PROTOCOL_OPTIONS:
            self.usrreqs.ctloutput(self, name, value)
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
            for sock in self.completed:  # connections never accepted go with their listener
                sock.close()
            self.completed.clear()
            self.usrreqs.detach(self)
            self.node.open_sockets -= 1
            self.wakeup()

    async def aclose(self):
        """close() for code that also drives remote sockets, whose close is a call to the node."""
        self.close()
        await trio.lowlevel.checkpoint()

    def _check_open(self):
        if self.closed:
            raise oserror(errno.EBADF)

    def describe(self):
        remote = self.remote or (b"\0\0\0\0", 0)
        return {"proto": self.usrreqs.name, "recv_q": self.rcv.cc, "send_q": self.snd.cc,
                "local": list(self.getsockname()), "remote": [unpack_address(remote[0]), remote[1]],
                "state": self.usrreqs.state(self)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _value(name, value, low, high, kind=None):
    """value when it is a finite number (an int when kind is int; never a bool) from low to high; else EINVAL."""
    try:
        if kind is int and not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        return numbers.in_range(value, low, high)
    except ValueError as e:
        raise OSError(errno.EINVAL, f"{name}: {e}") from None
