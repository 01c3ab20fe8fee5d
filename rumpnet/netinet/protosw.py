"""The protocol switch: IP's table of transports by protocol number (BSD's sys/protosw.h, ip_protox).

IPv4 knows no transport by name. It looks the packet's protocol number up
here and calls that entry's `input`; ICMP looks up the protocol of the packet
an error quotes and calls that entry's `ctlinput`. A number with no entry goes
to the default entry, raw IP (`raw_ip.rip_input`), as in BSD. A new protocol
is one module with these two functions and one `register` call.
"""

from typing import Callable, NamedTuple

from .ip import IpHeader


class Protosw(NamedTuple):
    """One protocol's entry points (BSD's struct protosw).

    input(node, ifp, header, packet, marks): a packet for this node, its IPv4
    header already checked (header: an ip.IpHeader; packet: the whole packet;
    marks: the interface's checksum marks, offload.CSUM_*).
    ctlinput(node, notice): an ICMP error about a packet this node sent (a
    CtlNotice); None when the protocol does not care.
    """

    name: str
    input: Callable
    ctlinput: Callable | None = None


class CtlNotice(NamedTuple):
    """An ICMP error as a transport is told of it (BSD's PRC_* command and the quoted header).

    quote holds the quoted packet's IP header and at least the 8 bytes after
    it (RFC 792), checked before any transport sees it; header gives its
    fields as plain values.
    """

    icmp_type: int
    code: int
    error: int  # the errno a socket is given, 0 for none (BSD's inetctlerrmap)
    header: IpHeader
    quote: bytes


class ProtoSwitch:
    """The node's protocols by IP protocol number, with raw IP for every other number."""

    def __init__(self, default):
        self.default = default
        self._entries = {}

    def register(self, number, entry):
        """Make entry the protocol for number (1 to 254; 255 is reserved, 0 is IPv6's hop-by-hop)."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 255:
            raise ValueError(f"protocol number {number!r} is not 1 to 254")
        if not isinstance(entry, Protosw):
            raise TypeError(f"{entry!r} is not a Protosw")
        if number in self._entries:
            raise ValueError(f"protocol {number} is already {self._entries[number].name}")
        self._entries[number] = entry

    def unregister(self, number):
        try:
            del self._entries[number]
        except KeyError:
            raise ValueError(f"protocol {number!r} is not registered") from None

    def get(self, number):
        """The entry registered for number, or None."""
        return self._entries.get(number)

    def input_entry(self, number):
        """Where ip_input hands a packet of this protocol: its entry, else raw IP."""
        return self._entries.get(number, self.default)

    def names(self):
        return {number: entry.name for number, entry in sorted(self._entries.items())}
