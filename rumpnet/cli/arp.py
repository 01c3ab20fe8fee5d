"""rumpnet arp: show (-a) and delete (-d) ARP cache entries, as arp(8)."""

from .common import Parser, Usage, run_client


def format_entry(entry):
    mac = entry["mac"] or "(incomplete)"
    extra = " permanent" if entry["permanent"] else ""
    return f"? ({entry['address']}) at {mac} on {entry['interface']}{extra}"


def main(argv, server):
    parser = Parser("arp", "Show or delete entries of the node's ARP cache.")
    parser.add_argument("-a", action="store_true", help="show every entry")
    parser.add_argument("-n", action="store_true", help="numeric (always: names are not resolved)")
    parser.add_argument("-d", metavar="HOST", help="delete the entry for HOST")
    parser.add_argument("host", nargs="?")
    args = parser.parse_args(argv)
    if args.d and (args.a or args.host):
        raise Usage("-d takes one host and no other operand")

    async def body(node):
        if args.d:
            await node.call("arp_delete", address=args.d)
            return
        entries = await node.call("arp_list")
        if args.host:
            entries = [e for e in entries if e["address"] == args.host]
            if not entries:
                print(f"{args.host} ({args.host}) -- no entry")
                return 1
        for entry in entries:
            print(format_entry(entry))

    return run_client("arp", args.server or server, body)
