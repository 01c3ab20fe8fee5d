"""rumpnet route: show, add and delete routes, as route(8)."""

from .common import Parser, Usage, run_client


def format_table(routes):
    lines = ["Routing tables", "", "Internet:",
             f"{'Destination':18} {'Gateway':18} {'Flags':6} {'Refs':>6} {'Use':>8} {'Mtu':>6} Interface"]
    for r in routes:
        dest = "default" if r["destination"] == "0.0.0.0/0" else r["destination"]
        gateway = r["gateway"] or "link#" + r["interface"]
        lines.append(f"{dest:18} {gateway:18} {r['flags']:6} {'-':>6} {r['use']:>8} {'-':>6} {r['interface']}")
    return "\n".join(lines)


def kind(destination):
    """"host" for a single address, "net" for a network, as route(8) says it."""
    return "host" if "/" not in destination and destination != "default" else \
        "host" if destination.endswith("/32") else "net"


def format_route(address, route):
    destination = "default" if route["destination"] == "0.0.0.0/0" else route["destination"]
    lines = [f"   route to: {address}", f"destination: {destination}"]
    if route["gateway"]:
        lines.append(f"    gateway: {route['gateway']}")
    lines += [f"  interface: {route['interface']}", f"      flags: <{route['flags']}>"]
    return "\n".join(lines)


def main(argv, server):
    argv = [word for word in argv if word not in ("-net", "-host")]  # implied by the destination's form
    parser = Parser("route", "Show the routing table, or add and delete routes.")
    parser.add_argument("-n", action="store_true", help="numeric (always)")
    parser.add_argument("command", choices=["show", "add", "delete", "get"], nargs="?", default="show")
    parser.add_argument("operands", nargs="*", help="add: DESTINATION GATEWAY; delete: DESTINATION; get: ADDRESS")
    args = parser.parse_args(argv)
    expected = {"show": 0, "add": 2, "delete": 1, "get": 1}[args.command]
    operands = args.operands
    if len(operands) != expected:
        raise Usage(f"route {args.command} takes {expected} operand(s): "
                    + {"show": "none", "add": "DESTINATION GATEWAY", "delete": "DESTINATION",
                       "get": "ADDRESS"}[args.command])

    async def body(node):
        if args.command == "add":
            await node.call("route_add", destination=operands[0], gateway=operands[1])
            print(f"add {kind(operands[0])} {operands[0]}: gateway {operands[1]}")
        elif args.command == "delete":
            await node.call("route_delete", destination=operands[0])
            print(f"delete {kind(operands[0])} {operands[0]}")
        elif args.command == "get":
            route = await node.call("route_get", address=operands[0])
            print(format_route(operands[0], route))
        else:
            print(format_table(await node.call("route_list")))

    return run_client("route", args.server or server, body)
