"""Source address translation on the way out to the host (NetBSD npf's `map virt0 dynamic any -> virt0`).

With net.inet.ip.nat = 1 (and forwarding on), a packet the node forwards out
of a virt interface leaves with that interface's address as its source, so
the host needs no route back to the nodes behind the router. What is mapped:
TCP and UDP by source port, ICMP echo by identifier; other packets out of
that interface are dropped and counted. On the way in, a segment, datagram
or echo reply to a mapped port or identifier is translated back and
forwarded, and an ICMP error quoting a translated packet has its quote
rewritten too, so the node that sent it learns of the error as if nothing
stood between. A TCP mapping is kept while the connection is used, not
followed through its states: a connection idle longer than its time-out
loses it, as with a home router.

The table is bounded (MAX_MAPPINGS; new flows beyond it are dropped and
counted) and a mapping unused for its protocol's time-out is removed by a
callout of the node's timer service.
"""

import struct

from .checksum import in_cksum
from .icmp import ICMP_ECHO, ICMP_ECHOREPLY, ICMP_ERROR_TYPES
from .ip import IP_HEADER, IPPROTO_ICMP, IPPROTO_UDP
from .tcp import IPPROTO_TCP

MAX_MAPPINGS = 1024
TIMEOUT = {IPPROTO_TCP: 600.0, IPPROTO_UDP: 60.0, IPPROTO_ICMP: 30.0}  # seconds a mapping lives unused
CHECKSUM_AT = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMP: 2}  # in the transport header
PSEUDO_HEADER = (IPPROTO_TCP, IPPROTO_UDP)  # their checksum covers the addresses too
OUTSIDE_IDS = range(32768, 49152)  # outside ports and echo ids: below the node's own ephemeral ports
PORT = struct.Struct("!H")


class Mapping:
    """One flow: (protocol, inside address, inside port or id) <-> outside port or id on one interface."""

    def __init__(self, proto, inside, inside_id, outside, outside_id, ifname, timer):
        self.proto, self.inside, self.inside_id = proto, inside, inside_id
        self.outside, self.outside_id, self.ifname = outside, outside_id, ifname
        self.timer = timer
        self.last_used = 0.0


def adjust(checksum, old, new):
    """An Internet checksum updated for bytes old replaced by new, of even length (RFC 1624: ~(~HC + ~m + m'))."""
    total = ~checksum & 0xFFFF
    for i in range(0, len(old), 2):
        total += (~PORT.unpack_from(old, i)[0] & 0xFFFF) + PORT.unpack_from(new, i)[0]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _id_offset(proto, message):
    """Where the mapped port or id lies in a transport message (0: TCP or UDP source port, 4: echo id), or None."""
    if len(message) < 8:
        return None
    if proto in PSEUDO_HEADER:
        return 0
    if proto == IPPROTO_ICMP and message[0] in (ICMP_ECHO, ICMP_ECHOREPLY):
        return 4
    return None


def _rewrite(packet, hlen, address_at, address, id_at, new_id):
    """Put address at address_at in the IP header and new_id at hlen + id_at, mending the transport checksum.

    A TCP segment quoted in an ICMP error is cut after 8 bytes, before its
    checksum: that one is left as it is.
    """
    proto = packet[9]
    old_id = bytes(packet[hlen + id_at:hlen + id_at + 2])
    new_id = PORT.pack(new_id)
    covered_old, covered_new = old_id, new_id
    if proto in PSEUDO_HEADER:
        covered_old = bytes(packet[address_at:address_at + 4]) + old_id  # the pseudo-header holds the address
        covered_new = address + new_id
    checksum_at = hlen + CHECKSUM_AT[proto]
    if checksum_at + 2 <= len(packet):
        old_sum = PORT.unpack_from(packet, checksum_at)[0]
        if proto != IPPROTO_UDP:
            PORT.pack_into(packet, checksum_at, adjust(old_sum, covered_old, covered_new))
        elif old_sum:  # a datagram sent without a checksum (0) stays so; a sum of 0 is sent as 0xFFFF
            PORT.pack_into(packet, checksum_at, adjust(old_sum, covered_old, covered_new) or 0xFFFF)
    packet[address_at:address_at + 4] = address
    packet[hlen + id_at:hlen + id_at + 2] = new_id


class NatTable:
    """The node's translations (npf's connection table for `map`)."""

    def __init__(self, node):
        self.node = node
        self.stats = node.stats.nat
        self.outward = {}  # (proto, inside address, inside id) -> Mapping
        self.inward = {}  # (proto, ifname, outside id) -> Mapping
        self._next = OUTSIDE_IDS.start

    def translating(self, ifp):
        sysctl = self.node.sysctl
        return sysctl["net.inet.ip.nat"] and sysctl["net.inet.ip.forwarding"] and ifp.kind == "virt"

    # -- out -------------------------------------------------------------------

    def output(self, ifp, packet, hlen):
        """Translate the source of a forwarded packet (a bytearray) leaving by ifp; False: drop it."""
        proto = packet[9]
        at = _id_offset(proto, packet[hlen:hlen + 8])
        if at is None or (proto == IPPROTO_ICMP and packet[hlen] != ICMP_ECHO) or not ifp.addresses:
            self.stats["unsupported"] += 1
            return False
        inside_id = PORT.unpack_from(packet, hlen + at)[0]
        key = (proto, bytes(packet[12:16]), inside_id)
        mapping = self.outward.get(key)
        if mapping is None:
            mapping = self._new(key, ifp)
            if mapping is None:
                self.stats["table_full"] += 1
                return False
        mapping.last_used = self.node.now()
        _rewrite(packet, hlen, 12, mapping.outside, at, mapping.outside_id)
        self.stats["translated_out"] += 1
        return True

    def _new(self, key, ifp):
        if len(self.outward) >= MAX_MAPPINGS:
            return None
        proto = key[0]
        outside_id = self._free_id(proto, ifp.name)
        if outside_id is None:
            return None
        mapping = Mapping(*key, ifp.primary().packed, outside_id, ifp.name, self.node.timers.callout())
        self.outward[key] = mapping
        self.inward[proto, ifp.name, outside_id] = mapping
        mapping.timer.reset(TIMEOUT[proto], self._expire, mapping)
        return mapping

    def _free_id(self, proto, ifname):
        """The next outside port or id in use by no mapping and, for TCP and UDP, by no socket of the node."""
        for _ in range(len(OUTSIDE_IDS)):
            candidate = self._next
            self._next = candidate + 1 if candidate + 1 < OUTSIDE_IDS.stop else OUTSIDE_IDS.start
            if (proto, ifname, candidate) in self.inward:
                continue
            if proto in PSEUDO_HEADER and candidate in self.node.pcb_table(proto).by_port:
                continue
            return candidate
        return None

    def _expire(self, now, mapping):
        idle = now - mapping.last_used
        if idle < TIMEOUT[mapping.proto]:
            mapping.timer.reset(TIMEOUT[mapping.proto] - idle, self._expire, mapping)
            return
        self._remove(mapping)
        self.stats["expired"] += 1

    def _remove(self, mapping):
        mapping.timer.stop()
        del self.outward[mapping.proto, mapping.inside, mapping.inside_id]
        del self.inward[mapping.proto, mapping.ifname, mapping.outside_id]

    def purge(self, ifname):
        """Forget the mappings of an interface that is destroyed."""
        for mapping in [m for m in self.outward.values() if m.ifname == ifname]:
            self._remove(mapping)

    # -- in ----------------------------------------------------------------------

    def input(self, ifp, packet, hlen):
        """Translate back a packet (a bytearray) addressed to ifp's address; True when it was ours to forward."""
        proto = packet[9]
        message = packet[hlen:]
        if proto == IPPROTO_ICMP and len(message) >= 8 and message[0] in ICMP_ERROR_TYPES:
            return self._error_input(ifp, packet, hlen)
        at = _id_offset(proto, message)
        if at is None or (proto == IPPROTO_ICMP and message[0] != ICMP_ECHOREPLY):
            return False
        if proto in PSEUDO_HEADER:
            at = 2  # the destination port, on the way in
        mapping = self.inward.get((proto, ifp.name, PORT.unpack_from(packet, hlen + at)[0]))
        if mapping is None:
            return False
        mapping.last_used = self.node.now()
        _rewrite(packet, hlen, 16, mapping.inside, at, mapping.inside_id)
        self.stats["translated_in"] += 1
        return True

    def _error_input(self, ifp, packet, hlen):
        """An ICMP error quoting a packet we translated: rewrite the quote and the destination."""
        inner_at = hlen + 8
        inner = packet[inner_at:]
        if len(inner) < IP_HEADER.size or inner[0] >> 4 != 4:
            return False
        inner_hlen = (inner[0] & 0xF) * 4
        if inner_hlen < IP_HEADER.size or len(inner) < inner_hlen + 8:
            return False
        proto = inner[9]
        at = _id_offset(proto, inner[inner_hlen:inner_hlen + 8])
        if at is None:
            return False
        mapping = self.inward.get((proto, ifp.name, PORT.unpack_from(inner, inner_hlen + at)[0]))
        if mapping is None or bytes(inner[12:16]) != mapping.outside:
            return False
        _rewrite(inner, inner_hlen, 12, mapping.inside, at, mapping.inside_id)
        inner[10:12] = b"\0\0"
        PORT.pack_into(inner, 10, in_cksum(inner[:inner_hlen]))
        packet[inner_at:] = inner
        packet[16:20] = mapping.inside
        packet[hlen + 2:hlen + 4] = b"\0\0"
        PORT.pack_into(packet, hlen + 2, in_cksum(packet[hlen:]))
        self.stats["errors_translated"] += 1
        return True
