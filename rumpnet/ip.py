"""IPv4 input, output and forwarding (BSD's netinet/ip_input.c, ip_output.c).

Headers are read and written with struct: the per-packet path is the hot one
(dpkt costs about 5 us to parse and 14 us to build a packet here, struct a
tenth of that); dpkt reads the same bytes in the tests as an independent check.
"""

import errno
import struct
from typing import NamedTuple

from .checksum import in_cksum, pseudo_header_sum
from .ether import ETHERTYPE_IP
from .ifnet import BROADCAST_MAC
from .offload import (CSUM_IP_BAD, CSUM_IP_CHECKED, CSUM_L4_CHECKED, IFCAP_CSUM_IPv4_Tx, IFCAP_CSUM_UDPv4_Tx,
                      M_CSUM_IPv4, M_CSUM_UDPv4)

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


def ip_input(node, ifp, packet, marks, link_multicast):
    """Check a received IPv4 packet once, then deliver, forward or drop it."""
    stats = node.stats.ip
    stats["total"] += 1
    if len(packet) < IP_HEADER.size:
        stats["too_short"] += 1
        return
    vhl, _tos, total, _ident, frag, ttl, proto, _sum, src, dst = IP_HEADER.unpack_from(packet)
    if vhl >> 4 != 4:
        stats["bad_version"] += 1
        return
    hlen = (vhl & 0xF) * 4
    if hlen < IP_HEADER.size or hlen > len(packet):
        stats["bad_header_length"] += 1
        return
    if marks & CSUM_IP_CHECKED:
        if marks & CSUM_IP_BAD:
            stats["bad_checksum"] += 1
            return
    elif in_cksum(packet[:hlen]) != 0:
        stats["bad_checksum"] += 1
        return
    if total < hlen or total > len(packet):
        stats["bad_length"] += 1
        return
    if total < len(packet):
        packet = packet[:total]
    if src[0] >= 224 or src == INADDR_BROADCAST:
        stats["bad_source"] += 1
        return
    broadcast = ifp.is_broadcast(dst)
    if not broadcast and not node.is_local(dst):
        if node.sysctl["net.inet.ip.forwarding"] and not link_multicast:
            ip_forward(node, ifp, packet, hlen, ttl, dst)
        else:
            stats["not_for_us"] += 1
        return
    if frag & (IP_MF | IP_OFFMASK):
        stats["fragment_dropped"] += 1
        return
    stats["delivered"] += 1
    header = IpHeader(src, dst, proto, ttl, hlen, broadcast)
    if proto == IPPROTO_ICMP:
        node.icmp_input(ifp, header, packet, marks)
    elif proto == IPPROTO_UDP:
        node.udp_input(ifp, header, packet, marks)
    elif not node.raw_input(header, packet):
        stats["unknown_protocol"] += 1
        node.icmp_error(packet, header, 3, 2)  # protocol unreachable


def ip_output(node, proto, src, dst, payload, *, ttl=None, broadcast_ok=False, udp_checksum=False):
    """Route, fill in and send one IPv4 packet (src may be None: the interface's address).

    Raises OSError as a BSD kernel's send would: ENETUNREACH (no route),
    EACCES (broadcast without SO_BROADCAST), EMSGSIZE (larger than the link,
    no fragmentation), EHOSTDOWN (ARP gave up), ENETDOWN.
    """
    stats = node.stats.ip
    if ttl is None:
        ttl = node.sysctl["net.inet.ip.ttl"]
    route_ifp, nexthop = node.route_to(dst)
    if route_ifp is None:
        stats["no_route"] += 1
        raise OSError(errno.ENETUNREACH, "Network is unreachable")
    ifp = route_ifp
    if not ifp.running:
        raise OSError(errno.ENETDOWN, "Network is down")
    if src is None or src == INADDR_ANY:
        src = node.source_for(ifp, dst)
    broadcast = ifp.is_broadcast(dst)
    if broadcast and not broadcast_ok:
        raise OSError(errno.EACCES, "Permission denied")
    total = IP_HEADER.size + len(payload)
    if total > ifp.mtu:
        stats["too_big"] += 1
        raise OSError(errno.EMSGSIZE, "Message too long")
    csum_flags = 0  # the sums left to the interface (TX offload), told with the packet
    if udp_checksum:
        if ifp.capenable & IFCAP_CSUM_UDPv4_Tx:
            csum_flags |= M_CSUM_UDPv4
        else:
            csum = in_cksum(payload, pseudo_header_sum(src, dst, IPPROTO_UDP, len(payload))) or 0xFFFF
            payload = payload[:6] + struct.pack("!H", csum) + payload[8:]
    header = bytearray(IP_HEADER.pack(0x45, 0, total, node.next_ip_id(), 0, ttl, proto, 0, src, dst))
    if ifp.capenable & IFCAP_CSUM_IPv4_Tx:
        csum_flags |= M_CSUM_IPv4
    else:
        struct.pack_into("!H", header, 10, in_cksum(header))
    packet = bytes(header) + payload
    stats["output"] += 1
    if node.is_local(dst):
        node.loopback(ifp, packet)
    elif broadcast:
        node.loopback(ifp, packet)  # if_simloop: a SIMPLEX interface does not hear its own broadcasts
        node.ether_output(ifp, BROADCAST_MAC, ETHERTYPE_IP, packet, csum_flags)
    else:
        node.arp.resolve(ifp, nexthop, packet, csum_flags)


def ip_forward(node, ifp, packet, hlen, ttl, dst):
    """Forward a packet not for us (net.inet.ip.forwarding=1): TTL, route, send."""
    stats = node.stats.ip
    header = IpHeader(packet[12:16], dst, packet[9], ttl, hlen, False)
    if ttl <= 1:
        stats["ttl_exceeded"] += 1
        node.icmp_error(packet, header, 11, 0)
        return
    out_ifp, nexthop = node.route_to(dst)
    if out_ifp is None or not out_ifp.running:
        stats["no_route"] += 1
        node.icmp_error(packet, header, 3, 0)
        return
    if len(packet) > out_ifp.mtu:
        stats["too_big"] += 1
        node.icmp_error(packet, header, 3, 4)
        return
    out = bytearray(packet)
    out[8] = ttl - 1
    out[10:12] = b"\0\0"
    struct.pack_into("!H", out, 10, in_cksum(out[:hlen]))
    stats["forwarded"] += 1
    try:
        node.arp.resolve(out_ifp, nexthop, bytes(out))
    except OSError:
        node.icmp_error(packet, header, 3, 1)


def loopback_marks():
    """A packet to ourselves never crossed a wire: its sums count as checked."""
    return CSUM_IP_CHECKED | CSUM_L4_CHECKED

