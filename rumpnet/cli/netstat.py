"""rumpnet netstat: interfaces (-i), routes (-r), sockets (-a, -n) and protocol counters (-s), as netstat(1)."""

import ipaddress

from ..kern.counters import DESCRIPTIONS
from .common import Parser, run_client
from .route import table_text


def format_counters(stats, protocol=None):
    lines = []
    for proto, rows in DESCRIPTIONS.items():
        if protocol and proto != protocol:
            continue
        lines.append(f"{proto}:")
        values = stats.get(proto, {})
        for key, text in rows:
            lines.append(f"\t{values.get(key, 0)} {text}")
    return "\n".join(lines)


def format_interfaces(interfaces):
    lines = [f"{'Name':8} {'Mtu':>5} {'Network':16} {'Address':18} {'Ipkts':>8} {'Ierrs':>5} "
             f"{'Opkts':>8} {'Oerrs':>5} {'Colls':>5}"]
    for info in interfaces:
        c = info["counters"]
        tail = f"{c['ipackets']:>8} {c['ierrors']:>5} {c['opackets']:>8} {c['oerrors']:>5} {0:>5}"
        lines.append(f"{info['name']:8} {info['mtu']:>5} {'<Link>':16} {info['mac']:18} {tail}")
        for a in info["addresses"]:
            network = ipaddress.IPv4Network(f"{a['address']}/{a['prefixlen']}", strict=False)
            lines.append(f"{info['name']:8} {info['mtu']:>5} {str(network):16} {a['address']:18} {tail}")
    return "\n".join(lines)


def netname(network):
    """A network as NetBSD's netstat -rn writes it: the octets its mask covers (10.0.2/24, 127/8), default."""
    if network.prefixlen == 0:
        return "0.0.0.0/0"  # table_text writes it "default"
    if network.prefixlen == 32:
        return str(network.network_address)
    octets = str(network.network_address).split(".")[:(network.prefixlen + 7) // 8]
    return f"{'.'.join(octets)}/{network.prefixlen}"


def format_routes(routes, neighbours):
    """netstat -r: routes and resolved neighbours (flag L) in address order, as NetBSD's radix tree lists them."""
    rows = []
    for r in routes:
        network = ipaddress.IPv4Network(r["destination"])
        rows.append(((int(network.network_address), network.prefixlen),
                     (netname(network), r["gateway"], r["flags"], r["use"], r["interface"])))
    for n in neighbours:
        if n["mac"]:
            flags = "UHL" + ("S" if n["permanent"] else "")
            rows.append(((int(ipaddress.IPv4Address(n["address"])), 33),
                         (n["address"], n["mac"], flags, "-", n["interface"])))
    return table_text(row for _, row in sorted(rows))


def format_sockets(sockets):
    def endpoint(address):
        host, port = address
        return f"{'*' if host == '0.0.0.0' else host}.{port or '*'}"

    lines = ["Active Internet connections (including servers)",
             f"{'Proto':5} {'Recv-Q':>6} {'Send-Q':>6}  {'Local Address':22} {'Foreign Address':22} State"]
    for s in sockets:
        lines.append(f"{s['proto']:5} {s['recv_q']:>6} {s['send_q']:>6}  {endpoint(s['local']):22} "
                     f"{endpoint(s['remote']):22} {s.get('state', '')}".rstrip())
    return "\n".join(lines)


def main(argv, server):
    parser = Parser("netstat", "Show the node's interfaces, sockets or protocol counters.")
    parser.add_argument("-i", action="store_true", help="interfaces with packet counts")
    parser.add_argument("-s", action="store_true", help="counters per protocol, every drop reason")
    parser.add_argument("-r", action="store_true", help="the routing table, neighbours included")
    parser.add_argument("-a", action="store_true", help="all sockets (the default)")
    parser.add_argument("-n", action="store_true", help="numeric (always)")
    parser.add_argument("-p", dest="protocol", choices=sorted(DESCRIPTIONS), help="with -s: one protocol")
    args = parser.parse_args(argv)

    async def body(node):
        if args.s:
            print(format_counters(await node.call("stats"), args.protocol))
        elif args.r:
            print(format_routes(await node.call("route_list"), await node.call("arp_list")))
        elif args.i:
            print(format_interfaces(await node.call("if_list")))
        else:
            print(format_sockets(await node.call("sockets")))

    return run_client("netstat", args.server or server, body)
