"""Network interfaces: what every link layer shares (BSD's struct ifnet).

An interface has a name, a hardware address, flags, addresses and counters;
a driver subclass (shmif, later virt and xennet) moves frames. The stack calls
`output(frame)`; the driver calls `node.if_input(ifp, frame)` for every
frame it receives.
"""

import ipaddress
import re
from contextlib import nullcontext
from dataclasses import dataclass, field

from . import numbers

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_RUNNING = 0x40
IFF_SIMPLEX = 0x800
IFF_MULTICAST = 0x8000
IFF_NAMES = [(IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_RUNNING, "RUNNING"),
             (IFF_SIMPLEX, "SIMPLEX"), (IFF_MULTICAST, "MULTICAST")]

ETHERMTU = 1500
BROADCAST_MAC = b"\xff" * 6

# An interface's name is its driver's and a unit number: shmif0, later virt3,
# xennet0 or xvif1i0 (a driver's own pattern may hold several units). A unit
# is plain decimal without leading zeros, so that one interface has one name.
IFNAMSIZ = 16  # a name and its NUL, as in BSD's net/if.h
MAX_UNIT = 9999
UNIT = r"(?:0|[1-9][0-9]{0,3})"
_NAME = re.compile(rf"(?P<driver>[a-z]+)(?P<unit>{UNIT})\Z")


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


def split_name(name):
    """(driver, unit) of an interface name such as shmif0; ValueError naming the rule when it is none."""
    match = _NAME.match(name) if len(name) < IFNAMSIZ else None
    if match is None:
        raise ValueError(f"{shown_name(name)}: not an interface name (a driver and a unit from 0 to {MAX_UNIT} "
                         "without leading zeros, as shmif0)")
    return match.group("driver"), int(match.group("unit"))


def shown_name(name):
    """An interface name as a message prints it: cut short when longer than any name can be."""
    return name if len(name) < IFNAMSIZ else name[:IFNAMSIZ - 1] + "..."


def parse_address(text):
    """"A.B.C.D" or "A.B.C.D/N" -> (address, N or None); ValueError otherwise.

    N is a prefix length, 0 to 32 in decimal digits: ipaddress would also take
    a mask there, a host mask (0.0.0.255) included.
    """
    address, slash, prefix = text.partition("/")
    return ipaddress.IPv4Address(address), numbers.integer(prefix, 0, 32) if slash else None


def netmask_prefixlen(text):
    """The prefix length of a netmask, dotted (255.255.255.0) or hexadecimal (0xffffff00).

    ValueError unless its bits are ones and then zeros: ipaddress reads
    0.0.0.1 as a host mask, which would make `netmask 0x1` a /31.
    """
    if text[:2].lower() == "0x":
        mask = numbers.integer(text, 0, 0xFFFFFFFF, hexadecimal=True)
    else:
        mask = int(ipaddress.IPv4Address(text))
    hostbits = mask ^ 0xFFFFFFFF
    if hostbits & (hostbits + 1):
        raise ValueError(f"{text}: the ones of a netmask come first")
    return 32 - hostbits.bit_length()
