"""The Internet protocols a node can run, by profile name (BSD's netinet/in_proto.c, inetsw).

A stack profile (stacks/*.toml) names the optional ones it wants; the node
registers those in its protocol switch (protosw.py). Every protocol number
without an entry goes to raw IP, as BSD's ip_protox points unknown numbers at
rip_input.
"""

from . import icmp, tcp_input, udp
from .ip import IPPROTO_ICMP, IPPROTO_UDP
from .tcp import IPPROTO_TCP
from .protosw import Protosw, ProtoSwitch
from .raw_ip import rip_deliver

ICMP_UNREACH_PROTOCOL = 2


def rip_input(node, ifp, header, packet, marks):
    """A protocol with no entry: the raw sockets that asked for it, else counted and protocol unreachable."""
    if not rip_deliver(node, header, packet):
        node.stats.ip["unknown_protocol"] += 1
        icmp.icmp_error(node, packet, header, icmp.ICMP_UNREACH, ICMP_UNREACH_PROTOCOL)


RAW = Protosw("raw", rip_input)

# name in a profile -> (protocol number, entry)
INETSW = {
    "icmp": (IPPROTO_ICMP, Protosw("icmp", icmp.icmp_input)),
    "udp": (IPPROTO_UDP, Protosw("udp", udp.udp_input, udp.udp_ctlinput)),
    "tcp": (IPPROTO_TCP, Protosw("tcp", tcp_input.tcp_input)),
}


def protocol_switch(names):
    """A node's switch with the entries of the protocols a profile names."""
    switch = ProtoSwitch(RAW)
    for name in sorted(names):
        if name in INETSW:
            switch.register(*INETSW[name])
    return switch
