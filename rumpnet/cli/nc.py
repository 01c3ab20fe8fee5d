"""rumpnet nc: send stdin as UDP datagrams and print what comes back, as OpenBSD's nc -u.

    rumpnet nc -u [-dv] [-p PORT] [-s ADDR] [-w SECS] HOST PORT
    rumpnet nc -u -l [-dv] [-s ADDR] [-w SECS] (-p PORT | [ADDR] PORT)

Each read of stdin becomes one datagram (at most 1472 bytes, what fits the
link without fragments). As OpenBSD's nc, the sender keeps printing replies
after stdin ends, until -w SECS pass idle or it is interrupted; a listener
waits for its first datagram, then talks with that sender only.
"""

import ipaddress
import os
import stat
import sys

import trio

from ..kern.sockets import SOCK_DGRAM
from ..net.ifnet import ETHERMTU
from ..netinet.ip import IP_HEADER
from ..netinet.udp import UDP_HEADER
from .common import MAX_SECONDS, Parser, Usage, ranged, run_client

PORT = ranged(int, 1, 65535)
MAX_DATAGRAM = ETHERMTU - IP_HEADER.size - UDP_HEADER.size  # 1472: what fits the link without fragments


def address(text):
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"{text}: not an IPv4 address (names are not resolved)") from None


def port(text):
    try:
        return PORT(text)
    except ValueError:
        raise ValueError(f"{text}: not a port from 1 to 65535") from None


def parse(argv):
    parser = Parser("nc", "Send stdin as UDP datagrams from the node and print the datagrams that come back, "
                          "as OpenBSD's nc -u.")
    parser.add_argument("-u", dest="udp", action="store_true", help="UDP (required: the stack has no TCP yet)")
    parser.add_argument("-l", dest="listen", action="store_true", help="wait for a datagram instead of sending first")
    parser.add_argument("-p", dest="port", type=PORT, help="local port (with -l: the port to listen on)")
    parser.add_argument("-s", dest="source", type=address, metavar="ADDR", help="local address")
    parser.add_argument("-w", dest="idle", type=ranged(float, 0.001, MAX_SECONDS), metavar="SECS",
                        help="quit after SECS without traffic")
    parser.add_argument("-d", dest="no_stdin", action="store_true", help="do not read stdin")
    parser.add_argument("-n", dest="numeric", action="store_true", help="numeric only (always: names are not resolved)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="say what is bound and connected, on stderr")
    parser.add_argument("operands", nargs="*", metavar="[HOST] PORT")
    args = parser.parse_args(argv)
    if not args.udp:
        raise Usage("TCP is not available yet: use -u")
    operands = list(args.operands)
    try:
        if args.listen:
            if len(operands) > 2 or not operands and args.port is None:
                raise Usage("-l takes -p PORT, or [ADDR] PORT")
            if operands:
                given = port(operands.pop())
                if args.port is not None and args.port != given:
                    raise Usage(f"-p {args.port} and port operand {given} disagree")
                args.port = given
            if operands:
                if args.source is not None:
                    raise Usage("give the address to listen on once, with -s or as an operand")
                args.source = address(operands.pop())
            args.host = None
        else:
            if len(operands) != 2:
                raise Usage("give HOST and PORT (or -l to listen)")
            args.host, args.remote_port = address(operands[0]), port(operands[1])
    except ValueError as e:
        raise Usage(str(e)) from None
    return args


def main(argv, server):
    args = parse(argv)
    return run_client("nc", args.server or server, lambda node: _nc(node, args))


async def _nc(node, args):
    sock = await node.socket(SOCK_DGRAM)
    if args.listen or args.source or args.port:
        try:
            await sock.bind((args.source or "0.0.0.0", args.port or 0))
        except OSError as e:
            raise OSError(e.errno, f"bind failed: {e.strerror}") from None
    if args.listen:
        if args.verbose:
            host, bound = await sock.getsockname()
            _say(f"Bound on {host} {bound}")
        data, (host, peer_port) = await sock.recvfrom()
        _write(data)
        await sock.connect((host, peer_port))
        if args.verbose:
            _say(f"Connection received on {host} {peer_port}")
    else:
        host, peer_port = args.host, args.remote_port
        await sock.connect((host, peer_port))
        if args.verbose:
            _say(f"Connection to {host} {peer_port} port [udp/*] succeeded!")
    try:
        await _exchange(sock, args.idle, not args.no_stdin)
    except OSError as e:
        raise OSError(e.errno, f"{host} port {peer_port}: {e.strerror}") from None
    await sock.close()


async def _exchange(sock, idle, use_stdin):
    """Datagrams both ways until the idle time runs out or an error (UDP never says the peer is done)."""
    failures = []
    async with trio.open_nursery() as nursery:
        def active():
            if idle:
                nursery.cancel_scope.deadline = trio.current_time() + idle

        async def guarded(direction):
            try:
                await direction()
            except OSError as e:
                failures.append(e)
                nursery.cancel_scope.cancel()

        async def network_to_stdout():
            while True:
                _write(await sock.recv())
                active()

        async def stdin_to_network():
            async for chunk in _stdin_reads(MAX_DATAGRAM):
                await sock.send(chunk)
                active()

        active()
        nursery.start_soon(guarded, network_to_stdout)
        if use_stdin:
            nursery.start_soon(guarded, stdin_to_network)
    if failures:
        raise failures[0]


async def _stdin_reads(size):
    """What each read(2) of stdin returns, as nc sends it: one datagram a read."""
    fd = sys.stdin.fileno()
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode) and not os.isatty(fd):
        # Files and /dev/null never block (and epoll refuses them).
        while chunk := os.read(fd, size):
            yield chunk
        return
    async with trio.lowlevel.FdStream(os.dup(fd)) as stream:
        while chunk := await stream.receive_some(size):
            yield chunk


def _write(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _say(text):
    print(text, file=sys.stderr, flush=True)
