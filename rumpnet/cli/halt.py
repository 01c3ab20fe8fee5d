"""rumpnet halt: stop the node, as rump.halt does."""

from .common import Parser, run_client


def main(argv, server):
    args = Parser("halt", "Stop the node and remove its control socket.").parse_args(argv)

    async def body(node):
        await node.call("halt")

    return run_client("halt", args.server or server, body)
