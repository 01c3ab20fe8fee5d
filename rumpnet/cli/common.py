"""What every command shares: parsing that fails in one line, and running a client of a node."""

import argparse
import errno
import ipaddress
import signal
import sys

import trio

from ..client import NodeUnreachable, connect
from ..kern import numbers


class Usage(Exception):
    """A bad command line; main() prints it in one line and exits 1."""


class Parser(argparse.ArgumentParser):
    """argparse that raises Usage (one line, exit 1) instead of printing usage and exiting 2."""

    def __init__(self, command, description, node=True, **kwargs):
        super().__init__(prog=f"rumpnet {command}", description=description, **kwargs)
        if node:  # a client of a node; the bus tools and the server itself are not
            self.add_argument("--server", metavar="URL", help="the node (default: $RUMP_SERVER)")

    def error(self, message):
        raise Usage(message)


MAX_SECONDS = 2147483  # the longest wait a BSD tool takes: INT_MAX milliseconds, about 24 days


def ranged(kind, low, high=None):
    """An argparse type for an int or float from low to high, parsed as rumpnet.kern.numbers does.

    argparse names it in its one-line error: "invalid int from 1 to 255 value: '0'".
    A float always has a highest value: a wait of inf or nan would never end.
    """
    def convert(text):
        return numbers.integer(text, low, high) if kind is int else numbers.decimal(text, low, high)
    convert.__name__ = f"{kind.__name__} from {numbers.plain(low)}" + \
        (f" to {numbers.plain(high)}" if high is not None else "")
    return convert


def take_server(words, server):
    """Remove `--server URL` from a command's own words (ifconfig, brconfig); the node it names, else server."""
    if "--server" in words:
        at = words.index("--server")
        if at + 1 >= len(words):
            raise Usage("--server needs a URL")
        server = words[at + 1]
        del words[at:at + 2]
    return server


def ipv4_host(text):
    """A host operand: an IPv4 address, since a node has no resolver."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise Usage(f"{text}: not an IPv4 address (names are not resolved)") from None
    return text


def out(text, end="\n"):
    """Print at once: a tool's lines are read as they come, through a pipe too."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


async def stop_on_sigint(node, call, fd, interrupted=None, task_status=trio.TASK_STATUS_IGNORED):
    """Ctrl-C stops the run at fd in the node (with call), whose closing lines still come, and sets interrupted.

    Only the first: a second Ctrl-C interrupts the command itself. Started
    with nursery.start, it is watching once start returns.
    """
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            if interrupted is not None:
                interrupted.set()
            try:
                await node.call(call, fd=fd)
            except OSError as e:
                if e.errno != errno.EBADF:  # EBADF: the run ended meanwhile, its last lines on their way
                    raise
            return


def fail(command, message, status=1):
    print(f"rumpnet {command}: {message}", file=sys.stderr)
    return status


def run_client(command, server, body):
    """Run `await body(node)` against the node at server; errors become one line and exit 1."""

    async def session():
        async with connect(server) as node:
            return await body(node)

    try:  # Ctrl-C only at a checkpoint, as a cancellation: never half-way through leaving a nursery
        return trio.run(session, restrict_keyboard_interrupt_to_checkpoints=True) or 0
    except NodeUnreachable as e:
        return fail(command, str(e))
    except OSError as e:
        return fail(command, e.strerror or str(e))
