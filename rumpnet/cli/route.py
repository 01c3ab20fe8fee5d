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


def main(argv, server):
    parser = Parser("route", "Show the routing table, or add and delete routes.")
    parser.add_argument("-n", action="store_true", help="numeric (always)")
    parser.add_argument("command", choices=["show", "add", "delete", "get"], nargs="?", default="show")
    parser.add_argument("operands", nargs="*", help="add: DESTINATION GATEWAY; delete: DESTINATION; get: ADDRESS")
    args = parser.parse_args(argv)
    expected = {"show": 0, "add": 2, "delete": 1, "get": 1}[args.command]
    operands = [o for o in args.operands if o not in ("-net", "-host")]
    if len(operands) != expected:
        raise Usage(f"route {args.command} takes {expected} operand(s): "
                    + {"show": "none", "add": "DESTINATION GATEWAY", "delete": "DESTINATION",
                       "get": "ADDRESS"}[args.command])

    async def body(node):
        if args.command == "add":
            await node.call("route_add", destination=operands[0], gateway=operands[1])
            print(f"add net {operands[0]}: gateway {operands[1]}")
        elif args.command == "delete":
            await node.call("route_delete", destination=operands[0])
            print(f"delete net {operands[0]}")
        else:
            print(format_table(await node.call("route_list")))

    return run_client("route", args.server or server, body)
