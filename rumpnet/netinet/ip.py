"""IPv4 output and what every IPv4 layer shares: the header, routes, source addresses (BSD's netinet/ip_output.c).

Headers are read and written with struct: the per-packet path is the hot one
(dpkt costs about 5 us to parse and 14 us to build a packet here, struct a
tenth of that); dpkt reads the same bytes in the tests as an independent check.
Input and forwarding are in ip_input.py.
"""

import errno
import struct
from typing import NamedTuple

from ..net.offload import IFCAP_CSUM_IPv4_Tx, M_CSUM_IPv4, M_CSUM_TSOv4, TSO_MAX, TSO_MSS_SHIFT
from .checksum import in_cksum

IPPROTO_ICMP = 1
IPPROTO_UDP = 17
IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
IP_DF = 0x4000
IP_MF = 0x2000
IP_OFFMASK = 0x1FFF
MAXTTL = 255
INADDR_BROADCAST = b"\xff\xff\xff\xff"
INADDR_ANY = b"\0\0\0\0"


class IpHeader(NamedTuple):
    """The fields of a received header that the upper layers use."""

    src: bytes
    dst: bytes
    proto: int
    ttl: int
    hlen: int
    broadcast: bool


def route_to(node, dst):
    """(interface, next hop) for a packed destination, or (None, None) (BSD's rtalloc)."""
    if dst == INADDR_BROADCAST:
        for ifp in node.interfaces.values():
            if ifp.running and ifp.addresses:
                return ifp, dst
        return None, None
    route, ifp, nexthop = route_entry(node, dst)
    if route is None:
        return None, None
    route.use += 1
    return ifp, nexthop


def route_entry(node, dst):
    """(route, interface, next hop) for a unicast packed destination, the route's use not counted
    (its caller counts one for each packet that takes it); (None, None, None) without a route."""
    route = node.routes.lookup_packed(dst)
    if route is None:
        return None, None, None
    return route, node.interfaces.get(route.ifname), route.gateway.packed if route.gateway else dst


def route_output(node, dst):
    """The route a sent packet takes, as route_to, or the OSError a send fails with."""
    ifp, nexthop = route_to(node, dst)
    if ifp is None:
        node.stats.ip["no_route"] += 1
        raise OSError(errno.ENETUNREACH, "Network is unreachable")
    if not ifp.running:
        ifp.counters.oerrors += 1  # refused by a down interface (or one without carrier), as its output() counts
        raise OSError(errno.ENETDOWN, "Network is down")
    return ifp, nexthop


def source_for(ifp):
    """The source address of a packet sent on ifp without one (BSD's in_selectsrc)."""
    address = ifp.primary()
    if address is None:
        raise OSError(errno.EADDRNOTAVAIL, "Can't assign requested address")
    return address.packed


def _tso_count(segment, csum_flags):
    """How many frames a TCP segment handed down for TSO becomes (0: not one for TSO)."""
    if not csum_flags & M_CSUM_TSOv4:
        return 0
    data = len(segment) - (segment[12] >> 4) * 4
    return max(1, -(-data // (csum_flags >> TSO_MSS_SHIFT)))


def ip_output(node, proto, src, dst, payload, *, ttl=None, broadcast_ok=False, route=None, csum_flags=0):
    """Route, fill in and send one IPv4 packet (src may be None: the interface's address).

    route is the (interface, next hop) the transport already looked up
    (BSD's inp_route), csum_flags the transport sums it left to the interface
    (M_CSUM_*). Raises OSError as a BSD kernel's send would: ENETUNREACH (no
    route), EACCES (broadcast without SO_BROADCAST), EMSGSIZE (larger than
    the link, no fragmentation), EHOSTDOWN (ARP gave up), ENETDOWN, ENOBUFS
    (the queue to the node itself is full).
    """
    stats = node.stats.ip
    if ttl is None:
        ttl = node.sysctl["net.inet.ip.ttl"]
    ifp, nexthop = route or route_output(node, dst)
    if src is None or src == INADDR_ANY:
        src = source_for(ifp)
    broadcast = node.inaddrs.is_broadcast_on(ifp, dst)
    if broadcast and not broadcast_ok:
        raise OSError(errno.EACCES, "Permission denied")
    total = IP_HEADER.size + len(payload)
    segments = _tso_count(payload, csum_flags)
    if total > (TSO_MAX if segments else ifp.mtu):
        stats["too_big"] += 1
        raise OSError(errno.EMSGSIZE, "Message too long")
    ident = node.next_ip_id()
    for _ in range(segments - 1):
        node.next_ip_id()  # the identifiers of the frames the interface cuts it into
    if segments or ifp.capenable & IFCAP_CSUM_IPv4_Tx:  # TSO's cutting sums every frame's header
        csum_flags |= M_CSUM_IPv4
        checksum = 0
    else:  # the header's words summed from its fields, so it is packed once, its sum in place
        checksum = in_cksum(src + dst, 0x4500 + total + ident + (ttl << 8 | proto))
    packet = IP_HEADER.pack(0x45, 0, total, ident, 0, ttl, proto, checksum, src, dst) + payload
    stats["output"] += 1
    if dst in node.inaddrs.local:
        node.ipintrq.enqueue(ifp, packet)
        return
    if broadcast:
        try:
            node.ipintrq.enqueue(ifp, packet)  # if_simloop: a SIMPLEX interface does not hear its own broadcasts
        except OSError:
            pass  # the copy to ourselves is lost (and counted); the wire still gets the packet
    node.arp.resolve(ifp, nexthop, packet, csum_flags, broadcast)
