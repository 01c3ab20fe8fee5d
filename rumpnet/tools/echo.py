"""The UDP echo service (RFC 862), run by the node itself as inetd's built-in echo is, and its client.

`start()` binds a socket and leaves a task in the node's nursery that sends
every datagram back to where it came from. The service lasts until `stop()`
closes its socket or the node halts; nothing ties it to the client that
started it. `round_trips()` is the client a benchmark needs: requests one
at a time, each sent when the last answer came.
"""

import errno

import trio

from ..kern.sockets import SOCK_DGRAM, closed_on_error

ECHO_PORT = 7
REQUEST_LENGTH = 64  # bytes of a round_trips() request
PROBE_TRIES = 50  # requests sent before round_trips() gives up on the service
PROBE_WAIT = 0.1  # seconds to wait for the answer to each
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
    with closed_on_error(node.socket(SOCK_DGRAM)) as sock:
        await sock.bind((address, port))
    sock.service = "echo"
    node.nursery.start_soon(serve, sock)
    return sock


def stop(node, port=ECHO_PORT):
    for sock in node.udp.sockets():
        if sock.service == "echo" and sock.local[1] == port:
            sock.close()
            return
    raise OSError(errno.ESRCH, f"no echo service on UDP port {port}")


async def round_trips(node, host, port=ECHO_PORT, *, seconds, length=REQUEST_LENGTH):
    """Request/response with one request outstanding for seconds: (round trips done, seconds taken).

    The clock starts at the first answer (the link resolved, the service
    listening). One time limit covers the run, not one per request: a lost
    answer stalls it, and the count shows that.
    """
    request = bytes(length)
    with node.socket(SOCK_DGRAM) as sock:
        await sock.connect((host, port))
        for _ in range(PROBE_TRIES):
            await sock.send(request)
            with trio.move_on_after(PROBE_WAIT):
                await sock.recv()
                break
        else:
            raise OSError(errno.ETIMEDOUT, f"no answer from an echo service at {host} port {port}")
        done = 0
        start = trio.current_time()
        with trio.move_on_after(seconds):
            while True:
                await sock.send(request)
                await sock.recv()
                done += 1
        return done, trio.current_time() - start
