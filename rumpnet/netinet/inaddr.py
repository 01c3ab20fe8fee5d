"""The node's IPv4 addresses as sets, for the per-packet "is this ours?" (BSD's in_ifaddrhash, in_broadcast).

Looking through every interface's address list for every packet costs time
on the hot path; the sets are computed again whenever an address or an
interface changes, which is rare.
"""

from .ip import INADDR_BROADCAST


class AddressSets:
    def __init__(self):
        self.local = frozenset()  # every interface's addresses, packed
        self.broadcast = frozenset()  # every interface's broadcast addresses, and 255.255.255.255 if any
        self._broadcast_on = {}  # interface name -> its broadcast addresses

    def recompute(self, interfaces):
        self.local = frozenset(a.packed for ifp in interfaces.values() for a in ifp.addresses)
        self._broadcast_on = {name: frozenset(a.broadcast.packed for a in ifp.addresses) | {INADDR_BROADCAST}
                              for name, ifp in interfaces.items()}
        self.broadcast = frozenset().union(*self._broadcast_on.values())

    def is_broadcast_on(self, ifp, packed):
        """A broadcast address of this interface's networks (or the limited broadcast)."""
        return packed in self._broadcast_on.get(ifp.name, _LIMITED_ONLY)

    def broadcast_on(self, ifp):
        """Every address is_broadcast_on(ifp, ...) says yes to, as a set."""
        return self._broadcast_on.get(ifp.name, _LIMITED_ONLY)


_LIMITED_ONLY = frozenset({INADDR_BROADCAST})
