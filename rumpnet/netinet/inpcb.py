"""Internet protocol control blocks: the ports a protocol's sockets hold (BSD's netinet/in_pcb.c).

Every transport that numbers its endpoints by port (UDP, TCP, a protocol of
the reader's own) keeps its sockets in a PcbTable of its own, so each
protocol number is its own port namespace, as in BSD; binding, the choice
of an ephemeral port, the local address a connect picks and the lookup of
the socket a packet is for are the same code for all of them.
"""

import errno
import random

from ..kern.sockets import oserror, parse_sockaddr
from .ip import route_to, source_for

EPHEMERAL_FIRST = 49152  # NetBSD's net.inet.ip.anonportmin
EPHEMERAL_LAST = 65535
ANY = b"\0\0\0\0"


class PcbTable:
    """One protocol's sockets by local port."""

    def __init__(self, node, proto):
        self.node = node
        self.proto = proto
        self.by_port = {}  # port -> list of sockets

    def bind(self, sock, packed, port):
        """Give sock the local (packed, port); port 0 picks an ephemeral one."""
        if port == 0:
            port = self._ephemeral()
        for other in self.by_port.get(port, ()):
            clash = other.local[0] == packed or ANY in (other.local[0], packed)
            if clash and not (sock.reuseaddr and other.reuseaddr):
                raise oserror(errno.EADDRINUSE)
        sock.local = (packed, port)
        self.by_port.setdefault(port, []).append(sock)

    def insert(self, sock, packed, port):
        """Add a socket made for a connection on a port already bound by its listener (no clash check)."""
        sock.local = (packed, port)
        self.by_port.setdefault(port, []).append(sock)

    def _ephemeral(self):
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        start = random.randrange(span)
        for step in range(span):
            port = EPHEMERAL_FIRST + (start + step) % span
            if port not in self.by_port:
                return port
        raise oserror(errno.EADDRINUSE)

    def remove(self, sock):
        port = sock.local[1]
        sockets = self.by_port.get(port, [])
        if sock in sockets:
            sockets.remove(sock)
            if not sockets:
                del self.by_port[port]

    def lookup(self, dst, dport, src, sport):
        """The socket for a unicast packet: a connected match first, then the most specific bound one."""
        best = None
        for sock in self.by_port.get(dport, ()):
            if sock.local[0] not in (ANY, dst):
                continue
            if sock.remote is not None:
                if sock.remote == (src, sport):
                    return sock
                continue
            if best is None or best.local[0] == ANY:
                best = sock
        return best

    def sockets(self):
        return [sock for group in self.by_port.values() for sock in group]


def in_pcbbind(table, sock, address):
    """bind(2) for a port-numbered protocol: the address must be ours (or a broadcast one), once."""
    if sock.local[1]:
        raise OSError(errno.EINVAL, "socket is already bound")
    packed, port = parse_sockaddr(address)
    node = table.node
    if packed != ANY and packed not in node.inaddrs.local and packed not in node.inaddrs.broadcast:
        raise oserror(errno.EADDRNOTAVAIL)
    table.bind(sock, packed, port)


def in_pcbconnect(table, sock, address):
    """Fix the peer; an unbound socket gets an ephemeral port, a wildcard one the route's source address."""
    dst, port = parse_sockaddr(address, 1)
    ifp, _ = route_to(table.node, dst)
    if ifp is None:
        raise oserror(errno.ENETUNREACH)
    if not sock.local[1]:
        table.bind(sock, ANY, 0)
    if sock.local[0] == ANY:
        sock.local = (source_for(ifp), sock.local[1])
    sock.remote = (dst, port)
