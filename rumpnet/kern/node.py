"""A node: one small network stack, the "rump kernel" of rumpnet.

The node owns its interfaces, routing table, ARP cache, protocol switch,
sockets, tunables and counters, and a trio nursery for its receive loops and
timers. Protocol code lives in one module per protocol, and the layers call
each other directly or through the switch, in the order a BSD kernel's input
and output paths take:

    driver rx -> ether_input -> in_arpinput | ip_input -> node.protosw[proto].input | ip_forward
    socket -> udp_output -> ip_output -> arpresolve -> ether_output -> driver tx
    ip_output to an own address -> node.ipintrq -> ip_input, once the sender is done
"""

from contextlib import asynccontextmanager
import errno
import ipaddress
import os

import trio

from . import numbers, profile
from ..net import if_bridge, if_clone, if_shmif, if_virt, offload  # noqa: F401 (if_virt registers its driver)
from ..xen import xenbus as xen_bus
from ..net.if_impair import FaultInjector, Impairment
from ..net.if_pcap import PcapTap
from ..net.ifnet import (IFF_UP, Interface, InterfaceAddress, InterfaceError, OutputHold, netmask_prefixlen,
                         parse_address, shown_name)
from ..net.loopback import LoopbackQueue
from ..net.route import Route, RouteTable
from ..netinet import arp, icmp, ip, tcp, udp
from ..netinet.udp_fastpath import udp_fast_input
from ..netinet.ip_fastfwd import forwards, ip_fastforward
from ..netinet.ip_nat import NatTable
from ..netinet.in_proto import protocol_switch
from ..netinet.inaddr import AddressSets
from ..netinet.inpcb import PcbTable
from ..netinet.raw_ip import RAW_USRREQS
from ..netinet.tcp_syncache import SynCache
from ..netinet.tcp_usrreq import TCP_USRREQS
from .busy_poll import BusyPoll
from .callout import Timers
from .counters import Counters
from .sockets import SOCK_DGRAM, SOCK_RAW, SOCK_STREAM, Socket, UserRequests
from .sysctl import Sysctl
from .tasks import open_service_nursery


class Node:
    """The stack of one node. Use `open_node()` to get one with its tasks running."""

    def __init__(self, nursery, *, capenable=None, stack="host", domid=0):
        self.nursery = nursery
        self.domid = domid  # the Xen domain this node stands for (xvif(4)); 0 is dom0
        self.timers = Timers()
        self.interfaces = {}
        self.routes = RouteTable()
        self.arp = arp.ArpTable(self)
        self.pcbs = {}  # protocol number -> PcbTable: each protocol's ports
        self.udp = self.pcb_table(ip.IPPROTO_UDP)
        self.raw_sockets = []
        self.syncache = SynCache(self)  # TCP's half-open connections
        self.socket_protocols = {}  # (kind, protocol number) -> UserRequests
        self.open_sockets = 0  # at most sockets.MAX_SOCKETS
        self.inaddrs = AddressSets()
        self.ipintrq = LoopbackQueue(self)
        self.icmp_error_rate = icmp.ErrorRate()
        self.tcp_rst_rate = icmp.ErrorRate()  # the same limiter: resets to segments no connection takes
        self.sysctl = Sysctl()
        self.busy_poll = BusyPoll(self.sysctl)
        self.stats = Counters()
        self.nat = NatTable(self)
        self.halted = trio.Event()
        self.now = trio.lowlevel.current_clock().current_time  # trio.current_time() without its lookups
        self._ip_id = int.from_bytes(os.urandom(2), "big")
        if capenable is None:
            capenable = offload.parse_capenable(os.environ.get("RUMP_SHMIF_CAPENABLE", "0"))
        self.default_capenable = capenable
        self.protocols, settings = profile.load(stack)
        self.protosw = protocol_switch(self.protocols)
        for name, value in settings.items():
            self.sysctl.set(name, value)
        if "udp" in self.protocols:
            self.register_protocol(SOCK_DGRAM, ip.IPPROTO_UDP, udp.UDP_USRREQS)
        if "tcp" in self.protocols:
            self.register_protocol(SOCK_STREAM, tcp.IPPROTO_TCP, TCP_USRREQS)

    # -- time and identity ---------------------------------------------------------

    def next_ip_id(self):
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    # -- the input path ------------------------------------------------------------

    def if_input(self, ifp, frames):
        """What an interface hands up for every batch its driver read: Ethernet input for each
        frame (on a router, the common packet to forward in one step, ip_fastfwd.py; the common
        UDP datagram in one step, udp_fastpath.py), then the packets they sent to the node
        itself (BSD's if_input and ipintr).

        What the batch sends on any interface goes out when it is done, in one
        burst an interface: a router's forwarded frames, like the answers on the
        interface they came in on, cost one lock and one wake-up of the bus for
        the batch instead of one each.
        """
        with OutputHold(self.interfaces.values()):
            if forwards(self, ifp):
                ip_fastforward(self, ifp, frames, udp_fast_input)
            else:
                udp_fast_input(self, ifp, frames)
            self.ipintrq.drain()

    # -- sockets ---------------------------------------------------------------------

    def register_protocol(self, kind, proto, usrreqs):
        """Let socket(kind, proto) make sockets of a protocol, whose user requests usrreqs holds.

        socket(kind) with proto 0 takes the first protocol registered for
        that kind, as BSD's pffindtype does.
        """
        if kind not in (SOCK_STREAM, SOCK_DGRAM) or not 0 < proto < 256:
            raise ValueError("a protocol registers as SOCK_STREAM or SOCK_DGRAM with a number from 1 to 255")
        if not isinstance(usrreqs, UserRequests):
            raise TypeError("usrreqs must be a rumpnet.UserRequests")
        if (kind, proto) in self.socket_protocols:
            raise ValueError(f"protocol {proto} is already registered for socket kind {kind}")
        self.socket_protocols[kind, proto] = usrreqs

    def pcb_table(self, proto):
        """The sockets and ports of one protocol number (its own port namespace, as in_pcb's tables)."""
        if proto not in self.pcbs:
            self.pcbs[proto] = PcbTable(self, proto)
        return self.pcbs[proto]

    def socket(self, kind=SOCK_DGRAM, proto=0):
        """A new socket: SOCK_DGRAM (UDP), SOCK_RAW with an IP protocol number (1 for ICMP), or a registered protocol's."""
        if kind == SOCK_RAW:
            if isinstance(proto, bool) or not isinstance(proto, int) or not 0 < proto < 256:
                raise OSError(errno.EPROTONOSUPPORT, "raw sockets need a protocol number from 1 to 255")
            return Socket(self, kind, proto, RAW_USRREQS)
        if kind not in (SOCK_STREAM, SOCK_DGRAM):
            raise OSError(errno.ESOCKTNOSUPPORT, "Socket type not supported")
        if proto == 0:
            proto = next((p for k, p in self.socket_protocols if k == kind), None)
        usrreqs = self.socket_protocols.get((kind, proto))
        if usrreqs is None:
            if kind == SOCK_DGRAM and proto in (None, ip.IPPROTO_UDP):
                raise OSError(errno.EPROTONOSUPPORT, "this node's stack has no UDP")
            name = "SOCK_STREAM" if kind == SOCK_STREAM else "SOCK_DGRAM"
            raise OSError(errno.EPROTONOSUPPORT, f"this node's stack has no {name} protocol {proto or ''}".rstrip())
        return Socket(self, kind, proto, usrreqs)

    def sockets(self):
        return [sock for table in self.pcbs.values() for sock in table.sockets()] + list(self.raw_sockets)

    # -- interface configuration (ifconfig) -------------------------------------------

    def interface(self, name):
        try:
            return self.interfaces[name]
        except KeyError:
            raise InterfaceError(errno.ENXIO, f"{shown_name(name)}: no such interface") from None

    def create_interface(self, name, driver_class=None):
        """A new interface of the driver its name names (if_clone.py), down and unconfigured.

        The Xen drivers are not cloned: the xenbus service makes their
        interfaces and names the driver class itself.
        """
        driver_class = driver_class or if_clone.lookup(name)
        if name in self.interfaces:
            raise InterfaceError(errno.EEXIST, f"{name}: already exists")
        ifp = Interface(name, driver_class)
        if driver_class is if_shmif.ShmifDriver:  # RUMP_SHMIF_CAPENABLE is shmif's own
            ifp.capenable = self.default_capenable
        self.stats.add_driver(ifp.driver)
        self.interfaces[name] = ifp
        self.inaddrs.recompute(self.interfaces)
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

    def create_virt(self, num, tap=None):
        """rump_pub_virtif_create(num): a new virtN on the host's tap tapN (or tap), opened now; returns its name."""
        name = f"virt{num}"
        self.create_interface(name)
        try:
            self.set_linkstr(name, tap or f"tap{num}")
        except InterfaceError:
            self.destroy_interface(name)
            raise
        return name

    def destroy_interface(self, name):
        ifp = self.interface(name)
        ifp.detach()
        self.stats.remove_driver(ifp.driver)
        self._forget_injectors([layer for layer in ifp.layers if isinstance(layer, FaultInjector)])
        self.routes.delete_interface(name)
        self.arp.purge(name)
        self.nat.purge(name)
        del self.interfaces[name]
        self.inaddrs.recompute(self.interfaces)

    def set_linkstr(self, name, path):
        self.interface(name).driver.attach(path)

    def set_up(self, name, up=True):
        ifp = self.interface(name)
        if up:
            ifp.start(self.nursery, self.if_input)
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
        if ifp.kind == "bridge":
            raise InterfaceError(errno.EINVAL, f"{name}: a bridge takes no address; give it to a member (bridge(4))")
        iface = parse_interface_address(address, prefixlen, netmask)
        for other in self.interfaces.values():
            if other is not ifp and other.owns(iface.packed):
                raise InterfaceError(errno.EADDRINUSE, f"{iface.address} is already on {other.name}")
        if not ifp.up:
            self.set_up(name)  # first, so that a driver that cannot start (virt: no tap) leaves no address
        if ifp.addresses:
            old = ifp.addresses[0]
            ifp.addresses[0] = iface
            self._delete_connected_route(old.network, name)
        else:
            ifp.addresses.append(iface)
        self.inaddrs.recompute(self.interfaces)
        try:
            self.routes.add(Route(iface.network, None, name))
        except FileExistsError:
            pass
        self.arp.announce(ifp, iface.packed)

    def delete_address(self, name):
        ifp = self.interface(name)
        if not ifp.addresses:
            raise InterfaceError(errno.EADDRNOTAVAIL, f"{name}: has no address")
        old = ifp.addresses.pop(0)
        self.inaddrs.recompute(self.interfaces)
        self._delete_connected_route(old.network, name)

    def _delete_connected_route(self, network, name):
        route = self.routes.lookup(network.network_address)
        if route is not None and route.network == network and route.ifname == name and not route.static:
            self.routes.delete(network)

    def set_capabilities(self, name, enable=0, disable=0):
        ifp = self.interface(name)
        try:
            numbers.in_range(enable, 0, 0xFFFFFFFF)
            numbers.in_range(disable, 0, 0xFFFFFFFF)
        except ValueError as e:
            raise InterfaceError(errno.EINVAL, f"{name}: capabilities: {e}") from None
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
        injector = None if off else FaultInjector(impairment, self.nursery)
        old = [layer for layer in ifp.layers if isinstance(layer, FaultInjector)]
        ifp.set_layer(FaultInjector, injector)  # closing the old one counts what it held
        self._forget_injectors(old)
        if injector:
            self.stats.add_driver(injector)

    def _forget_injectors(self, injectors):
        """Fault injectors that left an interface: netstat -s keeps what they counted."""
        for injector in injectors:
            self.stats.remove_driver(injector)

    # -- bridges (brconfig) ----------------------------------------------------------------

    def bridge(self, name):
        """The bridge(4) driver behind interface name, which brconfig's requests act on."""
        ifp = self.interface(name)
        if not isinstance(ifp.driver, if_bridge.BridgeDriver):
            raise InterfaceError(errno.EINVAL, f"{name}: not a bridge")
        return ifp.driver

    def bridge_add(self, name, member):
        self.bridge(name).add(self.interface(member), self.timers)

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
        address, prefixlen = parse_address(text)
        return ipaddress.IPv4Network((address, 32 if prefixlen is None else prefixlen), strict=False)
    except ValueError:
        raise OSError(errno.EINVAL, f"{text!r} is not an IPv4 network") from None


def classful_prefixlen(address):
    """The netmask ifconfig assumes when none is given: the old class A, B or C of the address."""
    first = address.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24


def parse_interface_address(address, prefixlen=None, netmask=None):
    """"10.0.0.1/24", or an address with a prefix length or a netmask, to an InterfaceAddress."""
    try:
        ip_address, plen = parse_address(address)
        given = [p for p in (plen, prefixlen, netmask) if p is not None]
        if len(given) > 1:
            raise ValueError("give the prefix once")
        if prefixlen is not None:
            plen = numbers.in_range(prefixlen, 0, 32)
        elif netmask is not None:
            plen = netmask_prefixlen(netmask)
        elif plen is None:
            plen = classful_prefixlen(ip_address)
        iface = ipaddress.IPv4Interface((ip_address, plen))
    except ValueError as e:
        raise InterfaceError(errno.EINVAL, f"bad address {address!r}: {e}") from None
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip == iface.network.broadcast_address \
            and iface.network.prefixlen < 31:
        raise InterfaceError(errno.EINVAL, f"{iface.ip} cannot be an interface address")
    return InterfaceAddress(iface.ip, iface.network)


@asynccontextmanager
async def open_node(*, xenstore=None, **options):
    """Run a node inside the caller's trio program ("the kernel as a library").

    With xenstore (a directory) the node is a Xen domain of that store
    (domid=N, 0 by default): its vif entries there become xennet and, in
    dom0, xvif interfaces (docs/xen.md).
    """
    async with open_service_nursery() as nursery:
        node = Node(nursery, **options)
        nursery.start_soon(node.timers.run)
        nursery.start_soon(node.busy_poll.run)
        if xenstore is not None:
            await nursery.start(xen_bus.serve, node, xenstore)
        try:
            yield node
        finally:
            node.halt()
