"""UDP (RFC 768): datagrams between ports (BSD's netinet/udp_usrreq.c)."""

import errno
import struct

from ..kern.sockets import UserRequests, oserror, parse_sockaddr
from ..net.offload import CSUM_L4_BAD, CSUM_L4_CHECKED, IFCAP_CSUM_UDPv4_Tx, M_CSUM_UDPv4
from .checksum import in_cksum, pseudo_header_sum, verifies
from .icmp import icmp_error
from .inpcb import ANY, in_pcbbind, in_pcbconnect
from .ip import IP_HEADER, IPPROTO_UDP, ip_output, route_output, source_for

UDP_HEADER = struct.Struct("!HHHH")
UDP_MAXDATA = 65535 - IP_HEADER.size - UDP_HEADER.size  # larger than any IPv4 packet can carry
UDP_SENDSPACE = 9216  # NetBSD's udp_sendspace; UDP sends at once, so its send buffer stays empty


class UdpUserRequests(UserRequests):
    """What UDP does for its sockets (BSD's udp_usrreqs): ports in node.udp, datagrams out at once."""

    name = "udp"

    def attach(self, sock):
        sock.reserve(UDP_SENDSPACE, sock.node.sysctl["net.inet.udp.recvspace"])

    def bind(self, sock, address):
        in_pcbbind(sock.node.udp, sock, address)

    def connect(self, sock, address):
        """Fix the peer: send() needs no address, and ICMP errors about it come back as errors."""
        in_pcbconnect(sock.node.udp, sock, address)

    def send(self, sock, data, address):
        if address is None:
            if sock.remote is None:
                raise oserror(errno.EDESTADDRREQ)
            dst, port = sock.remote
        else:
            if sock.remote is not None:
                raise oserror(errno.EISCONN)
            dst, port = parse_sockaddr(address, 1)
        if not sock.local[1]:
            sock.node.udp.bind(sock, ANY, 0)
        udp_output(sock.node, sock, data, dst, port)

    def detach(self, sock):
        sock.node.udp.remove(sock)


UDP_USRREQS = UdpUserRequests()


def udp_output(node, sock, data, dst, port):
    """Add the UDP header and its checksum, or leave the sum to an interface that offloads it."""
    if len(data) > UDP_MAXDATA:
        raise oserror(errno.EMSGSIZE)
    ifp, nexthop = route_output(node, dst)
    src = sock.local[0] if sock.local[0] != ANY else source_for(ifp)
    sport, length = sock.local[1], UDP_HEADER.size + len(data)
    if ifp.capenable & IFCAP_CSUM_UDPv4_Tx:
        checksum, csum_flags = 0, M_CSUM_UDPv4  # the interface sums it (offload.finish_tx)
    else:
        header_words = sport + port + length  # the header summed as numbers, not packed to be summed
        checksum = in_cksum(data, pseudo_header_sum(src, dst, IPPROTO_UDP, length) + header_words) or 0xFFFF
        csum_flags = 0  # (a sum of 0 is sent as 0xffff: 0 says "none")
    ip_output(node, IPPROTO_UDP, src, dst, UDP_HEADER.pack(sport, port, length, checksum) + data,
              ttl=sock.ttl, broadcast_ok=sock.broadcast, route=(ifp, nexthop), csum_flags=csum_flags)
    node.stats.udp["output"] += 1


def udp_input(node, ifp, header, packet, marks):
    """Check a datagram once and queue it on its socket, or answer port unreachable."""
    stats = node.stats.udp
    stats["input"] += 1
    datagram = memoryview(packet)[header.hlen:]  # a view: only the data is copied, once, for the socket
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
    elif not verifies(datagram, pseudo_header_sum(header.src, header.dst, IPPROTO_UDP, length)):
        stats["bad_checksum"] += 1
        return
    data = bytes(datagram[UDP_HEADER.size:])
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


def udp_ctlinput(node, notice):
    """An ICMP error quoted one of our datagrams: tell the connected socket that sent it (BSD's udp_ctlinput)."""
    if not notice.error:
        return
    src, dst = notice.header.src, notice.header.dst
    sport, dport = UDP_HEADER.unpack_from(notice.quote, notice.header.hlen)[:2]
    for sock in node.udp.by_port.get(sport, ()):
        if sock.remote == (dst, dport) and sock.local[0] in (ANY, src):
            sock.notify(notice.error)
