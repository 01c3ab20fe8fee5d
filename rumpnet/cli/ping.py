"""rumpnet ping: ICMP echo from the node, a client using a raw socket as rump.ping does.

Exit status as NetBSD ping(8): 0 when a reply came, 2 when none did, 1 on error.
"""

import signal

import trio

from ..kern.sockets import SOCK_RAW
from ..kern.tasks import open_service_nursery
from ..netinet.ip import IPPROTO_ICMP, MAXTTL
from ..tools.ping import PingStats, ping
from .common import MAX_SECONDS, Parser, ipv4_host, out, ranged, run_client


def main(argv, server):
    parser = Parser("ping", "Send ICMP echo requests from the node and report the replies.")
    parser.add_argument("-c", dest="count", type=ranged(int, 1), default=0, help="stop after sending COUNT requests")
    parser.add_argument("-i", dest="wait", type=ranged(float, 0.001, MAX_SECONDS), default=1.0,
                        help="seconds between packets (default 1)")
    parser.add_argument("-s", dest="size", type=ranged(int, 0, 1472), default=56, help="data bytes (default 56)")
    parser.add_argument("-T", dest="ttl", type=ranged(int, 1, MAXTTL), help="time to live of the requests")
    parser.add_argument("-w", dest="deadline", type=ranged(float, 0.001, MAX_SECONDS), help="stop after DEADLINE seconds")
    parser.add_argument("-f", dest="flood", action="store_true", help="flood: a dot per request, a backspace per reply")
    parser.add_argument("-q", dest="quiet", action="store_true", help="print the first line and the statistics only")
    parser.add_argument("host")
    args = parser.parse_args(argv)
    ipv4_host(args.host)
    interval = min(args.wait, 0.01) if args.flood else args.wait

    async def body(node):
        sock = await node.socket(SOCK_RAW, IPPROTO_ICMP)
        await sock.setsockopt("IP_TTL", args.ttl or MAXTTL)  # NetBSD ping's requests leave with 255 too
        stats = PingStats(args.host)
        async with open_service_nursery() as nursery:
            nursery.start_soon(_interrupt_on_sigint, stats)
            await ping(sock, args.host, count=args.count, interval=interval, size=args.size,
                       deadline=args.deadline, flood=args.flood, summary_only=args.quiet, out=out, stats=stats)
        return 0 if stats.received else 2

    return run_client("ping", args.server or server, body)


async def _interrupt_on_sigint(stats):
    """Ctrl-C ends the pinging, and the statistics still print, as in NetBSD ping."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            stats.scope.cancel()
            return
