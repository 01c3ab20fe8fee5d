"""The IPv4 routing table: longest-prefix match, as `route show` lists it."""

from dataclasses import dataclass
import ipaddress

RTF_UP = "U"
RTF_GATEWAY = "G"
RTF_HOST = "H"
RTF_STATIC = "S"
RTF_CONNECTED = "C"


@dataclass
class Route:
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None
    ifname: str
    static: bool = False
    use: int = 0

    @property
    def flags(self):
        flags = RTF_UP
        if self.gateway is not None:
            flags += RTF_GATEWAY
        if self.network.prefixlen == 32:
            flags += RTF_HOST
        flags += RTF_STATIC if self.static else RTF_CONNECTED
        return flags

    def describe(self):
        return {"destination": str(self.network), "gateway": str(self.gateway) if self.gateway else None,
                "flags": self.flags, "interface": self.ifname, "use": self.use}


CACHE_SIZE = 1024  # destinations remembered between changes of the table


class RouteTable:
    def __init__(self):
        self.routes = []
        self._cache = {}  # packed destination -> Route or None, until the table changes

    def add(self, route):
        for existing in self.routes:
            if existing.network == route.network:
                raise FileExistsError(f"route to {route.network} already exists")
        self.routes.append(route)
        self._cache.clear()

    def delete(self, network):
        for existing in self.routes:
            if existing.network == network:
                self.routes.remove(existing)
                self._cache.clear()
                return existing
        raise LookupError(f"no route to {network}")

    def delete_interface(self, ifname):
        self.routes = [r for r in self.routes if r.ifname != ifname]
        self._cache.clear()

    def lookup_packed(self, packed):
        """lookup() for a packed address, as a packet carries it.

        Every packet sent needs a route, and building an IPv4Address for each
        costs more than the rest of the lookup: the answer is remembered per
        destination until the table changes.
        """
        try:
            return self._cache[packed]
        except KeyError:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            route = self._cache[packed] = self.lookup(ipaddress.IPv4Address(packed))
            return route

    def lookup(self, address):
        """The most specific route for an IPv4Address, or None."""
        best = None
        for route in self.routes:
            if address in route.network and (best is None or route.network.prefixlen > best.network.prefixlen):
                best = route
        return best
