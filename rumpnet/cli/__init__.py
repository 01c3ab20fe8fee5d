"""`rumpnet COMMAND ...`: the command-line tools, each a client of a node or of a bus file."""

import importlib
import os
import sys

from ..kern.tasks import only
from .common import Usage

# command -> (module, one-line description)
COMMANDS = {
    "server": ("server", "start a node listening on a control socket URL"),
    "halt": ("halt", "stop the node"),
    "ifconfig": ("ifconfig", "create, configure and show interfaces"),
    "brconfig": ("brconfig", "add interfaces to a bridge, show what it learned"),
    "ping": ("ping", "send ICMP echo requests from the node"),
    "traceroute": ("traceroute", "print the routers on the way to a host"),
    "arp": ("arp", "show and delete ARP cache entries"),
    "route": ("route", "show, add and delete routes"),
    "sysctl": ("sysctl", "read and set the node's tunables"),
    "netstat": ("netstat", "show interfaces, routes, sockets and protocol counters"),
    "nc": ("nc", "send and receive UDP datagrams, as netcat -u"),
    "echo": ("echo", "run a UDP echo service in the node"),
    "perf": ("perf", "measure TCP or UDP throughput between two nodes, as iperf"),
    "dumpbus": ("dumpbus", "print or save the frames on a bus file, as shmif_dumpbus"),
    "pcapin": ("pcapin", "write a pcap file's frames onto a bus, as shmif_pcapin"),
    "bench": ("bench", "measure the bus, the stack and the Linux kernel, as ratios"),
    "demo": ("demo", "start two nodes on a bus and ping between them"),
    "xenstore-ls": ("xenstore:ls_main", "list the XenStore stand-in's keys as a tree"),
    "xenstore-read": ("xenstore:read_main", "print XenStore values"),
    "xenstore-write": ("xenstore:write_main", "set XenStore values"),
    "xenstore-watch": ("xenstore:watch_main", "print XenStore keys as they change"),
    "xl": ("xl", "network-attach, network-detach: give a Xen guest node a vif, or take it away"),
    "run": ("run", "start a scenario's nodes, run its steps and print a summary"),
    "down": ("down", "stop the nodes of a run left running by rumpnet run --keep"),
    "pingall": ("pingall", "ping every node's addresses from every node, as Mininet's pingall"),
    "graph": ("graph", "draw a scenario's topology as SVG, PNG or DOT"),
}


def usage_text():
    lines = ["usage: rumpnet [--server URL] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:14} {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "The node is the one at --server URL, else $RUMP_SERVER (unix://PATH).",
              "Run `rumpnet COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv=None):
    """Run one command; its exit status. Ctrl-C is 130 and a closed output pipe ends quietly, as for C tools."""
    try:
        status = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
        return status
    except BaseException as error:
        if only(error, KeyboardInterrupt):
            return 130
        if only(error, BrokenPipeError):  # `rumpnet ... | head`: the reader has gone, nothing to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141  # 128 + SIGPIPE, what a shell reports for a C tool in the same place
        raise


def _dispatch(argv):
    server = None
    if len(argv) >= 2 and argv[0] == "--server":
        server = argv[1]
        del argv[:2]
    elif argv and argv[0].startswith("--server="):
        server = argv.pop(0).split("=", 1)[1]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage_text())
        return 0
    name = argv.pop(0)
    if name not in COMMANDS:
        print(f"rumpnet: {name}: unknown command (run `rumpnet --help` for the list)", file=sys.stderr)
        return 1
    module_name, _, entry = COMMANDS[name][0].partition(":")  # a module may hold several commands
    module = importlib.import_module(f".{module_name}", __name__)
    try:
        return getattr(module, entry or "main")(argv, server)
    except Usage as e:
        print(f"rumpnet {name}: {e}", file=sys.stderr)
        return 1
