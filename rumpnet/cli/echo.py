"""rumpnet echo: start or stop the node's UDP echo service (RFC 862), as inetd's built-in echo.

    rumpnet echo -u [PORT]        start it (port 7 by default); it keeps running in the node
    rumpnet echo -u -d [PORT]     stop it

The service runs inside the node, not in this command: it answers until it
is stopped with -d or the node halts.
"""

from ..tools import echo
from .common import Parser, Usage, run_client
from .nc import PORT


def main(argv, server):
    parser = Parser("echo", "Start (or with -d stop) a UDP echo service that runs inside the node "
                            "until stopped or until the node halts.")
    parser.add_argument("-u", dest="udp", action="store_true", help="UDP (required: the echo service is UDP only)")
    parser.add_argument("-d", dest="stop", action="store_true", help="stop the service on PORT")
    parser.add_argument("port", type=PORT, nargs="?", default=echo.ECHO_PORT,
                        help=f"UDP port (default {echo.ECHO_PORT}, the echo port)")
    args = parser.parse_args(argv)
    if not args.udp:
        raise Usage("the echo service is UDP only: use -u")

    async def body(node):
        if args.stop:
            await node.call("echo_stop", port=args.port)
            return
        try:
            await node.call("echo_start", port=args.port)
        except OSError as e:
            raise OSError(e.errno, f"UDP port {args.port}: {e.strerror}") from None

    return run_client("echo", args.server or server, body)
