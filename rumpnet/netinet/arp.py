"""ARP (RFC 826): who has an IPv4 address on this link (BSD's netinet/if_arp.c).

The cache maps (interface, IPv4 address) to a hardware address. An unresolved
destination holds the packets sent to it while requests go out once a second,
up to ARP_MAXTRIES; after that the host is "down" for ARP_DOWN seconds and
sends fail with EHOSTDOWN, as in NetBSD. Each entry has one callout of the
node's timer service, re-armed for its next event: the next request, the end
of its down time or its expiry. The table holds at most
net.inet.arp.max_entries entries; a new one evicts the least recently learned.
"""

from dataclasses import dataclass, field
import errno
import ipaddress
import itertools
import struct

from ..net.ether import ETHERTYPE_ARP, ETHERTYPE_IP, ether_output
from ..net.ifnet import BROADCAST_MAC

ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
ARP_MAXTRIES = 5
ARP_RETRY = 1.0
ARP_DOWN = 20.0
ARP_MAXHOLD = 16
_ARP = struct.Struct("!HHBBH6s4s6s4s")


@dataclass
class ArpEntry:
    timer: object  # its Callout
    mac: bytes | None = None
    expires: float = 0.0
    permanent: bool = False
    asked: int = 0
    down: bool = False
    hold: list = field(default_factory=list)

    @property
    def resolved(self):
        return self.mac is not None


def arp_packet(op, sha, spa, tha, tpa):
    return _ARP.pack(ARPHRD_ETHER, ETHERTYPE_IP, 6, 4, op, sha, spa, tha, tpa)


class ArpTable:
    def __init__(self, node):
        self.node = node
        self.entries = {}  # (ifname, packed IPv4) -> ArpEntry

    def _send(self, ifp, dst_mac, op, tha, tpa):
        spa = ifp.primary().packed if ifp.primary() else b"\0" * 4
        ether_output(self.node, ifp, dst_mac, ETHERTYPE_ARP, arp_packet(op, ifp.mac, spa, tha, tpa))

    def request(self, ifp, target):
        self.node.stats.arp["requests_sent"] += 1
        self._send(ifp, BROADCAST_MAC, ARPOP_REQUEST, b"\0" * 6, target)

    def announce(self, ifp, address):
        """A gratuitous ARP: a request for our own new address, so peers update their caches."""
        self.node.stats.arp["gratuitous_sent"] += 1
        ether_output(self.node, ifp, BROADCAST_MAC, ETHERTYPE_ARP,
                     arp_packet(ARPOP_REQUEST, ifp.mac, address, b"\0" * 6, address))

    def resolve(self, ifp, nexthop, payload, csum_flags=0, broadcast=False):
        """Send an IPv4 payload to nexthop on ifp, now or once ARP has answered (arpresolve).

        A broadcast needs no answer: it goes to the Ethernet broadcast address.
        A held packet keeps its csum_flags: the sums it was sent without are
        still the interface's to fill in, whatever offload says by then.
        """
        if broadcast:
            ether_output(self.node, ifp, BROADCAST_MAC, ETHERTYPE_IP, payload, csum_flags)
            return
        mac = self.cached(ifp, nexthop)
        if mac is not None:
            ether_output(self.node, ifp, mac, ETHERTYPE_IP, payload, csum_flags)
            return
        key = (ifp.name, nexthop)
        entry = self.entries.get(key)
        if entry is None or entry.resolved:
            entry = self._new_entry(key)
            entry.asked = 1
            entry.timer.reset(ARP_RETRY, self._retry, key)
            self.request(ifp, nexthop)
        if entry.down:
            raise OSError(errno.EHOSTDOWN, "Host is down")
        if len(entry.hold) >= ARP_MAXHOLD:
            entry.hold.pop(0)
            self.node.stats.arp["hold_dropped"] += 1
        entry.hold.append((ifp, payload, csum_flags))

    def cached(self, ifp, nexthop):
        """nexthop's link address on ifp while its entry is good, else None: what resolve sends to at once."""
        entry = self.entries.get((ifp.name, nexthop))
        if entry is not None and entry.resolved and (entry.permanent or entry.expires > self.node.now()):
            return entry.mac
        return None

    def _new_entry(self, key):
        """A fresh entry for key, replacing any old one; the least recently learned make room."""
        self._remove(key)
        excess = len(self.entries) + 1 - self.node.sysctl["net.inet.arp.max_entries"]
        oldest = (k for k, e in self.entries.items() if not e.permanent)
        for old in list(itertools.islice(oldest, max(0, excess))):
            self._remove(old)
            self.node.stats.arp["evicted"] += 1
        entry = self.entries[key] = ArpEntry(self.node.timers.callout())
        return entry

    def _remove(self, key):
        entry = self.entries.pop(key, None)
        if entry is not None:
            entry.timer.stop()
            self.node.stats.arp["hold_dropped"] += len(entry.hold)

    def _retry(self, now, key):
        """An unresolved entry's callout: ask again, or give up and call the host down (arptimer)."""
        entry = self.entries[key]
        ifp = self.node.interfaces[key[0]]
        if entry.asked >= ARP_MAXTRIES:
            self.node.stats.arp["hold_dropped"] += len(entry.hold)
            entry.hold.clear()
            entry.down = True
            entry.timer.reset(ARP_DOWN, self._forget, key)
            return
        if ifp.running:
            entry.asked += 1
            self.request(ifp, key[1])
        entry.timer.reset(ARP_RETRY, self._retry, key)

    def _forget(self, now, key):
        """The end of a host's down time."""
        del self.entries[key]

    def _expire(self, now, key):
        """A resolved entry's callout: net.inet.arp.keep seconds since it was learned."""
        del self.entries[key]
        self.node.stats.arp["timeouts"] += 1

    def learn(self, ifp, address, mac, create):
        key = (ifp.name, address)
        entry = self.entries.get(key)
        if entry is None:
            if not create:
                return
            entry = self._new_entry(key)
        if entry.permanent:
            return
        self.entries[key] = self.entries.pop(key)  # the most recently learned goes last
        keep = self.node.sysctl["net.inet.arp.keep"]
        entry.mac = mac
        entry.expires = self.node.now() + keep
        entry.down = False
        entry.timer.reset(keep, self._expire, key)
        held, entry.hold = entry.hold, []
        for out_ifp, payload, csum_flags in held:
            ether_output(self.node, out_ifp, mac, ETHERTYPE_IP, payload, csum_flags)

    def input(self, ifp, packet):
        """arpintr/in_arpinput: learn the sender, answer requests for our addresses."""
        stats = self.node.stats.arp
        stats["input"] += 1
        if len(packet) < _ARP.size:
            stats["short"] += 1
            return
        hrd, pro, hln, pln, op, sha, spa, tha, tpa = _ARP.unpack_from(packet)
        if hrd != ARPHRD_ETHER or pro != ETHERTYPE_IP or hln != 6 or pln != 4:
            stats["bad_format"] += 1
            return
        if op not in (ARPOP_REQUEST, ARPOP_REPLY):
            stats["bad_op"] += 1
            return
        stats["requests_received" if op == ARPOP_REQUEST else "replies_received"] += 1
        if sha == ifp.mac:
            stats["own_source"] += 1
            return
        if sha == BROADCAST_MAC or sha[0] & 1:
            stats["bad_format"] += 1
            return
        if ifp.owns(spa):
            stats["dup_address"] += 1
            return
        for_us = ifp.owns(tpa)
        self.learn(ifp, spa, sha, create=for_us)
        if not for_us:
            stats["not_for_us"] += 1
            return
        if op == ARPOP_REQUEST:
            stats["replies_sent"] += 1
            ether_output(self.node, ifp, sha, ETHERTYPE_ARP, arp_packet(ARPOP_REPLY, ifp.mac, tpa, sha, spa))

    def delete(self, address):
        packed = ipaddress.IPv4Address(address).packed
        keys = [key for key in self.entries if key[1] == packed]
        if not keys:
            raise LookupError(f"{address}: no entry")
        for key in keys:
            self._remove(key)

    def purge(self, ifname):
        """Forget the entries of an interface that goes away."""
        for key in [key for key in self.entries if key[0] == ifname]:
            self._remove(key)

    def describe(self):
        now = self.node.now()
        rows = []
        for (ifname, address), entry in self.entries.items():
            rows.append({"address": str(ipaddress.IPv4Address(address)), "interface": ifname,
                         "mac": entry.mac.hex(":") if entry.mac else None, "permanent": entry.permanent,
                         "expires": None if entry.permanent or not entry.mac else max(0, round(entry.expires - now))})
        return rows

