"""The UDP echo service (RFC 862), run by the node itself as inetd's built-in echo is.

`start()` binds a socket and leaves a task in the node's nursery that sends
every datagram back to where it came from. The service lasts until `stop()`
closes its socket or the node halts; nothing ties it to the client that
started it.
"""

import errno

from .sockets import SOCK_DGRAM

ECHO_PORT = 7
# Datagrams from these ports are not answered: two such services would bounce
# one datagram between them for ever (echo, daytime, chargen, time; inetd skips them too).
LOOP_PORTS = {7, 13, 19, 37}


async def serve(sock):
    """Echo until the socket is closed; a reply that cannot be sent is dropped."""
    while True:
        try:
            data, source = await sock.recvfrom()
            if source[1] not in LOOP_PORTS:
                await sock.sendto(data, source)
        except OSError:
            if sock.closed:
                return


async def start(node, port=ECHO_PORT, address="0.0.0.0"):
    sock = node.socket(SOCK_DGRAM)
    try:
        await sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.service = "echo"
    node.nursery.start_soon(serve, sock)
    return sock


def stop(node, port=ECHO_PORT):
    for sock in node.udp.sockets():
        if sock.service == "echo" and sock.local[1] == port:
            sock.close()
            return
    raise OSError(errno.ESRCH, f"no echo service on UDP port {port}")
