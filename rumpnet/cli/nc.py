"""rumpnet nc: TCP connections and UDP datagrams from a node, as OpenBSD's nc.

    rumpnet nc [-dNnvz] [-p PORT] [-s ADDR] [-w SECS] HOST PORT[-PORT]
    rumpnet nc -l [-dNnv] [-s ADDR] [-w SECS] (-p PORT | [ADDR] PORT)
    rumpnet nc -u [-dnv] [-p PORT] [-s ADDR] [-w SECS] HOST PORT
    rumpnet nc -u -l [-dnv] [-s ADDR] [-w SECS] (-p PORT | [ADDR] PORT)

TCP (the default) copies stdin to the connection and the connection to
stdout until both have ended, as OpenBSD's nc does; -N shuts the sending
side down when stdin ends, so the peer reads end of file. -z only tries to
connect, to each port of a range. With -u each read of stdin becomes one
datagram (at most 1472 bytes, what fits the link without fragments); the
sender keeps printing replies after stdin ends, until -w SECS pass idle or
it is interrupted; a listener waits for its first datagram, then talks with
that sender only.
"""

import errno
import ipaddress
import os
import stat
import sys

import trio

from ..kern.sockets import SHUT_WR, SOCK_DGRAM, SOCK_STREAM
from ..net.ifnet import ETHERMTU
from ..netinet.ip import IP_HEADER
from ..netinet.udp import UDP_HEADER
from .common import MAX_SECONDS, Parser, Usage, ranged, run_client

PORT = ranged(int, 1, 65535)
TCP_READ = 65536  # bytes nc reads from stdin or the connection at a time
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


def port_range(text):
    """PORT or LOW-HIGH, as nc -z scans: the list of ports."""
    low, dash, high = text.partition("-")
    first = port(low)
    last = port(high) if dash else first
    if last < first:
        raise ValueError(f"{text}: the range ends before it starts")
    return list(range(first, last + 1))


def parse(argv):
    parser = Parser("nc", "Open a TCP connection (or, with -u, send UDP datagrams) from the node, copying stdin "
                          "to it and what comes back to stdout, as OpenBSD's nc.")
    parser.add_argument("-u", dest="udp", action="store_true", help="UDP instead of TCP")
    parser.add_argument("-l", dest="listen", action="store_true",
                        help="listen for a connection (a datagram with -u) instead of starting one")
    parser.add_argument("-p", dest="port", type=PORT, help="local port (with -l: the port to listen on)")
    parser.add_argument("-s", dest="source", type=address, metavar="ADDR", help="local address")
    parser.add_argument("-w", dest="idle", type=ranged(float, 0.001, MAX_SECONDS), metavar="SECS",
                        help="give up connecting, or quit, after SECS without traffic")
    parser.add_argument("-d", dest="no_stdin", action="store_true", help="do not read stdin")
    parser.add_argument("-N", dest="shutdown", action="store_true",
                        help="TCP: shut the connection down for sending when stdin ends")
    parser.add_argument("-z", dest="scan", action="store_true", help="TCP: only see whether each port takes a "
                                                                     "connection (PORT may be LOW-HIGH)")
    parser.add_argument("-n", dest="numeric", action="store_true", help="numeric only (always: names are not resolved)")
    parser.add_argument("-v", dest="verbose", action="store_true", help="say what is bound and connected, on stderr")
    parser.add_argument("operands", nargs="*", metavar="[HOST] PORT")
    args = parser.parse_args(argv)
    if args.udp and (args.shutdown or args.scan):
        raise Usage(f"{'-N' if args.shutdown else '-z'} is for TCP: leave out -u")
    if args.listen and args.scan:
        raise Usage("-z scans as a client: leave out -l")
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
            args.host = address(operands[0])
            args.ports = port_range(operands[1]) if args.scan else [port(operands[1])]
            args.remote_port = args.ports[0]
    except ValueError as e:
        raise Usage(str(e)) from None
    return args


def main(argv, server):
    args = parse(argv)
    if args.udp:
        return run_client("nc", args.server or server, lambda node: _nc(node, args))
    return run_client("nc", args.server or server, lambda node: _nc_tcp(node, args))


async def _nc_tcp(node, args):
    if args.scan:
        return await _scan(node, args)
    if args.listen:
        listener = await node.socket(SOCK_STREAM)
        try:
            await _bind(listener, args)
            await listener.listen(1)
            if args.verbose:
                host, bound = await listener.getsockname()
                _say(f"Listening on {host} {bound}")
            sock, (host, peer_port) = await listener.accept()
        finally:
            await listener.close()
        if args.verbose:
            _say(f"Connection received on {host} {peer_port}")
    else:
        host, peer_port = args.host, args.remote_port
        sock = await _connect(node, args, host, peer_port)
        if sock is None:
            raise OSError(errno.ETIMEDOUT, f"connect to {host} port {peer_port} (tcp) failed: "
                                           f"{os.strerror(errno.ETIMEDOUT)}")
        if args.verbose:
            _say(f"Connection to {host} {peer_port} port [tcp/*] succeeded!")
    try:
        await _stream(sock, args.idle, not args.no_stdin, args.shutdown)
    except OSError as e:
        raise OSError(e.errno, f"{host} port {peer_port}: {e.strerror}") from None
    finally:
        await sock.close()


async def _bind(sock, args):
    if args.listen or args.source or args.port:
        try:
            await sock.bind((args.source or "0.0.0.0", args.port or 0))
        except OSError as e:
            raise OSError(e.errno, f"bind failed: {e.strerror}") from None


async def _connect(node, args, host, peer_port):
    """A connected socket, None when -w SECS passed first; OSError names the port that failed."""
    sock = await node.socket(SOCK_STREAM)
    try:
        await _bind(sock, args)
        with trio.move_on_after(args.idle or MAX_SECONDS):
            await sock.connect((host, peer_port))
            return sock
    except OSError as e:
        await sock.close()
        raise OSError(e.errno, f"connect to {host} port {peer_port} (tcp) failed: {e.strerror}") from None
    await sock.close()
    return None


async def _scan(node, args):
    """-z: connect to each port and close at once; 0 when one took the connection (OpenBSD's nc -z)."""
    status = 1
    for peer_port in args.ports:
        try:
            sock = await _connect(node, args, args.host, peer_port)
        except OSError as e:
            if args.verbose:
                _say(f"nc: {e.strerror}")
            continue
        if sock is None:
            if args.verbose:
                _say(f"nc: connect to {args.host} port {peer_port} (tcp) timed out")
            continue
        await sock.close()
        status = 0
        if args.verbose:
            _say(f"Connection to {args.host} {peer_port} port [tcp/*] succeeded!")
    return status


async def _stream(sock, idle, use_stdin, shutdown):
    """Both directions until both inputs have ended (stdin and the peer's stream), as OpenBSD's nc."""
    async with trio.open_nursery() as nursery:
        def active():
            if idle:
                nursery.cancel_scope.deadline = trio.current_time() + idle

        async def network_to_stdout():
            while data := await sock.recv(TCP_READ):
                _write(data)
                active()

        async def stdin_to_network():
            async for chunk in _stdin_reads(TCP_READ):
                await sock.send(chunk)
                active()
            if shutdown:
                await sock.shutdown(SHUT_WR)

        active()
        nursery.start_soon(network_to_stdout)
        if use_stdin:
            nursery.start_soon(stdin_to_network)
        elif shutdown:
            await sock.shutdown(SHUT_WR)


async def _nc(node, args):
    sock = await node.socket(SOCK_DGRAM)
    await _bind(sock, args)
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
