"""Raw IP sockets: a protocol's messages out, whole IP packets in (BSD's netinet/raw_ip.c), as rump.ping uses."""

import errno

from ..kern.sockets import UserRequests, oserror, pack_address
from .ip import ip_output


class RawUserRequests(UserRequests):
    name = "raw"

    def attach(self, sock):
        space = sock.node.sysctl["net.inet.udp.recvspace"]
        sock.reserve(space, space)
        sock.node.raw_sockets.append(sock)

    def bind(self, sock, address):
        packed = pack_address(address[0])
        if packed != b"\0\0\0\0" and packed not in sock.node.inaddrs.local:
            raise oserror(errno.EADDRNOTAVAIL)
        sock.local = (packed, 0)

    def connect(self, sock, address):
        sock.remote = (pack_address(address[0]), 0)

    def send(self, sock, data, address):
        if address is None:
            if sock.remote is None:
                raise oserror(errno.EDESTADDRREQ)
            dst = sock.remote[0]
        else:
            dst = pack_address(address[0])
        # as rip_output does: a raw socket may always send to a broadcast address
        ip_output(sock.node, sock.proto, sock.local[0], dst, data, ttl=sock.ttl, broadcast_ok=True)

    def detach(self, sock):
        sock.node.raw_sockets.remove(sock)


RAW_USRREQS = RawUserRequests()


def rip_deliver(node, header, packet):
    """Give every raw socket of the packet's protocol, bound and connected to match, the whole packet.

    True when at least one took it: a protocol nobody handles is then not
    answered with protocol unreachable.
    """
    taken = False
    for sock in node.raw_sockets:
        if sock.proto == header.proto and sock.local[0] in (b"\0\0\0\0", header.dst):
            if sock.remote is None or sock.remote[0] == header.src:
                sock.deliver(packet, (header.src, 0))
                taken = True
    return taken
