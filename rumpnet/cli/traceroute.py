"""rumpnet traceroute: the routers on the way to a host, as traceroute(8), from the node.

Exit status as NetBSD's traceroute: 0 when the trace ran (whether or not the
host answered), 1 on error.
"""

import errno
import sys

from ..kern.sockets import SOCK_DGRAM, SOCK_RAW
from ..netinet.ip import IPPROTO_ICMP, MAXTTL
from ..tools.traceroute import BASE_PORT, DEFAULT_PROBES, DEFAULT_WAIT, PACKET_LENGTH, traceroute
from .common import MAX_SECONDS, Parser, ipv4_host, out, ranged, run_client


def main(argv, server):
    parser = Parser("traceroute", "Print the route packets take to a host: each router, then the host.")
    parser.add_argument("-n", dest="numeric", action="store_true", help="print addresses only")
    parser.add_argument("-m", dest="max_ttl", metavar="max_ttl", type=ranged(int, 1, MAXTTL),
                        help="most hops to try (default: the node's net.inet.ip.ttl)")
    parser.add_argument("-p", dest="port", metavar="port", type=ranged(int, 1, 65535), default=BASE_PORT,
                        help=f"base UDP port; probe N goes to port+N (default {BASE_PORT})")
    parser.add_argument("-q", dest="nprobes", metavar="nqueries", type=ranged(int, 1, 100), default=DEFAULT_PROBES,
                        help=f"probes per hop (default {DEFAULT_PROBES})")
    parser.add_argument("-w", dest="waittime", metavar="waittime", type=ranged(float, 0.01, MAX_SECONDS),
                        default=DEFAULT_WAIT, help=f"seconds to wait for each answer (default {DEFAULT_WAIT:g})")
    parser.add_argument("host")
    args = parser.parse_args(argv)
    ipv4_host(args.host)

    async def body(node):
        max_ttl = args.max_ttl or (await node.call("sysctl_get", prefix="net.inet.ip.ttl"))["net.inet.ip.ttl"]
        try:  # as BSD's traceroute finds its source address before it starts
            await node.call("route_get", address=args.host)
        except OSError:
            raise OSError(errno.ENETUNREACH, f"{args.host}: Network is unreachable") from None
        icmp = await node.socket(SOCK_RAW, IPPROTO_ICMP)
        udp = await node.socket(SOCK_DGRAM)
        print(f"traceroute to {args.host} ({args.host}), {max_ttl} hops max, {PACKET_LENGTH} byte packets",
              file=sys.stderr, flush=True)
        await traceroute(udp, icmp, args.host, max_ttl=max_ttl, nprobes=args.nprobes, waittime=args.waittime,
                         port=args.port, numeric=args.numeric, out=out)
        return 0

    return run_client("traceroute", args.server or server, body)
