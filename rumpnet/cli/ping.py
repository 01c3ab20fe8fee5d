"""rumpnet ping: ICMP echo from the node, as rump.ping sends it from a rump kernel.

The node runs the pinging on a raw socket of its own and times each reply
itself; this command starts it, prints the lines as it collects them and
stops it on Ctrl-C, so the control socket is not on the timed path.
Exit status as NetBSD ping(8): 0 when a reply came, 2 when none did, 1 on error.
"""

import os

import trio

from ..kern.tasks import open_service_nursery
from ..netinet.ip import MAXTTL
from ..tools.ping import MAX_SIZE, MIN_INTERVAL
from .common import MAX_SECONDS, Parser, ipv4_host, out, ranged, run_client, stop_on_sigint

# Between collecting the lines: each collection wakes this process and the
# node, and on a machine of few CPUs that moves the nodes' next round trips
# (docs/performance.md). Replies a tenth of a second apart or more are shown
# as they come; faster ones in groups, ten times a second (a flood's at once).
COLLECT_PAUSE = 0.1


def main(argv, server):
    parser = Parser("ping", "Send ICMP echo requests from the node and report the replies.")
    parser.add_argument("-c", dest="count", type=ranged(int, 1), default=0, help="stop after sending COUNT requests")
    parser.add_argument("-i", dest="wait", type=ranged(float, MIN_INTERVAL, MAX_SECONDS), default=1.0,
                        help="seconds between packets (default 1)")
    parser.add_argument("-s", dest="size", type=ranged(int, 0, MAX_SIZE), default=56, help="data bytes (default 56)")
    parser.add_argument("-T", dest="ttl", type=ranged(int, 1, MAXTTL), help="time to live of the requests")
    parser.add_argument("-w", dest="deadline", type=ranged(float, MIN_INTERVAL, MAX_SECONDS),
                        help="stop after DEADLINE seconds")
    parser.add_argument("-f", dest="flood", action="store_true", help="flood: a dot per request, a backspace per reply")
    parser.add_argument("-q", dest="quiet", action="store_true", help="print the first line and the statistics only")
    parser.add_argument("host")
    args = parser.parse_args(argv)
    ipv4_host(args.host)
    interval = min(args.wait, 0.01) if args.flood else args.wait

    async def body(node):
        fd = await node.call("ping_start", host=args.host, ident=os.getpid() & 0xFFFF, count=args.count,
                             interval=interval, size=args.size, ttl=args.ttl or MAXTTL,  # NetBSD ping's 255 too
                             deadline=args.deadline, flood=args.flood, summary_only=args.quiet)
        async with open_service_nursery() as nursery:
            await nursery.start(stop_on_sigint, node, "ping_stop", fd)
            while True:
                output = await node.call("ping_output", fd=fd)
                for text, end in output["lines"]:
                    out(text, end)
                if output["done"]:
                    break
                if not args.flood:  # a flood's dots would pile up past what a node keeps for us
                    await trio.sleep(COLLECT_PAUSE)  # the next lines wait in the node meanwhile
        return 0 if output["received"] else 2

    return run_client("ping", args.server or server, body)
