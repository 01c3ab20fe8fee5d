"""Running a node as a process of its own, reachable at a control socket (rump_server)."""

import gc
import logging
import os
import signal
import sys

import trio

from . import control
from .node import open_node
from .protocol import parse_url


async def serve(node, url, *, task_status=trio.TASK_STATUS_IGNORED):
    """Serve a node of the caller's own program at a control socket URL, until cancelled or halted.

    Command-line tools and rumpnet.connect() then reach it as a `rumpnet
    server`, with whatever protocols the program registered in it.
    """
    await control.serve(node, parse_url(url), task_status=task_status)


async def serve_node(path, ready, stack="host", xen=None):
    """Run one node serving the control socket at path until it is halted; call ready() once listening.

    xen: {"domid": N, "xenstore": DIR} makes it a Xen domain (docs/xen.md).
    SIGTERM, SIGINT and SIGHUP halt it the same way, so the socket file goes too.
    What start-up made (modules, the stack's tables) lives as long as the
    node: gc.freeze() leaves it out of the collector's full passes, each of
    which would otherwise walk it (tens of milliseconds, in the middle of a ping).
    """
    async with open_node(stack=stack, **(xen or {})) as node:
        await node.nursery.start(_halt_on_signal, node)
        await node.nursery.start(control.serve, node, path)
        gc.freeze()
        ready()
        await node.halted.wait()


async def _halt_on_signal(node, task_status=trio.TASK_STATUS_IGNORED):
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()
        async for _ in signals:
            node.halt()
            return


def daemon(path, stack="host", xen=None):
    """Start the node in a detached child; return once it listens (None) or failed (the reason)."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid:
        os.close(writable)
        with os.fdopen(readable, "rb") as pipe:
            answer = pipe.read().decode(errors="replace")
        os.waitpid(pid, 0)
        return None if answer == "ready" else (answer or "the node exited before it was ready")
    os.close(readable)
    try:
        if os.fork():  # the grandchild is the node: no terminal and no parent to wait for it
            os._exit(0)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
    except BaseException as e:
        report_and_exit(writable, e)
    serve_in_child(writable, path, stack, xen)


def serve_in_child(writable, path, stack="host", xen=None):
    """Run the node in this forked child, writing "ready" or what stopped it to the parent's pipe; never return."""
    log_to_stderr()

    def ready():
        os.write(writable, b"ready")
        os.close(writable)

    try:
        trio.run(serve_node, path, ready, stack, xen)
    except BaseException as e:  # report whatever stopped the node to the waiting parent
        report_and_exit(writable, e)
    os._exit(0)


def report_and_exit(writable, error):
    try:
        os.write(writable, describe(error).encode())
    except OSError:
        pass
    os._exit(1)


def describe(error):
    """An exception as one line for a user: OSError without Python's "[Errno N]"."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def log_to_stderr():
    """A node process's log is its stderr: rumpnet's lines from INFO up, each as `rumpnet: message`."""
    logging.basicConfig(stream=sys.stderr, format="rumpnet: %(message)s")
    logging.getLogger("rumpnet").setLevel(logging.INFO)


def foreground(path, stack="host", xen=None):
    """Run the node attached to this terminal; its log is stderr: faults of its own, with tracebacks,
    and rumpnet's INFO lines (news such as a new interface's address), which a library user's program
    shows only when it asks logging for them."""
    log_to_stderr()

    def ready():
        print(f"rumpnet: node ready at unix://{path}", file=sys.stderr)

    trio.run(serve_node, path, ready, stack, xen, restrict_keyboard_interrupt_to_checkpoints=True)
