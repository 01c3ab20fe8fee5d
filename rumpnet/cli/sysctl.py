"""rumpnet sysctl: read and set the node's tunables, as sysctl(8) does."""

from .common import Parser, Usage, run_client


def main(argv, server):
    parser = Parser("sysctl", "Show or set the node's variables (net.inet.*).")
    parser.add_argument("-a", action="store_true", help="show every variable")
    parser.add_argument("-n", action="store_true", help="print values only")
    parser.add_argument("-w", action="store_true", help="set: NAME=VALUE")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.w:
        if not args.names or any("=" not in n for n in args.names):
            raise Usage("-w takes NAME=VALUE")
    elif not args.names and not args.a:
        raise Usage("name a variable, or use -a")

    async def body(node):
        if args.w:
            for item in args.names:
                name, value = item.split("=", 1)
                old = await node.call("sysctl_set", name=name, value=value)
                new = int(value)  # the node took it, so ASCII decimal: 064 is 64
                print(f"{name}: {old} -> {new}" if not args.n else new)
            return
        for prefix in args.names or [None]:
            for name, value in (await node.call("sysctl_get", prefix=prefix)).items():
                print(value if args.n else f"{name} = {value}")

    return run_client("sysctl", args.server or server, body)
