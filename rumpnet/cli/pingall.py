"""rumpnet pingall: every node pings every other node's addresses, as Mininet's pingall.

    rumpnet pingall [-w SECONDS] RUNDIR
    rumpnet pingall [-w SECONDS] URL URL...

The nodes are those of a run directory (rumpnet run --keep), or the nodes at
the control socket URLs given, each named after its socket file. Exit 0 when
every ping was answered, 1 otherwise.
"""

from pathlib import Path

import trio

from ..client import NodeUnreachable, connect
from ..kern.protocol import parse_url
from ..scenario.pingall import DEADLINE, pingall_text
from ..scenario.runner import read_run_file
from ..scenario.schema import ScenarioError
from .common import Parser, Usage, fail, ranged


def main(argv, server):
    parser = Parser("pingall", "Ping every address of every other node from every node.", node=False)
    parser.add_argument("-w", dest="wait", type=ranged(float, 0.1, 600), default=DEADLINE,
                        help=f"seconds each node waits for its replies (default {DEADLINE:g})")
    parser.add_argument("nodes", nargs="+", metavar="RUNDIR | URL")
    args = parser.parse_args(argv)
    if len(args.nodes) == 1 and Path(args.nodes[0]).is_dir():
        try:
            run = read_run_file(args.nodes[0])
        except ScenarioError as e:
            return fail("pingall", str(e))
        nodes = {name: (node["url"], node["addresses"]) for name, node in run["nodes"].items()}
    else:
        for url in args.nodes:
            try:
                parse_url(url)
            except ValueError as e:
                raise Usage(f"{url}: neither a run directory nor a node's URL ({e})") from None
        try:
            nodes = trio.run(addresses_of, args.nodes)
        except NodeUnreachable as e:
            return fail("pingall", str(e))
    status, text = trio.run(pingall_text, nodes, args.wait)
    print(text, end="")
    return status


async def addresses_of(urls):
    nodes = {}
    for url in urls:
        async with connect(url) as node:
            addresses = [a["address"] for i in await node.call("if_list") for a in i["addresses"]]
        nodes[Path(parse_url(url)).stem] = (url, addresses)
    return nodes
