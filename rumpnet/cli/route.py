"""rumpnet route: show, add and delete routes, as route(8)."""

import ipaddress

from .common import Parser, Usage, run_client


def format_table(routes):
    return table_text((r["destination"], r["gateway"], r["flags"], r["use"], r["interface"]) for r in routes)


def table_text(rows):
    """NetBSD's routing table layout for rows of (destination, gateway or None, flags, use, interface)."""
    lines = ["Routing tables", "", "Internet:",
             f"{'Destination':18} {'Gateway':18} {'Flags':6} {'Refs':>6} {'Use':>8} {'Mtu':>6} Interface"]
    for destination, gateway, flags, use, ifname in rows:
        dest = "default" if destination == "0.0.0.0/0" else destination
        lines.append(f"{dest:18} {gateway or 'link#' + ifname:18} {flags:6} {'-':>6} {use:>8} {'-':>6} {ifname}")
    return "\n".join(lines)


def kind(destination):
    """"host" for a single address, "net" for a network, as route(8) says it."""
    return "host" if "/" not in destination and destination != "default" else \
        "host" if destination.endswith("/32") else "net"


def modifiers(argv):
    """(argv without them, "-net" or "-host" or None, the -netmask value or None): route(8)'s words, anywhere."""
    rest, force, netmask = [], None, None
    words = iter(argv)
    for word in words:
        if word in ("-net", "-host"):
            if force not in (None, word):
                raise Usage("-net and -host may not be given together")
            force = word
        elif word == "-netmask":
            netmask = next(words, None)
            if netmask is None:
                raise Usage("-netmask takes a mask, as 255.255.255.0")
        else:
            rest.append(word)
    if netmask is not None and force == "-host":
        raise Usage("-netmask is for a network, not with -host")
    return rest, force, netmask


def with_mask(destination, force, netmask):
    """The destination as the node takes it (A.B.C.D/N, default), after -net, -host and -netmask.

    -net without a mask takes it as NetBSD's route(8) does: from the zero
    octets at the end (10.0.2.0 is 10.0.2.0/24, 10.0.0.0 is 10.0.0.0/8), or
    from the octets written (10.0.2 is 10.0.2.0/24).
    """
    if destination == "default" or "/" in destination:
        if netmask is not None or (force == "-host" and not destination.endswith("/32")):
            raise Usage(f"{destination}: a mask given twice")
        return destination
    if netmask is not None:
        try:
            return str(ipaddress.IPv4Network(f"{destination}/{netmask}", strict=False))
        except ValueError:
            raise Usage(f"-netmask {netmask}: not a netmask for {destination} (as 255.255.255.0)") from None
    if force == "-host":
        return f"{destination}/32"
    if force == "-net":
        octets = destination.split(".")
        if not all(o.isdigit() for o in octets) or not 1 <= len(octets) <= 4:
            raise Usage(f"{destination!r} is not an IPv4 network")
        written = len(octets)
        octets += ["0"] * (4 - written)
        while written > 1 and octets[written - 1] == "0":
            written -= 1
        return f"{'.'.join(octets)}/{8 * written}"
    return destination


def format_route(address, route):
    destination = "default" if route["destination"] == "0.0.0.0/0" else route["destination"]
    lines = [f"   route to: {address}", f"destination: {destination}"]
    if route["gateway"]:
        lines.append(f"    gateway: {route['gateway']}")
    lines += [f"  interface: {route['interface']}", f"      flags: <{route['flags']}>"]
    return "\n".join(lines)


def main(argv, server):
    argv, force, netmask = modifiers(argv)
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
    if (force or netmask) and args.command not in ("add", "delete"):
        raise Usage(f"-net, -host and -netmask go with add and delete, not {args.command}")
    shown = operands[0] if operands else None
    if args.command in ("add", "delete"):
        operands[0] = with_mask(operands[0], force, netmask)
        said = force[1:] if force else kind(operands[0])

    async def body(node):
        if args.command == "add":
            await node.call("route_add", destination=operands[0], gateway=operands[1])
            print(f"add {said} {shown}: gateway {operands[1]}")
        elif args.command == "delete":
            await node.call("route_delete", destination=operands[0])
            print(f"delete {said} {shown}")
        elif args.command == "get":
            route = await node.call("route_get", address=operands[0])
            print(format_route(operands[0], route))
        else:
            print(format_table(await node.call("route_list")))

    return run_client("route", args.server or server, body)
