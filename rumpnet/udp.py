"""UDP (RFC 768): datagrams between ports (BSD's netinet/udp_usrreq.c)."""

import errno
import random
import struct
from contextlib import ExitStack

import trio

from .checksum import in_cksum, pseudo_header_sum
from .icmp import icmp_error
from .ip import IP_HEADER, IPPROTO_UDP, ip_output
from .offload import CSUM_L4_BAD, CSUM_L4_CHECKED
from .sockets import Socket, oserror, parse_sockaddr

UDP_HEADER = struct.Struct("!HHHH")
UDP_MAXDATA = 65535 - IP_HEADER.size - UDP_HEADER.size  # larger than any IPv4 packet can carry
EPHEMERAL_FIRST = 49152  # NetBSD's net.inet.ip.anonportmin
EPHEMERAL_LAST = 65535
ANY = b"\0\0\0\0"


class UdpSocket(Socket):
    kind = "udp"

    def __init__(self, node):
        super().__init__(node, IPPROTO_UDP)
        self.table = node.udp

    def bind(self, address):
        self._check_open()
        if self.local[1]:
            raise OSError(errno.EINVAL, "socket is already bound")
        packed, port = parse_sockaddr(address)
        if packed != ANY and not self.node.is_local(packed) and not self.node.is_broadcast(packed):
            raise oserror(errno.EADDRNOTAVAIL)
        self.table.bind(self, packed, port)

    def connect(self, address):
        """Fix the peer: send() needs no address, and ICMP errors about it come back as errors.

        As BSD's in_pcbconnect, an unbound socket gets an ephemeral port and
        a wildcard local address becomes the one the route to the peer uses.
        """
        self._check_open()
        dst, port = parse_sockaddr(address, 1)
        ifp, _ = self.node.route_to(dst)
        if ifp is None:
            raise oserror(errno.ENETUNREACH)
        if not self.local[1]:
            self.table.bind(self, ANY, 0)
        if self.local[0] == ANY:
            self.local = (self.node.source_for(ifp, dst), self.local[1])
        self.remote = (dst, port)

    async def sendto(self, data, address=None):
        await self.sendmmsg([data], address)
        return len(data)

    async def send(self, data):
        return await self.sendto(data)

    async def sendmmsg(self, datagrams, address=None):
        """Send several datagrams as one burst (BSD's sendmmsg(2)); returns how many went.

        The link wakes its peers once for the whole burst instead of once a
        datagram. An error on the first datagram is raised; a later one ends
        the burst early, and the count says where.
        """
        self._check_open()
        self._take_error()
        if address is None:
            if self.remote is None:
                raise oserror(errno.EDESTADDRREQ)
            dst, port = self.remote
        else:
            if self.remote is not None:
                raise oserror(errno.EISCONN)
            dst, port = parse_sockaddr(address, 1)
        if not self.local[1]:
            self.table.bind(self, ANY, 0)
        sent = 0
        with ExitStack() as burst:
            for ifp in self.node.interfaces.values():
                burst.enter_context(ifp.burst())
            for data in datagrams:
                try:
                    udp_output(self.node, self, bytes(data), dst, port)
                except OSError:
                    if not sent:
                        raise
                    break
                sent += 1
        await trio.lowlevel.checkpoint()
        return sent


class UdpTable:
    """The node's UDP sockets by port (BSD's inpcb table for UDP)."""

    def __init__(self, node):
        self.node = node
        self.by_port = {}  # port -> list of sockets

    def bind(self, sock, packed, port):
        if port == 0:
            port = self._ephemeral()
        for other in self.by_port.get(port, ()):
            clash = other.local[0] == packed or ANY in (other.local[0], packed)
            if clash and not (sock.reuseaddr and other.reuseaddr):
                raise oserror(errno.EADDRINUSE)
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
        """The socket for a unicast datagram: connected match first, then bound."""
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


def udp_output(node, sock, data, dst, port):
    if len(data) > UDP_MAXDATA:
        raise oserror(errno.EMSGSIZE)
    header = UDP_HEADER.pack(sock.local[1], port, UDP_HEADER.size + len(data), 0)
    ip_output(node, IPPROTO_UDP, sock.local[0], dst, header + data, ttl=sock.ttl,
              broadcast_ok=sock.broadcast, udp_checksum=True)
    node.stats.udp["output"] += 1


def udp_input(node, ifp, header, packet, marks):
    """Check a datagram once and queue it on its socket, or answer port unreachable."""
    stats = node.stats.udp
    stats["input"] += 1
    datagram = packet[header.hlen:]
    if len(datagram) < UDP_HEADER.size:
        stats["too_short"] += 1
        return
    sport, dport, length, checksum = UDP_HEADER.unpack_from(datagram)
    if length < UDP_HEADER.size or length > len(datagram):
        stats["bad_length"] += 1
        return
    datagram = datagram[:length]
    if marks & CSUM_L4_CHECKED:  # by the interface, or never on a wire (loopback)
        if marks & CSUM_L4_BAD:
            stats["bad_checksum"] += 1
            return
    elif checksum == 0:
        stats["no_checksum"] += 1
    elif in_cksum(datagram, pseudo_header_sum(header.src, header.dst, IPPROTO_UDP, length)) != 0:
        stats["bad_checksum"] += 1
        return
    data = datagram[UDP_HEADER.size:]
    source = (header.src, sport)
    if header.broadcast:
        receivers = [s for s in node.udp.by_port.get(dport, ())
                     if s.local[0] in (ANY, header.dst) and s.remote in (None, source)]
        if not receivers:
            stats["no_port_broadcast"] += 1
        for sock in receivers:
            _deliver(stats, sock, data, source)
        return
    sock = node.udp.lookup(header.dst, dport, header.src, sport)
    if sock is None:
        stats["no_port"] += 1
        icmp_error(node, packet, header, 3, 3)
        return
    _deliver(stats, sock, data, source)


def _deliver(stats, sock, data, source):
    if sock.deliver(data, source):
        stats["delivered"] += 1
    else:
        stats["full_socket"] += 1


def udp_notify(node, src, sport, dst, dport, error):
    """An ICMP error quoted one of our datagrams: tell the connected socket that sent it."""
    for sock in node.udp.by_port.get(sport, ()):
        if sock.remote == (dst, dport) and sock.local[0] in (ANY, src):
            sock.notify(error)
