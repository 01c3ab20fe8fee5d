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

import importlib

# Where each public name lives. They are imported on first use (PEP 562), so that a command
# such as `rumpnet ifconfig`, a client of a node, does not load the whole stack to start.
_HOMES = {
    ".client": ["NodeUnreachable", "RemoteNode", "RemoteSocket", "connect"],
    ".kern.node": ["Node", "open_node"],
    ".kern.server": ["serve"],
    ".kern.socket_stream": ["SocketStream"],
    ".kern.sockets": ["SHUT_RD", "SHUT_RDWR", "SHUT_WR", "SOCK_DGRAM", "SOCK_RAW", "SOCK_STREAM", "Socket",
                      "UserRequests"],
    ".net.bus": ["Bus", "BusError", "BusHeader", "Cursor", "create"],
    ".net.if_clone": ["register_driver", "unregister_driver"],
    ".net.if_impair": ["Impairment"],
    ".net.ifnet": ["Driver", "InterfaceError"],
    ".netinet.ip": ["IPPROTO_ICMP", "IPPROTO_UDP"],
    ".netinet.tcp": ["IPPROTO_TCP"],
    ".netinet.protosw": ["Protosw"],
    ".tools.ping": ["PingStats", "ping"],
    ".tools.traceroute": ["traceroute"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name):
    if name not in _HOME_OF:
        raise AttributeError(f"module 'rumpnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME_OF[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_HOME_OF))


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
