"""rumpnet xl network-attach / network-detach: the toolstack's vif commands, against the store.

As with Xen's xl, they write the entries and leave the rest to the
domains: dom0's node makes xvifXiY, the guest's node xennetY.
"""

import trio

from ..xen import toolstack
from ..xen.store import StoreError, default_root
from ..xen.xenbus import MAX_DOMID, MAX_HANDLE
from .common import Parser, Usage, fail, ranged

SUBCOMMANDS = ("network-attach", "network-detach")


def main(argv, server):
    parser = Parser("xl", "network-attach GUESTDOMID [mac=MAC] [handle=N]: give a guest a vif; "
                          "network-detach GUESTDOMID HANDLE: take it away (Closing, Closed, entries removed).",
                    node=False)
    parser.add_argument("--xenstore", metavar="DIR", help="the store directory (default: $RUMPNET_XENSTORE, "
                                                          "else under $XDG_RUNTIME_DIR or /tmp)")
    parser.add_argument("subcommand", choices=SUBCOMMANDS)
    parser.add_argument("domid", type=ranged(int, 1, MAX_DOMID), metavar="GUESTDOMID")
    parser.add_argument("rest", nargs="*", metavar="mac=MAC handle=N | HANDLE")
    args = parser.parse_args(argv)
    root = args.xenstore or default_root()
    try:
        if args.subcommand == "network-attach":
            settings = _settings(args.rest)
            toolstack.network_attach(root, args.domid, **settings)
        else:
            if len(args.rest) != 1:
                raise Usage("network-detach takes GUESTDOMID HANDLE")
            handle = ranged(int, 0, MAX_HANDLE)(args.rest[0])
            if not trio.run(toolstack.network_detach, root, args.domid, handle):
                print(f"rumpnet xl: network-detach: the backend did not close within {toolstack.DETACH_WAIT:g} s; "
                      "entries removed anyway", flush=True)
    except ValueError as e:
        raise Usage(str(e)) from None
    except StoreError as e:
        return fail("xl", f"{args.subcommand}: {e.strerror}")
    return 0


def _settings(words):
    """network-attach's key=value words (xl's vif spec, of which mac and handle are known here)."""
    settings = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or key not in ("mac", "handle"):
            raise Usage(f"{word}: network-attach takes mac=MAC and handle=N")
        settings[key] = value if key == "mac" else ranged(int, 0, MAX_HANDLE)(value)
    return settings
