"""rumpnet server: start a node listening on a control socket, as rump_server(1).

It detaches and returns once the node is ready; -f keeps it in the foreground.
"""

import os

from ..kern.profile import ProfileError
from ..kern.profile import load as load_profile
from ..kern.protocol import parse_url
from ..kern.server import daemon, describe, foreground
from ..net.offload import parse_capenable
from ..xen.store import ENV, default_root
from ..xen.xenbus import MAX_DOMID
from .common import Parser, Usage, fail, ranged


def main(argv, server):
    parser = Parser("server", "Start a node whose control socket is URL (unix://relative/path or "
                              "unix:///absolute/path). The socket is made mode 0600.", node=False)
    parser.add_argument("-f", "--foreground", action="store_true", help="stay attached (stop with Ctrl-C)")
    parser.add_argument("-s", "--stack", default="host",
                        help="stack profile: host, router, minimal, or a path to a .toml file (default host)")
    parser.add_argument("--domid", type=ranged(int, 0, MAX_DOMID), default=None,
                        help="the Xen domain this node stands for (default 0, dom0); see docs/xen.md")
    parser.add_argument("--xenstore", metavar="DIR",
                        help=f"the XenStore directory of the sandbox (default ${ENV}, else under "
                             "$XDG_RUNTIME_DIR or /tmp); a node takes part in Xen only with this or --domid")
    parser.add_argument("url")
    args = parser.parse_args(argv)
    xen = None
    if args.domid is not None or args.xenstore or os.environ.get(ENV):
        xen = {"domid": args.domid or 0, "xenstore": args.xenstore or default_root()}
    try:
        path = parse_url(args.url)
    except ValueError as e:
        raise Usage(str(e)) from None
    try:
        load_profile(args.stack)
        parse_capenable(os.environ.get("RUMP_SHMIF_CAPENABLE", "0"))
    except (ProfileError, ValueError) as e:
        return fail("server", str(e))
    if args.foreground:
        try:
            foreground(path, args.stack, xen)
        except OSError as e:
            return fail("server", describe(e))
        return 0
    problem = daemon(path, args.stack, xen)
    if problem:
        return fail("server", problem)
    return 0
