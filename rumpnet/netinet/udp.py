"""UDP (RFC 768): datagrams between ports (BSD's netinet/udp_usrreq.c)."""

import errno
import struct

from ..kern.sockets import UserRequests, oserror, parse_sockaddr
from ..net.ether import ETHERTYPE_IP
from ..net.offload import CSUM_L4_BAD, CSUM_L4_CHECKED, IFCAP_CSUM_IPv4_Tx, IFCAP_CSUM_UDPv4_Tx, M_CSUM_UDPv4
from .checksum import in_cksum, pseudo_header_sum, verifies
from .icmp import icmp_error
from .inpcb import ANY, in_pcbbind, in_pcbconnect
from .ip import IP_HEADER, IPPROTO_UDP, ip_output, route_entry, route_output, source_for

UDP_HEADER = struct.Struct("!HHHH")
HEADERS = struct.Struct("!6s6sHBBHHHBBH4s4sHHHH")  # Ethernet, IPv4 and UDP headers in one, for a burst
TX_BITS = IFCAP_CSUM_IPv4_Tx | IFCAP_CSUM_UDPv4_Tx
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
        dst, port = udp_destination(sock, address)
        if not sock.local[1]:
            sock.node.udp.bind(sock, ANY, 0)
        udp_output(sock.node, sock, data, dst, port)

    def send_burst(self, sock, datagrams, address):
        return udp_output_burst(sock.node, sock, datagrams, address)

    def detach(self, sock):
        sock.node.udp.remove(sock)


UDP_USRREQS = UdpUserRequests()


def udp_destination(sock, address):
    """Where a datagram goes: address, or the connected peer for None, as (packed address, port);
    the OSError a send raises when neither or both are given."""
    if address is None:
        if sock.remote is None:
            raise oserror(errno.EDESTADDRREQ)
        return sock.remote
    if sock.remote is not None:
        raise oserror(errno.EISCONN)
    return parse_sockaddr(address, 1)


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


def udp_output_burst(node, sock, datagrams, address):
    """The fast path of sendmmsg and sendto: send a burst's datagrams from the first while they fit one
    prediction; how many went.

    They share everything but their length, identifier, sums and data. The
    route, source address, link address and fixed header fields are found
    once, and each datagram is one pack of its 42 header bytes (what
    udp_output, ip_output and ether_output build in three). It is made anew
    for every burst: there is no cached route to invalidate when routes,
    addresses or ARP entries change. The first datagram larger than the link
    and all after it go the full way, which raises or sends as always.

    It sends none when net.inet.udp.fastpath is 0, the socket has an error
    to report or is not bound, or the destination is ours, a broadcast or a
    multicast address, or has no route, no resolved link address, or an
    interface that offloads the sums.
    """
    if not node.sysctl["net.inet.udp.fastpath"] or sock.closed or sock.error or sock.cant_send or not sock.local[1]:
        return 0
    try:
        dst, port = udp_destination(sock, address)
    except OSError:
        return 0  # the full way raises it
    route, ifp, nexthop = route_entry(node, dst)
    if route is None or ifp is None or dst in node.inaddrs.local or dst[0] >= 224:
        return 0
    if not ifp.running or ifp.capenable & TX_BITS or node.inaddrs.is_broadcast_on(ifp, dst):
        return 0
    link_dst = node.arp.cached(ifp, nexthop)
    if link_dst is None or sock.local[0] == ANY and not ifp.addresses:
        return 0
    src = sock.local[0] if sock.local[0] != ANY else source_for(ifp)
    ttl = node.sysctl["net.inet.ip.ttl"] if sock.ttl is None else sock.ttl
    sport, mtu, output, pack, next_id = sock.local[1], ifp.mtu, ifp.output, HEADERS.pack, node.next_ip_id
    link_src, addresses, ttl_proto = ifp.mac, src + dst, ttl << 8 | IPPROTO_UDP
    pseudo = pseudo_header_sum(src, dst, IPPROTO_UDP, 0) + sport + port  # with the header's ports
    sent = 0
    try:
        for data in datagrams:
            data = bytes(data)
            length = 8 + len(data)
            if length + 20 > mtu:
                break
            ident = next_id()
            ip_sum = in_cksum(addresses, 0x4500 + 20 + length + ident + ttl_proto)
            udp_sum = in_cksum(data, pseudo + length + length) or 0xFFFF  # the pseudo-header's length and the header's
            output(pack(link_dst, link_src, ETHERTYPE_IP, 0x45, 0, 20 + length, ident, 0, ttl, IPPROTO_UDP, ip_sum,
                        src, dst, sport, port, length, udp_sum) + data)
            sent += 1
    finally:
        if sent:
            route.use += sent
            node.stats.udp["output"] += sent
            node.stats.udp["predicted_output"] += sent
            node.stats.ip["output"] += sent
            node.stats.ether["output"] += sent
    return sent


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
