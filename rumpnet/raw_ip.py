"""Raw IP input: copies of packets for the raw sockets that asked for their protocol (BSD's netinet/raw_ip.c)."""


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
