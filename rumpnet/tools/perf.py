"""UDP throughput, loss and jitter between two nodes, measured as iperf's UDP mode measures them.

Both ends run inside the nodes, on the nodes' own sockets, so what is timed
is the stacks and the bus, not the control socket that started them. Every
datagram starts with iperf's UDP header: a sequence number and the time it
was sent. The sender paces datagrams to a target rate for a duration, then
sends closing datagrams (negative sequence numbers carrying the count sent)
until the receiver answers with its report, as iperf's server does.
"""

from collections import OrderedDict
from dataclasses import asdict, dataclass
import errno
import json
import math
import struct
import time

import trio

from ..kern.sockets import SOCK_DGRAM, closed_on_error

DEFAULT_PORT = 5001  # iperf's
DEFAULT_LENGTH = 1470  # iperf's UDP default; 1472 bytes fill a 1500-byte MTU
MAX_DATAGRAM = 65507  # the most a UDP datagram over IPv4 holds
DEFAULT_RATE = 1_000_000  # bits/s, iperf's UDP default; 0 sends as fast as the stack takes them
DEFAULT_DURATION = 10.0
SERVER_RCVBUF = 256 * 1024  # room for a receive batch of full-size frames, as iperf's larger UDP buffer
HEADER = struct.Struct("!iII")  # sequence number, seconds, microseconds of the send time
FIN_TRIES = 10  # closing datagrams sent before giving up on the report, as iperf
FIN_WAIT = 0.25  # seconds to wait for the report after each
KEEP_REPORTS = 16  # finished tests whose report is kept for repeated closing datagrams
BURST = 32  # datagrams due at once go out together, with one wake-up of the bus (sendmmsg)


@dataclass
class ServerReport:
    """What the receiver saw of one test."""

    peer: tuple  # (address, port) of the sender
    received: int = 0  # datagrams
    bytes: int = 0
    total: int = 0  # datagrams the sender says it sent
    lost: int = 0
    out_of_order: int = 0
    jitter: float = 0.0  # seconds, smoothed as RFC 3550 does
    duration: float = 0.0  # seconds from the first datagram to the closing one

    @property
    def loss_percent(self):
        return 100.0 * self.lost / self.total if self.total else 0.0

    @classmethod
    def from_dict(cls, values):
        return cls(**{**values, "peer": tuple(values["peer"])})


@dataclass
class ClientReport:
    """What the sender did, and the receiver's report (None when it never came)."""

    local: tuple
    remote: tuple
    length: int
    sent: int
    bytes: int
    duration: float
    server: ServerReport | None

    @classmethod
    def from_dict(cls, values):
        server = values["server"]
        return cls(**{**values, "local": tuple(values["local"]), "remote": tuple(values["remote"]),
                      "server": ServerReport.from_dict(server) if server else None})


def rate(count, seconds):
    """A per-second rate that stays finite for a test too short to time."""
    return count / seconds if seconds > 0 else 0.0


# -- the receiver (iperf -s) ------------------------------------------------------

class _Test:
    """One sender's test in progress: counts, order and jitter, as iperf's server keeps them."""

    def __init__(self, peer, now):
        self.report = ServerReport(peer)
        self.started = now
        self.expected = 0  # the next sequence number in order
        self.last_transit = None

    def add(self, seq, size, sent, now):
        report = self.report
        report.received += 1
        report.bytes += size
        if seq < self.expected:
            report.out_of_order += 1
        else:
            self.expected = seq + 1
        transit = now - sent
        if self.last_transit is not None:
            report.jitter += (abs(transit - self.last_transit) - report.jitter) / 16
        self.last_transit = transit

    def finish(self, total, now):
        report = self.report
        report.total = max(total, self.expected)
        report.lost = max(0, report.total - report.received)
        report.duration = now - self.started
        return report


class PerfServer:
    """The receiving end on a bound socket: serves tests one after another until the socket closes.

    Finished reports go to `reports`, a trio receive channel (the newest are
    dropped when nobody reads it), and back to each sender.
    """

    def __init__(self, sock, clock=time.time):
        self.sock = sock
        self.clock = clock
        self.running = {}  # peer -> _Test
        self.finished = OrderedDict()  # peer -> ServerReport, answered again to repeated closing datagrams
        self._send_reports, self.reports = trio.open_memory_channel(KEEP_REPORTS)

    async def serve(self):
        """Take what is queued in one call (recvmmsg) and count it: a receiver that keeps up with a
        burst pays for one receive, not one a datagram. A batch was queued when it is taken, so
        its datagrams share one arrival time."""
        async with self._send_reports:
            while True:
                try:
                    batch = await self.sock.recvmmsg()
                except OSError:
                    if self.sock.closed:
                        return
                    continue
                now = self.clock()
                for data, peer in batch:
                    if len(data) >= HEADER.size:
                        seq, sec, usec = HEADER.unpack_from(data)
                        if seq >= 0:
                            self._count(peer, seq, len(data), sec + usec / 1e6, now)
                        else:
                            await self._closing(peer, seq, now)

    def _count(self, peer, seq, size, sent, now):
        test = self.running.get(peer)
        if test is None:
            test = self.running[peer] = _Test(peer, now)
            self.finished.pop(peer, None)
        test.add(seq, size, sent, now)

    async def _closing(self, peer, seq, now):
        """A closing datagram (seq is minus the count sent, less one): finish the test and answer with its report."""
        report = self.finished.get(peer)
        total = -seq - 1
        if report is None and total == 0 and peer not in self.running:
            report = ServerReport(peer)  # the sender's probe before a test: answered, not a test
        elif report is None:
            test = self.running.pop(peer, None) or _Test(peer, now)
            report = self.finished[peer] = test.finish(total, now)
            while len(self.finished) > KEEP_REPORTS:
                self.finished.popitem(last=False)
            try:
                self._send_reports.send_nowait(report)
            except trio.WouldBlock:
                pass
        try:
            await self.sock.sendto(HEADER.pack(seq, 0, 0) + json.dumps(asdict(report)).encode(), peer)
        except OSError:
            pass  # the sender sends its closing datagram again


async def start_server(node, port=DEFAULT_PORT, *, address="0.0.0.0", rcvbuf=SERVER_RCVBUF):
    """Bind a receiver in node and run it as a task of the node; close server.sock to stop it."""
    with closed_on_error(node.socket(SOCK_DGRAM)) as sock:
        sock.setsockopt("SO_RCVBUF", rcvbuf)
        await sock.bind((address, port))
    server = PerfServer(sock)
    node.nursery.start_soon(server.serve)
    return server


# -- the sender (iperf -c) ----------------------------------------------------------

def check_parameters(length, duration, bits_per_second):
    if isinstance(length, bool) or not isinstance(length, int) or length < HEADER.size:
        raise OSError(errno.EINVAL, f"datagram length {length!r} is below {HEADER.size} bytes (the test header)")
    if length > MAX_DATAGRAM:
        raise OSError(errno.EMSGSIZE, f"datagram length {length} is above {MAX_DATAGRAM} bytes (what UDP carries)")
    if not isinstance(duration, (int, float)) or not 0 < duration < math.inf:
        raise OSError(errno.EINVAL, f"duration {duration!r} is not a positive number of seconds")
    if not isinstance(bits_per_second, (int, float)) or not 0 <= bits_per_second < math.inf:
        raise OSError(errno.EINVAL, f"rate {bits_per_second!r} is not a number of bits per second")


async def run_client(node, host, port=DEFAULT_PORT, *, length=DEFAULT_LENGTH, duration=DEFAULT_DURATION,
                     bits_per_second=DEFAULT_RATE, clock=time.time):
    """Send length-byte datagrams from node to host:port for duration seconds at the rate; return the report.

    Errors from the socket end the test as they would end iperf: ECONNREFUSED
    when nothing listens there, EMSGSIZE when length does not fit the link.
    """
    check_parameters(length, duration, bits_per_second)
    gap = length * 8 / bits_per_second if bits_per_second else 0.0
    padding = bytes(length - HEADER.size)
    with node.socket(SOCK_DGRAM) as sock:
        await sock.connect((host, port))
        await _closing(sock, 0)  # a probe: resolves the link and finds a closed port before the clock starts
        start = trio.current_time()
        end = start + duration
        sent = 0
        now = start
        while now < end:
            due = start + sent * gap  # when the next datagram is due at the target rate
            if now < due:
                await trio.sleep_until(min(due, end))
            else:
                count = BURST if not gap else min(BURST, 1 + int((now - due) / gap))
                sec, usec = divmod(int(clock() * 1e6), 1_000_000)
                sent += await sock.sendmmsg([HEADER.pack(seq, sec, usec) + padding
                                             for seq in range(sent, sent + count)])
            now = trio.current_time()
        elapsed = now - start
        server = await _closing(sock, sent)
        return ClientReport(sock.getsockname(), sock.getpeername(), length, sent, sent * length, elapsed, server)


async def _closing(sock, sent):
    """Send the closing datagram until the receiver's report comes back (iperf's final handshake)."""
    fin = HEADER.pack(-sent - 1, 0, 0)
    for _ in range(FIN_TRIES):
        await sock.send(fin)
        with trio.move_on_after(FIN_WAIT):
            while True:
                data = await sock.recv()
                if data[:HEADER.size] == fin and len(data) > HEADER.size:
                    try:
                        return ServerReport.from_dict(json.loads(data[HEADER.size:]))
                    except (ValueError, TypeError, KeyError):
                        continue  # not a perf receiver's report
    return None
