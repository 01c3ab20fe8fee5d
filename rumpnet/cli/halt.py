"""rumpnet halt: stop the node, as rump.halt does."""

import os

import trio

from ..kern.protocol import parse_url
from .common import Parser, run_client

GONE_WITHIN = 5.0  # seconds a halted node may take to remove its control socket


def _socket_identity(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def main(argv, server):
    args = Parser("halt", "Stop the node and remove its control socket.").parse_args(argv)

    async def body(node):
        path = parse_url(node.url)
        before = _socket_identity(path)
        await node.call("halt")
        # The node answers before it stops; return only once its socket file is gone,
        # so that a script may start another node at the same URL at once.
        with trio.move_on_after(GONE_WITHIN):
            while before is not None and _socket_identity(path) == before:
                await trio.sleep(0.005)
            return 0
        raise OSError(0, f"{node.url}: the node accepted halt but its control socket is still there "
                         f"after {GONE_WITHIN:g} s")

    return run_client("halt", args.server or server, body)
