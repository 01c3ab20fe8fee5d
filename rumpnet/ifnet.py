"""Network interfaces: what every link layer shares (BSD's struct ifnet).

An interface has a name, a hardware address, flags, addresses and counters;
a driver subclass (shmif, later virt and xennet) moves frames. The stack calls
`output(frame)`; the driver calls `node.if_input(ifp, frame)` for every
frame it receives.
"""

import ipaddress
from contextlib import nullcontext
from dataclasses import dataclass, field

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_RUNNING = 0x40
IFF_SIMPLEX = 0x800
IFF_MULTICAST = 0x8000
IFF_NAMES = [(IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_RUNNING, "RUNNING"),
             (IFF_SIMPLEX, "SIMPLEX"), (IFF_MULTICAST, "MULTICAST")]

ETHERMTU = 1500
BROADCAST_MAC = b"\xff" * 6


class InterfaceError(Exception):
    """A request an interface refuses; carries the errno a BSD kernel would return."""

    def __init__(self, errno_value, message):
        super().__init__(message)
        self.errno = errno_value


@dataclass
class InterfaceAddress:
    address: ipaddress.IPv4Address
    network: ipaddress.IPv4Network

    @property
    def broadcast(self):
        return self.network.broadcast_address

    @property
    def packed(self):
        return self.address.packed


@dataclass
class LinkCounters:
    ipackets: int = 0
    ibytes: int = 0
    imcasts: int = 0
    ierrors: int = 0
    iqdrops: int = 0
    opackets: int = 0
    obytes: int = 0
    omcasts: int = 0
    oerrors: int = 0


@dataclass
class Interface:
    """Driver-independent state of one interface."""

    name: str
    mac: bytes
    mtu: int = ETHERMTU
    flags: int = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST
    addresses: list = field(default_factory=list)
    counters: LinkCounters = field(default_factory=LinkCounters)
    capabilities: int = 0
    capenable: int = 0

    kind = "loop"

    @property
    def up(self):
        return bool(self.flags & IFF_UP)

    @property
    def running(self):
        return bool(self.flags & IFF_RUNNING)

    def primary(self):
        return self.addresses[0] if self.addresses else None

    def owns(self, packed):
        return any(a.packed == packed for a in self.addresses)

    def is_broadcast(self, packed):
        return packed == b"\xff\xff\xff\xff" or any(a.broadcast.packed == packed for a in self.addresses)

    def deferred_wakeup(self):
        """Output inside is one burst; a driver that wakes its peers (shmif) does so once, at the end."""
        return nullcontext()

    def describe(self):
        """A plain dictionary of this interface, for ifconfig and the control socket."""
        return {
            "name": self.name,
            "kind": self.kind,
            "flags": self.flags,
            "mtu": self.mtu,
            "mac": self.mac.hex(":"),
            "addresses": [{"address": str(a.address), "prefixlen": a.network.prefixlen,
                           "broadcast": str(a.broadcast)} for a in self.addresses],
            "counters": vars(self.counters).copy(),
            "capabilities": self.capabilities,
            "capenable": self.capenable,
            "linkstr": self.linkstr(),
        }

    def linkstr(self):
        return None


def flag_names(flags):
    return ",".join(name for bit, name in IFF_NAMES if flags & bit)
