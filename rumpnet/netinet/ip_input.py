"""IPv4 input and forwarding (BSD's netinet/ip_input.c).

ip_input checks a header once and hands plain values inward: to the entry
of the protocol switch for the packet's protocol number (node.protosw,
protosw.py), or to ip_forward. It knows no transport by name.
"""

import struct

from ..net.offload import CSUM_IP_BAD, CSUM_IP_CHECKED
from .checksum import in_cksum, verifies
from .icmp import icmp_error
from .ip import INADDR_BROADCAST, IP_HEADER, IP_MF, IP_OFFMASK, IpHeader, route_to


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
    elif not verifies(packet[:hlen]):
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
    broadcast = node.inaddrs.is_broadcast_on(ifp, dst)
    if not broadcast and dst not in node.inaddrs.local:
        if node.sysctl["net.inet.ip.forwarding"] and not link_multicast:
            ip_forward(node, ifp, packet, hlen, ttl, dst)
        else:
            stats["not_for_us"] += 1
        return
    if frag & (IP_MF | IP_OFFMASK):
        stats["fragment_dropped"] += 1
        return
    if not broadcast and node.nat.translating(ifp):
        back = bytearray(packet)
        if node.nat.input(ifp, back, hlen):
            ip_forward(node, ifp, bytes(back), hlen, ttl, bytes(back[16:20]))
            return
    stats["delivered"] += 1
    node.protosw.input_entry(proto).input(node, ifp, IpHeader(src, dst, proto, ttl, hlen, broadcast), packet, marks)


def ip_forward(node, ifp, packet, hlen, ttl, dst):
    """Forward a packet not for us (net.inet.ip.forwarding=1): TTL, route, send."""
    stats = node.stats.ip
    if ttl <= 1:
        stats["ttl_exceeded"] += 1
        _refuse(node, packet, hlen, ttl, dst, 11, 0)
        return
    out_ifp, nexthop = route_to(node, dst)
    if out_ifp is None or not out_ifp.running:
        stats["no_route"] += 1
        _refuse(node, packet, hlen, ttl, dst, 3, 0)
        return
    if len(packet) > out_ifp.mtu:
        stats["too_big"] += 1
        _refuse(node, packet, hlen, ttl, dst, 3, 4)
        return
    out = bytearray(packet)
    if node.nat.translating(out_ifp) and not node.nat.output(out_ifp, out, hlen):
        return
    out[8] = ttl - 1
    out[10:12] = b"\0\0"
    struct.pack_into("!H", out, 10, in_cksum(out[:hlen]))
    stats["forwarded"] += 1
    try:
        node.arp.resolve(out_ifp, nexthop, bytes(out))
    except OSError:
        _refuse(node, packet, hlen, ttl, dst, 3, 1)


def _refuse(node, packet, hlen, ttl, dst, icmp_type, code):
    """Answer a packet not forwarded with an ICMP error: its header's fields are gathered only then, not for
    every packet forwarded."""
    icmp_error(node, packet, IpHeader(packet[12:16], dst, packet[9], ttl, hlen, False), icmp_type, code)
