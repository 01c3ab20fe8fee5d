"""rumpnet perf: TCP or UDP throughput between two nodes, with iperf's flags and report.

    rumpnet perf -s [-u] [-p PORT] [-w BYTES]                             receiver, until interrupted
    rumpnet perf -c HOST [-p PORT] [-l LEN] [-t SECS] [-i SECS]            TCP sender
    rumpnet perf -c HOST -u [-p PORT] [-l LEN] [-t SECS] [-b RATE]         UDP sender

Both ends run inside their nodes (rumpnet.tools.perf for UDP, perf_tcp for
TCP); this command starts them through the control socket and prints what
they report: a TCP sender's intervals as each ends, and on Ctrl-C its summary.
"""

import ipaddress
import re

import trio

from ..kern import numbers
from ..kern.sockets import SB_MAX
from ..kern.tasks import open_service_nursery
from ..tools import perf, perf_tcp
from .common import Parser, Usage, out, ranged, run_client, stop_on_sigint
from .nc import PORT

RULE = "-" * 60
_RATE = re.compile(r"(.*?)([kmg]|pps)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
MAX_RATE = 1e12  # bits/s: far beyond what a node sends, and a bound that keeps every rate finite


def parse_rate(text, length):
    """iperf's -b: bits/s with an optional k, m or g (powers of 1000), or datagrams/s with pps."""
    number, unit = _RATE.match(text).groups()
    try:
        number = numbers.decimal(number, 0, MAX_RATE)
    except ValueError:
        raise Usage(f"-b {text}: not a rate (such as 10M, 500k, 20000pps, "
                    "or 0 for as fast as possible)") from None
    unit = (unit or "").lower()
    rate = number * length * 8 if unit == "pps" else number * _UNITS[unit]
    if rate > MAX_RATE:
        raise Usage(f"-b {text}: more than {MAX_RATE / 1e9:g}G bits/s")
    return rate


def format_bytes(count):
    """iperf's adaptive byte count (KBytes are 1024 bytes)."""
    for unit, size in (("GBytes", 1 << 30), ("MBytes", 1 << 20), ("KBytes", 1 << 10)):
        if count >= size:
            return f"{count / size:6.2f} {unit}"
    return f"{count:6.0f} Bytes"


def format_bits(bits_per_second):
    """iperf's adaptive bit rate (Kbits are 1000 bits)."""
    for unit, size in (("Gbits", 1e9), ("Mbits", 1e6), ("Kbits", 1e3)):
        if bits_per_second >= size:
            return f"{bits_per_second / size:6.2f} {unit}/sec"
    return f"{bits_per_second:6.0f} bits/sec"


def transfer(ident, seconds, count, start=0.0):
    return (f"[{ident:3d}] {start:4.1f}-{seconds:4.1f} sec  {format_bytes(count)}  "
            f"{format_bits(perf.rate(count * 8, seconds - start))}")


def server_line(ident, report):
    """iperf's UDP result: transfer, bandwidth, jitter, lost/total; then datagrams per second."""
    return (f"{transfer(ident, report.duration, report.bytes)}  {report.jitter * 1000:6.3f} ms "
            f"{report.lost:4d}/{report.total:5d} ({report.loss_percent:.2g}%)  "
            f"{perf.rate(report.received, report.duration):.0f} datagrams/sec")


def main(argv, server):
    parser = Parser("perf", "Measure TCP (or UDP with -u) between two nodes as iperf does: a receiver (-s) "
                            "in one node, a sender (-c HOST) in another, both running inside the nodes.")
    parser.add_argument("-s", dest="listen", action="store_true", help="run the receiver until interrupted")
    parser.add_argument("-c", dest="host", metavar="HOST", help="run the sender towards HOST")
    parser.add_argument("-u", dest="udp", action="store_true", help="UDP instead of TCP")
    parser.add_argument("-p", dest="port", type=PORT, default=perf.DEFAULT_PORT,
                        help=f"port (default {perf.DEFAULT_PORT})")
    parser.add_argument("-l", dest="length", metavar="LEN", type=ranged(int, 1, SB_MAX),
                        help=f"TCP: bytes a write (default {perf_tcp.DEFAULT_LENGTH}); UDP: datagram payload bytes, "
                             f"{perf.HEADER.size} to {perf.MAX_DATAGRAM} (default {perf.DEFAULT_LENGTH}; 1472 fill the MTU)")
    parser.add_argument("-t", dest="time", metavar="SECS", type=ranged(float, 0.001, 86400),
                        default=perf.DEFAULT_DURATION, help=f"seconds to send (default {perf.DEFAULT_DURATION:g})")
    parser.add_argument("-i", dest="interval", metavar="SECS", type=ranged(float, 0.1, 86400),
                        help=f"TCP: seconds between interval reports (default {perf_tcp.DEFAULT_INTERVAL:g})")
    parser.add_argument("-b", dest="rate",
                        help="UDP: target rate in bits/s with k, m or g, or datagrams/s with pps; 0: unlimited "
                             "(default 1M)")
    parser.add_argument("-w", dest="window", metavar="BYTES", type=ranged(int, 1, SB_MAX),
                        default=perf.SERVER_RCVBUF,
                        help=f"receiver's socket buffer, bytes (default {perf.SERVER_RCVBUF})")
    args = parser.parse_args(argv)
    if args.listen == bool(args.host):
        raise Usage("give either -s (receiver) or -c HOST (sender)")
    if args.udp and args.interval is not None:
        raise Usage("-i: interval reports are for TCP (leave out -u)")
    if not args.udp and args.rate is not None:
        raise Usage("-b: TCP sends as fast as the window allows; a target rate is for UDP (-u)")
    if args.udp and args.length is not None and not perf.HEADER.size <= args.length <= perf.MAX_DATAGRAM:
        raise Usage(f"-l {args.length}: a UDP datagram's payload is {perf.HEADER.size} to {perf.MAX_DATAGRAM} bytes")
    if args.host:
        try:
            ipaddress.IPv4Address(args.host)
        except ValueError:
            raise Usage(f"{args.host}: not an IPv4 address (names are not resolved)") from None
        if not args.udp:
            return run_client("perf", args.server or server, lambda node: _send_tcp(node, args))
        args.length = args.length or perf.DEFAULT_LENGTH
        bits_per_second = parse_rate(args.rate or "1M", args.length)
        return run_client("perf", args.server or server, lambda node: _send(node, args, bits_per_second))
    return run_client("perf", args.server or server, lambda node: _receive(node, args))


async def _receive(node, args):
    kind = "UDP" if args.udp else "TCP"
    try:
        fd = await node.call("perf_server", port=args.port, rcvbuf=args.window, tcp=not args.udp)
    except OSError as e:
        raise OSError(e.errno, f"{kind} port {args.port}: {e.strerror}") from None
    buffer = "UDP buffer size" if args.udp else "TCP window size"
    print(f"{RULE}\nServer listening on {kind} port {args.port}\n{buffer}: {format_bytes(args.window)}\n{RULE}",
          flush=True)
    ident = 0
    while True:
        values = await node.call("perf_report", fd=fd)
        report = (perf.ServerReport if args.udp else perf_tcp.TcpServerReport).from_dict(values)
        ident += 1
        host, port = report.peer
        print(f"[{ident:3d}] local 0.0.0.0 port {args.port} connected with {host} port {port}")
        if args.udp:
            print("[ ID] Interval       Transfer     Bandwidth        Jitter   Lost/Total Datagrams")
            print(server_line(ident, report), flush=True)
        else:
            print("[ ID] Interval       Transfer     Bandwidth")
            print(transfer(ident, report.duration, report.bytes), flush=True)


async def _send_tcp(node, args):
    """Print each interval as the sender in the node ends it; Ctrl-C stops the sender, and the summary follows."""
    out(f"{RULE}\nClient connecting to {args.host}, TCP port {args.port}\n{RULE}")
    try:
        started = await node.call("perf_tcp_start", host=args.host, port=args.port,
                                  length=args.length or perf_tcp.DEFAULT_LENGTH, duration=args.time,
                                  interval=args.interval or perf_tcp.DEFAULT_INTERVAL)
        fd, (host, port) = started["fd"], started["local"]
        interrupted = trio.Event()
        async with open_service_nursery() as nursery:
            await nursery.start(stop_on_sigint, node, "perf_tcp_stop", fd, interrupted)
            out(f"[  1] local {host} port {port} connected with {args.host} port {args.port}\n"
                "[ ID] Interval       Transfer     Bandwidth       Retr")
            while True:
                output = await node.call("perf_tcp_output", fd=fd)
                for i in (perf_tcp.Interval(**values) for values in output["intervals"]):
                    out(f"{transfer(1, i.end, i.bytes, i.start)}  {i.retransmits:4d}")
                if output["done"]:
                    break
    except OSError as e:
        raise OSError(e.errno, f"{args.host} port {args.port}: {e.strerror}") from None
    report = perf_tcp.TcpClientReport.from_dict(output["report"])
    print(f"{transfer(1, report.duration, report.bytes)}  {report.retransmits:4d}  sender")
    if report.server is None:
        print("[  1] WARNING: the receiver's report did not come")
    else:
        print(f"{transfer(1, report.server.duration, report.server.bytes)}        receiver")
    return 130 if interrupted.is_set() else 0


async def _send(node, args, bits_per_second):
    print(f"{RULE}\nClient connecting to {args.host}, UDP port {args.port}\n"
          f"Sending {args.length} byte datagrams\n{RULE}", flush=True)
    try:
        values = await node.call("perf_client", host=args.host, port=args.port, length=args.length,
                                 duration=args.time, bits_per_second=bits_per_second)
    except OSError as e:
        raise OSError(e.errno, f"{args.host} port {args.port}: {e.strerror}") from None
    report = perf.ClientReport.from_dict(values)
    print(f"[  1] local {report.local[0]} port {report.local[1]} connected with {args.host} port {args.port}")
    print("[ ID] Interval       Transfer     Bandwidth")
    print(transfer(1, report.duration, report.bytes))
    print(f"[  1] Sent {report.sent} datagrams ({perf.rate(report.sent, report.duration):.0f} datagrams/sec)")
    if report.server is None:
        print(f"[  1] WARNING: did not receive ack of last datagram after {perf.FIN_TRIES} tries.")
    else:
        print("[  1] Server Report:")
        print(server_line(1, report.server))
