"""rumpnet: a userspace TCP/IP sandbox, a "mini rump kernel" in Python.

Run a node inside your own trio program::

    async with rumpnet.open_node() as node:
        ifname = node.create_shmif("/tmp/bus")
        node.add_address(ifname, "10.0.0.1/24")
        sock = node.socket(rumpnet.SOCK_RAW, rumpnet.IPPROTO_ICMP)
        stats = await rumpnet.ping(sock, "10.0.0.2", count=3)

or talk to a node running in another process (`rumpnet server URL`) with
`rumpnet.connect(url)`.
"""

from .client import NodeUnreachable, RemoteNode, RemoteSocket, connect
from .kern.node import Node, open_node
from .kern.server import serve
from .kern.socket_stream import SocketStream
from .kern.sockets import SHUT_RD, SHUT_RDWR, SHUT_WR, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM, Socket, UserRequests
from .net.bus import Bus, BusError, BusHeader, Cursor, create
from .net.if_clone import register_driver, unregister_driver
from .net.if_impair import Impairment
from .net.ifnet import Driver, InterfaceError
from .netinet.ip import IPPROTO_ICMP, IPPROTO_UDP
from .netinet.tcp import IPPROTO_TCP
from .netinet.protosw import Protosw
from .tools.ping import PingStats, ping
from .tools.traceroute import traceroute

__all__ = [
    "Bus", "BusError", "BusHeader", "Cursor", "create",
    "NodeUnreachable", "RemoteNode", "RemoteSocket", "connect",
    "Driver", "Impairment", "InterfaceError", "register_driver", "unregister_driver",
    "Node", "open_node", "serve", "Protosw",
    "PingStats", "ping", "traceroute",
    "Socket", "SocketStream", "UserRequests", "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "IPPROTO_ICMP", "IPPROTO_UDP",
    "IPPROTO_TCP",
    "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
]
