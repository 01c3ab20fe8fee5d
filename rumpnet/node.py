"""A node: one small network stack, the "rump kernel" of rumpnet.

The node owns its interfaces, routing table, ARP cache, sockets, tunables and
counters, and a trio nursery for its receive loops and timers. Protocol code
lives in one module per protocol; the node only wires them together, in the
order a BSD kernel's input and output paths take:

    driver rx -> ether_input -> arp_input | ip_input -> icmp_input | udp_input | ip_forward
    socket -> udp_output -> ip_output -> arpresolve -> ether_output -> driver tx
"""

import errno
import ipaddress
import os
from contextlib import asynccontextmanager

import trio

from . import arp, ether, icmp, if_clone, if_shmif, ip, offload, profile, udp
from .counters import Counters
from .if_impair import FaultInjector, Impairment
from .if_pcap import PcapTap
from .ifnet import IFF_UP, Interface, InterfaceAddress, InterfaceError
from .route import Route, RouteTable
from .sockets import SOCK_DGRAM, SOCK_RAW, RawSocket
from .sysctl import Sysctl
from .tasks import open_service_nursery



class Node:
    """The stack of one node. Use `open_node()` to get one with its tasks running."""

    def __init__(self, nursery, *, capenable=None, stack="host"):
        self.nursery = nursery
        self.interfaces = {}
        self.routes = RouteTable()
        self.arp = arp.ArpTable(self)
        self.udp = udp.UdpTable(self)
        self.raw_sockets = []
        self.icmp_error_rate = icmp.ErrorRate()
        self.sysctl = Sysctl()
        self.stats = Counters()
        self.halted = trio.Event()
        self._ip_id = int.from_bytes(os.urandom(2), "big")
        if capenable is None:
            capenable = offload.parse_capenable(os.environ.get("RUMP_SHMIF_CAPENABLE", "0"))
        self.default_capenable = capenable
        self.protocols, settings = profile.load(stack)
        for name, value in settings.items():
            self.sysctl.set(name, value)

    # -- time and identity ---------------------------------------------------------

    @staticmethod
    def now():
        return trio.current_time()

    def next_ip_id(self):
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    # -- the input path ------------------------------------------------------------

    def ether_input(self, ifp, frame):
        ether.ether_input(self, ifp, frame)

    def arp_input(self, ifp, packet):
        self.arp.input(ifp, packet)

    def ip_input(self, ifp, packet, marks, link_multicast):
        ip.ip_input(self, ifp, packet, marks, link_multicast)

    def icmp_input(self, ifp, header, packet, marks):
        if "icmp" in self.protocols:
            icmp.icmp_input(self, ifp, header, packet, marks)
        else:
            self.stats.ip["unknown_protocol"] += 1

    def udp_input(self, ifp, header, packet, marks):
        if "udp" in self.protocols:
            udp.udp_input(self, ifp, header, packet, marks)
        else:
            self.stats.ip["unknown_protocol"] += 1
            self.icmp_error(packet, header, 3, 2)  # protocol unreachable

    def raw_input(self, header, packet):
        """Give raw sockets of the packet's protocol a copy; True if any took it."""
        taken = False
        for sock in self.raw_sockets:
            if sock.proto == header.proto and sock.local[0] in (b"\0\0\0\0", header.dst):
                if sock.remote is None or sock.remote[0] == header.src:
                    sock.deliver(packet, (header.src, 0))
                    taken = True
        return taken

    def icmp_error(self, packet, header, icmp_type, code):
        icmp.icmp_error(self, packet, header, icmp_type, code)

    def udp_notify(self, src, sport, dst, dport, error):
        udp.udp_notify(self, src, sport, dst, dport, error)

    # -- the output path -----------------------------------------------------------

    def ether_output(self, ifp, dst_mac, ethertype, payload, csum_flags=0):
        ether.ether_output(self, ifp, dst_mac, ethertype, payload, csum_flags)

    def loopback(self, ifp, packet):
        """A packet to one of our own addresses goes straight back in, as through lo0."""
        self.ip_input(ifp, packet, ip.loopback_marks(), False)

    def route_to(self, dst):
        """(interface, next hop) for a packed destination, or (None, None)."""
        if dst == ip.INADDR_BROADCAST:
            for ifp in self.interfaces.values():
                if ifp.running and ifp.addresses:
                    return ifp, dst
            return None, None
        route = self.routes.lookup_packed(dst)
        if route is None:
            return None, None
        route.use += 1
        ifp = self.interfaces.get(route.ifname)
        return ifp, route.gateway.packed if route.gateway else dst

    def source_for(self, ifp, dst):
        address = ifp.primary()
        if address is None:
            raise OSError(errno.EADDRNOTAVAIL, "Can't assign requested address")
        return address.packed

    def is_local(self, packed):
        return any(ifp.owns(packed) for ifp in self.interfaces.values())

    def is_broadcast(self, packed):
        return any(ifp.is_broadcast(packed) for ifp in self.interfaces.values())

    # -- sockets ---------------------------------------------------------------------

    def socket(self, kind=SOCK_DGRAM, proto=0):
        """A new socket: SOCK_DGRAM (UDP) or SOCK_RAW with an IP protocol number (1 for ICMP)."""
        if kind == SOCK_DGRAM:
            if "udp" not in self.protocols:
                raise OSError(errno.EPROTONOSUPPORT, "this node's stack has no UDP")
            return udp.UdpSocket(self)
        if kind == SOCK_RAW:
            if not 0 < proto < 256:
                raise OSError(errno.EPROTONOSUPPORT, "raw sockets need a protocol number from 1 to 255")
            sock = RawSocket(self, proto)
            self.raw_sockets.append(sock)
            return sock
        raise OSError(errno.ESOCKTNOSUPPORT, "Socket type not supported")

    def detach_socket(self, sock):
        if sock in self.raw_sockets:
            self.raw_sockets.remove(sock)
        else:
            self.udp.remove(sock)

    def sockets(self):
        return self.udp.sockets() + list(self.raw_sockets)

    # -- interface configuration (ifconfig) -------------------------------------------

    def interface(self, name):
        try:
            return self.interfaces[name]
        except KeyError:
            raise InterfaceError(errno.ENXIO, f"{name}: no such interface") from None

    def create_interface(self, name):
        """A new interface of the driver its name names (if_clone.py), down and unconfigured."""
        driver_class = if_clone.lookup(name)
        if name in self.interfaces:
            raise InterfaceError(errno.EEXIST, f"{name}: already exists")
        ifp = Interface(name, driver_class)
        if driver_class is if_shmif.ShmifDriver:  # RUMP_SHMIF_CAPENABLE is shmif's own
            ifp.capenable = self.default_capenable
        self.stats.add_driver(ifp.driver)
        self.interfaces[name] = ifp
        return ifp

    def create_shmif(self, bus_path):
        """rump_pub_shmif_create(): a new shmifN on the bus at bus_path; returns its name."""
        unit = 0
        while f"shmif{unit}" in self.interfaces:
            unit += 1
        name = f"shmif{unit}"
        self.create_interface(name)
        try:
            self.set_linkstr(name, bus_path)
        except InterfaceError:
            self.destroy_interface(name)
            raise
        return name

    def destroy_interface(self, name):
        ifp = self.interface(name)
        ifp.detach()
        self.stats.remove_driver(ifp.driver)
        self.routes.delete_interface(name)
        del self.interfaces[name]

    def set_linkstr(self, name, path):
        self.interface(name).driver.attach(path)

    def set_up(self, name, up=True):
        ifp = self.interface(name)
        if up:
            ifp.start(self.nursery, self.ether_input)
            ifp.flags |= IFF_UP
            for address in ifp.addresses:
                self.arp.announce(ifp, address.packed)
        else:
            ifp.flags &= ~IFF_UP
            ifp.stop()

    def add_address(self, name, address, prefixlen=None, netmask=None):
        """Give an interface an IPv4 address (replacing its first one) and bring it up, as ifconfig does."""
        ifp = self.interface(name)
        if ifp.driver.needs_linkstr and ifp.linkstr() is None:
            raise InterfaceError(errno.EDESTADDRREQ,
                                 f"{name}: set the bus with linkstr before an address ({ifp.kind}(4))")
        iface = parse_interface_address(address, prefixlen, netmask)
        for other in self.interfaces.values():
            if other is not ifp and other.owns(iface.packed):
                raise InterfaceError(errno.EADDRINUSE, f"{iface.address} is already on {other.name}")
        if ifp.addresses:
            old = ifp.addresses[0]
            ifp.addresses[0] = iface
            self._delete_connected_route(old.network, name)
        else:
            ifp.addresses.append(iface)
        try:
            self.routes.add(Route(iface.network, None, name))
        except FileExistsError:
            pass
        if not ifp.up:
            self.set_up(name)
        else:
            self.arp.announce(ifp, iface.packed)

    def delete_address(self, name):
        ifp = self.interface(name)
        if not ifp.addresses:
            raise InterfaceError(errno.EADDRNOTAVAIL, f"{name}: has no address")
        old = ifp.addresses.pop(0)
        self._delete_connected_route(old.network, name)

    def _delete_connected_route(self, network, name):
        route = self.routes.lookup(network.network_address)
        if route is not None and route.network == network and route.ifname == name and not route.static:
            self.routes.delete(network)

    def set_capabilities(self, name, enable=0, disable=0):
        ifp = self.interface(name)
        unknown = (enable | disable) & ~ifp.capabilities
        if unknown:
            raise InterfaceError(errno.EINVAL, f"{name}: does not offer {offload.cap_names(unknown)}")
        ifp.capenable = (ifp.capenable | enable) & ~disable

    def set_pcap(self, name, path=None):
        """Record every frame in and out of an interface to a pcap file at path; None stops."""
        ifp = self.interface(name)
        ifp.set_layer(PcapTap, None if path is None else PcapTap(name, path))

    def set_impairment(self, name, impairment=None):
        """Impair an interface's output (an Impairment, or its fields as a dict); None or all zero stops."""
        ifp = self.interface(name)
        if isinstance(impairment, dict):
            try:
                impairment = Impairment(**impairment)
            except (TypeError, ValueError) as e:
                raise InterfaceError(errno.EINVAL, f"{name}: impair: {e}") from None
        off = impairment is None or impairment.none
        ifp.set_layer(FaultInjector, None if off else FaultInjector(impairment, self.nursery))

    # -- routes and ARP (route, arp) ----------------------------------------------------

    def add_route(self, destination, gateway):
        network = parse_network(destination)
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise OSError(errno.EINVAL, f"gateway {gateway!r} is not an IPv4 address") from None
        connected = self.routes.lookup(gw)
        if connected is None or connected.gateway is not None:
            raise OSError(errno.ENETUNREACH, f"gateway {gw} is not on a connected network")
        try:
            self.routes.add(Route(network, gw, connected.ifname, static=True))
        except FileExistsError as e:
            raise OSError(errno.EEXIST, str(e)) from None

    def get_route(self, address):
        """The route a packet to address would take (route get)."""
        try:
            route = self.routes.lookup(ipaddress.IPv4Address(address))
        except ValueError:
            raise OSError(errno.EINVAL, f"{address!r} is not an IPv4 address") from None
        if route is None:
            raise OSError(errno.ESRCH, f"{address}: not in table")
        return route

    def delete_route(self, destination):
        try:
            self.routes.delete(parse_network(destination))
        except LookupError as e:
            raise OSError(errno.ESRCH, str(e)) from None

    # -- running ---------------------------------------------------------------------

    async def _arp_timer(self):
        while True:
            await trio.sleep(1.0)
            self.arp.timer(self.now())

    def halt(self):
        """Stop the node: close every interface; open_node()'s block then ends."""
        for name in list(self.interfaces):
            self.interfaces[name].detach()
        self.halted.set()
        self.nursery.cancel_scope.cancel()


def parse_network(text):
    if text == "default":
        return ipaddress.IPv4Network("0.0.0.0/0")
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise OSError(errno.EINVAL, f"{text!r} is not an IPv4 network") from None


def classful_prefixlen(address):
    """The netmask ifconfig assumes when none is given: the old class A, B or C of the address."""
    first = int(address.split(".")[0]) if address.split(".")[0].isdigit() else 0
    return 8 if first < 128 else 16 if first < 192 else 24


def parse_interface_address(address, prefixlen=None, netmask=None):
    """"10.0.0.1/24", or an address with a prefix length or a netmask, to an InterfaceAddress."""
    try:
        if "/" in address:
            if prefixlen is not None or netmask is not None:
                raise ValueError("give the prefix once")
            iface = ipaddress.IPv4Interface(address)
        elif netmask is not None:
            iface = ipaddress.IPv4Interface(f"{address}/{netmask}")
        else:
            plen = classful_prefixlen(address) if prefixlen is None else prefixlen
            iface = ipaddress.IPv4Interface(f"{address}/{plen}")
    except ValueError as e:
        raise InterfaceError(errno.EINVAL, f"bad address {address!r}: {e}") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip == iface.network.broadcast_address \
            and iface.network.prefixlen < 31:
        raise InterfaceError(errno.EINVAL, f"{iface.ip} cannot be an interface address")
    return InterfaceAddress(iface.ip, iface.network)


@asynccontextmanager
async def open_node(**options):
    """Run a node inside the caller's trio program ("the kernel as a library")."""
    async with open_service_nursery() as nursery:
        node = Node(nursery, **options)
        nursery.start_soon(node._arp_timer)
        try:
            yield node
        finally:
            node.halt()
