"""Forwarding in one step: the router's fast path (FreeBSD's ip_tryforward in ip_fastfwd.c,
NetBSD's ipflow_fastforward in ip_flow.c).

A router spends most of its time on packets that are alike: unicast to its
interface, IPv4 without options, not for the router, with a route and a
resolved next hop on an interface that is up. For those, ether_input,
ip_input, ip_forward and arpresolve ask the same questions in four layers;
here one unpack of the 34 header bytes answers them, in a loop over the
driver's batch. The TTL goes down by one and the header sum is adjusted
(RFC 1624) instead of summed again, and the frame leaves with a new
Ethernet header. The route and the next hop's Ethernet address are looked
up once for each destination, and held only while nothing else of the
batch has run: every frame the prediction does not hold for (a TTL that
runs out, no route, an unresolved next hop, too big for the link, options,
a bad sum, a packet for the router) takes the full path, in its place in
the batch, and the next predicted frame looks everything up again. So the
fast path never answers, drops or queues a packet itself.

It holds only while forwarding is on, net.inet.ip.fastforwarding is 1, no
RX checksum offload marks must be set, and no source translation (NAT)
applies to the interface a packet leaves by. `netstat -s -p ip` counts the
packets it forwarded ("fast forwarded"), as NetBSD does. Tests check that
for any batch both paths leave the same counters and frames on every wire
(tests/test_ip_fastfwd.py).
"""

import struct

from ..net.ether import ETHER_HDR_LEN, ETHER_HEADER, ETHERTYPE_IP
from ..net.offload import RX_BITS
from .checksum import ttl_decremented
from .ip import route_entry

# Ethernet (destination, type), IPv4 (version and length, total, TTL, protocol, sum, source,
# destination): every field the prediction reads or writes, at fixed offsets.
PREDICTED = struct.Struct("!6s6xHBxH4xBBH4s4s")
IP_START = ETHER_HDR_LEN
HEADER_END = PREDICTED.size  # 34: the end of an IPv4 header without options
TTL_TO_SUM = struct.Struct("!BBH")  # bytes 22 to 26: the TTL, the protocol and the header sum


def forwards(node, ifp):
    """Whether the prediction can hold for a batch from ifp (checked once a batch)."""
    return (node.sysctl["net.inet.ip.forwarding"] and node.sysctl["net.inet.ip.fastforwarding"]
            and not ifp.capenable & RX_BITS and not ifp.mac[0] & 1)


def ip_fastforward(node, ifp, frames, rest):
    """Forward each predicted packet of a batch; hand every other frame to rest(node, ifp, frames),
    in order: a run of them before the next predicted one, so output keeps the batch's order."""
    mac, local, broadcast = ifp.mac, node.inaddrs.local, node.inaddrs.broadcast_on(ifp)
    unpack = PREDICTED.unpack_from
    hops = {}  # destination -> (interface, route, Ethernet header), good until rest runs
    others = []
    forwarded = forwarded_bytes = 0
    try:
        for frame in frames:
            size = len(frame)
            if size >= HEADER_END:
                dst_mac, ethertype, vhl, total, ttl, proto, checksum, src, dst = unpack(frame)
                if (dst_mac == mac and ethertype == ETHERTYPE_IP and vhl == 0x45 and ttl > 1
                        and 20 <= total <= size - IP_START and src[0] < 224 and dst not in local
                        and dst not in broadcast
                        and int.from_bytes(frame[IP_START:HEADER_END], "big") % 0xFFFF == 0):
                    if others:  # what the full path does may change routes and ARP: look up anew
                        rest(node, ifp, others)
                        others, hops = [], {}
                    hop = hops.get(dst)
                    if hop is None:
                        hop = hops[dst] = _next_hop(node, dst)
                    if hop and total <= hop[0].mtu:
                        out_ifp, route, ether = hop
                        route.use += 1
                        forwarded += 1
                        forwarded_bytes += size
                        out_ifp.output(ether + frame[IP_START:22]
                                       + TTL_TO_SUM.pack(ttl - 1, proto, ttl_decremented(checksum))
                                       + frame[26:IP_START + total])
                        continue
            others.append(frame)
        if others:
            rest(node, ifp, others)
    finally:
        if forwarded:
            _count(node, ifp, forwarded, forwarded_bytes)


def _next_hop(node, dst):
    """(interface, route, Ethernet header) a packet to dst leaves with, or () when the full path must
    decide: no route, an interface not running, an unresolved next hop, or translation on the way out."""
    route, out_ifp, nexthop = route_entry(node, dst)
    if route is None or out_ifp is None or not out_ifp.running or node.nat.translating(out_ifp):
        return ()
    mac = node.arp.cached(out_ifp, nexthop)
    if mac is None:
        return ()
    return out_ifp, route, ETHER_HEADER.pack(mac, out_ifp.mac, ETHERTYPE_IP)


def _count(node, ifp, forwarded, forwarded_bytes):
    """What ether_input, ip_input, ip_forward and ether_output would have counted, once a batch."""
    ifp.counters.ipackets += forwarded
    ifp.counters.ibytes += forwarded_bytes
    stats = node.stats
    stats.ether["input"] += forwarded
    stats.ether["output"] += forwarded
    stats.ip["total"] += forwarded
    stats.ip["forwarded"] += forwarded
    stats.ip["fastforward"] += forwarded
