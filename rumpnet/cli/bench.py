"""rumpnet bench: the bus's own round trip, ping, UDP, TCP and forwarding between nodes, and the Linux kernel, as ratios.

A benchmark, not a test: it prints figures and asserts nothing. The kernel's
figures (network namespaces over veth) need root; without it they are
skipped and the report says why.
"""

import dataclasses
import json
import sys

import trio

from ..tools import bench
from .common import Parser, fail, ranged


def main(argv, server):
    parser = Parser("bench", "Measure round trips, UDP and TCP rates and forwarding of the bus alone, of nodes on "
                             "buses, over an xvif pair and through a router, and (as root) of the Linux kernel, "
                             "and print them with their ratios.", node=False)
    parser.add_argument("--quick", action="store_true",
                        help=f"{bench.QUICK.pings} round trips and {bench.QUICK.udp_seconds:g} s per UDP or TCP figure "
                             f"instead of {bench.Settings.pings} and {bench.Settings.udp_seconds:g} s")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--cpu-latency", type=ranged(int, 0, bench.MAX_CPU_LATENCY_US), metavar="US",
                        help=f"hold {bench.CPU_DMA_LATENCY} at US microseconds for the run (root): 0 keeps idle "
                             "CPUs polling instead of halting, as cyclictest does; by default the machine is "
                             "measured as it is")
    args = parser.parse_args(argv)

    def progress(text):
        print(f"rumpnet bench: {text}", file=sys.stderr, flush=True)

    settings = dataclasses.replace(bench.QUICK if args.quick else bench.Settings(), cpu_latency_us=args.cpu_latency)
    try:
        report = trio.run(bench.run, settings, progress)
    except bench.BenchError as e:
        return fail("bench", str(e))
    print(json.dumps(report, indent=2) if args.json else bench.format_report(report))
    return 0
