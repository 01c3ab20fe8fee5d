"""TCP bulk throughput between two nodes, measured as iperf's TCP mode measures it.

Both ends run inside the nodes, on stream sockets of their own. The sender
writes as fast as its send buffer takes bytes for a duration, noting at each
interval how many went and how many segments its node retransmitted (the
`retransmitted` counter of `netstat -s -p tcp`); then it shuts down its
sending side and waits for the receiver, which, at end of stream, answers with
what it received (as JSON) and closes. So the summary ends when the last byte
has arrived, not when it was queued.
"""

from dataclasses import asdict, dataclass, field
import errno
import json
import math

import trio

from ..kern.sockets import SB_MAX, SHUT_WR, SOCK_STREAM, closed_on_error
from .noderun import NodeRun
from .perf import DEFAULT_DURATION, DEFAULT_PORT, KEEP_REPORTS, rate

DEFAULT_LENGTH = 128 * 1024  # bytes a write, iperf's TCP default
DEFAULT_INTERVAL = 1.0
MAX_REPORT = 4096  # bytes of a receiver's report the sender reads at most
MAX_CONNECTIONS = 8  # tests a receiver serves at once; more wait in the listen queue
REPORT_WAIT = 10.0  # seconds the sender waits for the receiver's report after its last byte


@dataclass
class TcpServerReport:
    """What the receiver saw of one connection."""

    peer: tuple
    bytes: int = 0
    duration: float = 0.0  # seconds from accept to end of stream

    @classmethod
    def from_dict(cls, values):
        return cls(**{**values, "peer": tuple(values["peer"])})


@dataclass
class Interval:
    """One interval of the sender's test."""

    start: float  # seconds since the test began
    end: float
    bytes: int
    retransmits: int


@dataclass
class TcpClientReport:
    """What the sender did; the receiver's report is None when it never came."""

    local: tuple
    remote: tuple
    bytes: int
    duration: float  # until the receiver's report came (or the wait for it ended)
    retransmits: int
    intervals: list = field(default_factory=list)
    server: TcpServerReport | None = None

    @property
    def bits_per_second(self):
        return rate(self.bytes * 8, self.duration)

    @classmethod
    def from_dict(cls, values):
        server = values["server"]
        return cls(**{**values, "local": tuple(values["local"]), "remote": tuple(values["remote"]),
                      "intervals": [Interval(**i) for i in values["intervals"]],
                      "server": TcpServerReport.from_dict(server) if server else None})


# -- the receiver (iperf -s) ------------------------------------------------------

class TcpPerfServer:
    """A listening socket whose connections are counted and answered; close sock to stop it.

    Finished reports go to `reports`, a trio receive channel (the newest are
    dropped when nobody reads it).
    """

    def __init__(self, sock):
        self.sock = sock
        self.limit = trio.Semaphore(MAX_CONNECTIONS)
        self._send_reports, self.reports = trio.open_memory_channel(KEEP_REPORTS)

    async def serve(self):
        async with self._send_reports, trio.open_nursery() as nursery:
            while True:
                await self.limit.acquire()
                try:
                    conn, peer = await self.sock.accept()
                except OSError:
                    self.limit.release()
                    if self.sock.closed:
                        nursery.cancel_scope.cancel()  # the receiver stops: so do its tests
                        return
                    continue
                nursery.start_soon(self._count, conn, peer)

    async def _count(self, conn, peer):
        """Read to end of stream, then answer with the report."""
        report = TcpServerReport(peer)
        started = trio.current_time()
        try:
            with conn:
                while data := await conn.recv(65536):
                    report.bytes += len(data)
                report.duration = trio.current_time() - started
                await conn.send(json.dumps(asdict(report)).encode())
        except OSError:
            return  # reset or timed out: no report to give
        finally:
            self.limit.release()
        try:
            self._send_reports.send_nowait(report)
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass


async def start_server(node, port=DEFAULT_PORT, *, address="0.0.0.0", rcvbuf=None):
    """Listen in node and serve as a task of the node (rcvbuf: the connections' SO_RCVBUF)."""
    with closed_on_error(node.socket(SOCK_STREAM)) as sock:
        if rcvbuf is not None:
            sock.setsockopt("SO_RCVBUF", rcvbuf)
        sock.setsockopt("SO_REUSEADDR", 1)
        await sock.bind((address, port))
        await sock.listen(MAX_CONNECTIONS)
    server = TcpPerfServer(sock)
    node.nursery.start_soon(server.serve)
    return server


# -- the sender (iperf -c) ----------------------------------------------------------

def check_parameters(length, duration, interval):
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= SB_MAX:
        raise OSError(errno.EINVAL, f"write length {length!r} is not a number of bytes from 1 to {SB_MAX} "
                                    f"(a write never takes more than the send buffer)")
    for name, value in (("duration", duration), ("interval", interval)):
        if not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise OSError(errno.EINVAL, f"{name} {value!r} is not a positive number of seconds")


async def run_client(node, host, port=DEFAULT_PORT, *, length=DEFAULT_LENGTH, duration=DEFAULT_DURATION,
                     interval=DEFAULT_INTERVAL):
    """Send to host:port over TCP for duration seconds; the report, with one Interval per interval."""
    check_parameters(length, duration, interval)
    with await connect(node, host, port) as sock:
        return await send(sock, node.stats.tcp, length=length, duration=duration, interval=interval)


async def connect(node, host, port=DEFAULT_PORT):
    """A stream socket of node connected to host:port (closed when the connection fails)."""
    with closed_on_error(node.socket(SOCK_STREAM)) as sock:
        await sock.connect((host, port))
    return sock


async def send(sock, stats, *, length=DEFAULT_LENGTH, duration=DEFAULT_DURATION, interval=DEFAULT_INTERVAL,
               on_interval=None, stop=None):
    """Send on a connected sock for duration seconds, then wait for the receiver's report; the sender's report.

    stats is the node's TCP counters. Each Interval goes to on_interval as it
    ends, or without it into the report. Cancelling stop (a trio CancelScope)
    ends the sending early, as Ctrl-C ends iperf's: the interval under way is
    closed, and the report covers what was sent.
    """
    stop = stop or trio.CancelScope()
    intervals = []
    on_interval = on_interval or intervals.append
    chunk = bytes(length)
    ends = sock.getsockname(), sock.getpeername()
    start = trio.current_time()
    end = start + duration
    rexmt_start = stats["retransmitted"]
    sent, mark, mark_bytes, mark_rexmt = 0, start, 0, rexmt_start

    def close_interval(now):
        nonlocal mark, mark_bytes, mark_rexmt
        on_interval(Interval(mark - start, now - start, sent - mark_bytes, stats["retransmitted"] - mark_rexmt))
        mark, mark_bytes, mark_rexmt = now, sent, stats["retransmitted"]

    with stop:
        while mark < end:
            with trio.move_on_at(min(end, mark + interval)):  # one cancel scope an interval, not one a write
                while True:
                    await sock.wait_writable()
                    sent += sock.send_nowait(chunk)  # what fits: a count that cancellation never loses
                    await trio.lowlevel.checkpoint()
            close_interval(trio.current_time())
    if stop.cancelled_caught and trio.current_time() > mark:
        close_interval(trio.current_time())
    await sock.shutdown(SHUT_WR)
    server = await _server_report(sock)
    return TcpClientReport(*ends, sent, trio.current_time() - start, stats["retransmitted"] - rexmt_start,
                           intervals, server)


class PerfTcpRun(NodeRun):
    """A TCP sender that runs in a node for a client that collects its intervals as they end (`rumpnet perf -c`).

    Each piece of output is an Interval; the report is set when the test is
    over, and error when it failed instead.
    """

    def __init__(self, sock, stats, **options):
        super().__init__()
        self.sock = sock
        self.stats = stats
        self.options = options
        self.local = sock.getsockname()
        self.stop = trio.CancelScope()
        self.report = None
        self.error = None

    async def main(self):
        """Send to the end; the socket is closed either way."""
        with self.sock:
            try:
                self.report = await send(self.sock, self.stats, on_interval=self.put, stop=self.stop, **self.options)
            except OSError as e:  # reset by the peer: the client is told, the node goes on
                self.error = e

    def interrupt(self):
        """As Ctrl-C: the sending stops, and the report still comes."""
        self.stop.cancel()


async def _server_report(sock):
    """The receiver's report, read to its end of stream; None when it is not one or never comes."""
    answer = bytearray()
    with trio.move_on_after(REPORT_WAIT):
        while len(answer) <= MAX_REPORT and (data := await sock.recv(MAX_REPORT)):
            answer += data
        try:
            return TcpServerReport.from_dict(json.loads(answer))
        except (ValueError, TypeError, KeyError):
            return None
    return None
