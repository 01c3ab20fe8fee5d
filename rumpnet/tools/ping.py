"""ping: ICMP echo over a raw socket, with NetBSD ping(8)'s output and statistics.

The same code serves the Python API (a local socket), a client program of
its own (a raw socket in a remote node, through the control socket, as
rump.ping): both offer async sendto/recvfrom; and the `rumpnet ping` command,
for which the node itself runs the pinging (PingRun) and the command collects
the lines, so that no control-socket round trip lies on the timed path.
"""

from dataclasses import dataclass, field
import errno
import ipaddress
import math
import os
import struct

import trio

from ..netinet.icmp import ICMP_ECHO, ICMP_ECHOREPLY, ICMP_HEADER, ICMP_TIMXCEED, ICMP_UNREACH, icmp_message
from ..netinet.ip import IP_HEADER, IPPROTO_ICMP, MAXTTL
from .noderun import NodeRun

MAXWAIT = 10.0
_STAMP = struct.Struct("!Q")
_ID_SEQ = struct.Struct("!HH")  # an echo's identifier and sequence number
_FILL = bytes(range(256)) * 257  # byte n is n & 0xff, for any data size an IPv4 packet can carry
MIN_INTERVAL = 0.001  # seconds; a shorter wait between requests would send flat out
MAX_SECONDS = 2147483  # the longest wait a BSD tool takes: INT_MAX milliseconds, about 24 days
MAX_SIZE = 1472  # data bytes that fit a 1500-byte MTU after the IP and ICMP headers
UNREACH_TEXT = {0: "Destination Net Unreachable", 1: "Destination Host Unreachable",
                2: "Destination Protocol Unreachable", 3: "Destination Port Unreachable",
                4: "Frag needed and DF set", 5: "Source Route Failed"}


@dataclass
class PingStats:
    host: str
    transmitted: int = 0
    received: int = 0
    repeats: int = 0  # duplicate replies: several answers to one request, as to a broadcast
    rtts: list = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)

    def summary(self):
        """NetBSD ping's closing lines."""
        loss = 0.0 if not self.transmitted else 100.0 * (self.transmitted - self.received) / self.transmitted
        dups = f"+{self.repeats} duplicates, " if self.repeats else ""
        lines = [f"----{self.host} PING Statistics----",
                 f"{self.transmitted} packets transmitted, {self.received} packets received, {dups}{loss:.1f}% packet loss"]
        if self.rtts:
            ms = [r * 1000 for r in self.rtts]
            avg = sum(ms) / len(ms)
            stddev = math.sqrt(max(0.0, sum(m * m for m in ms) / len(ms) - avg * avg))
            lines.append(f"round-trip min/avg/max/stddev = {min(ms):.3f}/{avg:.3f}/{max(ms):.3f}/{stddev:.3f} ms")
        return lines


def echo_request(ident, seq, size, sent):
    """An echo request whose data starts with the time it was sent (clock seconds), in nanoseconds.

    The rest of the data is ping(8)'s fill: data byte i is (8 + i) & 0xff,
    sliced from _FILL rather than made byte by byte (the request is built
    inside the timed interval).
    """
    stamp = _STAMP.pack(round(sent * 1e9) & 0xFFFF_FFFF_FFFF_FFFF) if size >= _STAMP.size else b""
    return icmp_message(ICMP_ECHO, 0, _ID_SEQ.pack(ident, seq) + stamp + _FILL[8 + len(stamp):8 + size])


def parse_reply(packet, ident):
    """(kind, seq, ttl, icmp length, sent_ns) for a reply to us, ("error", ...) for an error quoting us, or None."""
    if len(packet) < 20:
        return None
    hlen = (packet[0] & 0xF) * 4
    ttl = packet[8]
    message = packet[hlen:]
    if len(message) < 8:
        return None
    icmp_type, code, _, rid, seq = ICMP_HEADER.unpack_from(message)
    if icmp_type == ICMP_ECHOREPLY and rid == ident:
        sent = _STAMP.unpack_from(message, 8)[0] if len(message) >= 8 + _STAMP.size else None
        return "reply", seq, ttl, len(message), sent
    if icmp_type in (ICMP_UNREACH, ICMP_TIMXCEED) and len(message) >= 8 + IP_HEADER.size + 8:
        inner = message[8:]
        ihl = (inner[0] & 0xF) * 4
        if inner[9] == IPPROTO_ICMP and len(inner) >= ihl + 8:
            itype, _, _, iid, iseq = ICMP_HEADER.unpack_from(inner, ihl)
            if itype == ICMP_ECHO and iid == ident:
                text = UNREACH_TEXT.get(code, f"Destination Unreachable, code {code}") if icmp_type == ICMP_UNREACH \
                    else "Time To Live exceeded"
                return "error", iseq, ttl, len(message), text
    return None


async def ping(sock, host, *, count=0, interval=1.0, size=56, deadline=None, flood=False, quiet=False,
               summary_only=False, out=print, clock=trio.current_time, stats=None, ident=None):
    """Send echo requests to host until count or deadline; print as NetBSD ping does; return PingStats.

    With flood, a request goes out as soon as the previous reply is in, or
    after interval (at most 10 ms), whichever comes first, as ping -f does.
    Cancelling stats.scope (an interrupt) ends the pinging early; the
    statistics are printed all the same. quiet prints nothing but send errors; summary_only
    (ping -q) prints the first line and the statistics, not each reply.
    Every time, the timestamps in the requests included, comes from clock
    (seconds), so that under trio's MockClock a test pings without waiting.
    ident tells this ping's replies from others' (by default this process id's low 16 bits).
    """
    ident = os.getpid() & 0xFFFF if ident is None else ident
    stats = stats or PingStats(host)
    if not quiet:
        out(f"PING {host} ({host}): {size} data bytes")
    with stats.scope:
        await _exchange(sock, host, ident, stats, count, interval, size, deadline, flood,
                        not (quiet or summary_only), out, clock)
    if not quiet:
        out("")
        for line in stats.summary():
            out(line)
    return stats


async def _exchange(sock, host, ident, stats, count, interval, size, deadline, flood, show_replies, out, clock):
    start = clock()
    end = start + deadline if deadline else math.inf
    next_send = start
    finish_at = None
    seen = set()
    while True:
        now = clock()
        if now >= end:
            break
        if count and stats.transmitted >= count:
            if stats.received >= stats.transmitted:
                break
            if finish_at is None:
                tmax = max(stats.rtts, default=0)
                finish_at = now + (max(1.0, 2 * tmax) if stats.received else MAXWAIT)
            if now >= finish_at:
                break
        elif now >= next_send:
            seq = stats.transmitted & 0xFFFF
            stats.transmitted += 1
            next_send = max(next_send + interval, now)  # late: no burst to catch up
            try:
                await sock.sendto(echo_request(ident, seq, size, now), (host, 0))
            except OSError as e:
                out(f"ping: sendto: {e.strerror}")
            if flood and show_replies:
                out(".", end="")
        wake = min(end, finish_at if finish_at is not None else next_send)
        try:
            packet, (source, _) = await sock.recvfrom(65535, timeout=max(0.0, wake - clock()))
        except OSError as e:
            if e.errno != errno.EAGAIN:
                out(f"ping: recvfrom: {e.strerror}")
            continue
        got = parse_reply(packet, ident)
        if got is None:
            continue
        kind, seq, ttl, length, extra = got
        if kind == "error":
            if show_replies:
                out(f"{length} bytes from {source}: {extra}")
            continue
        rtt = ((round(clock() * 1e9) - extra) & 0xFFFF_FFFF_FFFF_FFFF) / 1e9 if extra is not None else None
        duplicate = seq in seen
        seen.add(seq)
        if duplicate:
            stats.repeats += 1
        else:
            stats.received += 1
        if rtt is not None:  # with fewer than 8 data bytes there is no timestamp (as in ping -s 0)
            stats.rtts.append(rtt)  # duplicates too, as NetBSD's round-trip figures count them
        if flood:
            next_send = min(next_send, clock())  # a reply lets the next request go at once
            if show_replies:
                out("\b \b", end="")
        elif show_replies:
            dup = " (DUP!)" if duplicate else ""
            timing = f" time={rtt * 1000:.3f} ms" if extra is not None else ""
            out(f"{length} bytes from {source}: icmp_seq={seq} ttl={ttl}{timing}{dup}")


def check_options(host, count, interval, size, ttl, deadline, ident):
    """EINVAL naming the first option out of its range, as a node checks what a client asks of it."""
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise OSError(errno.EINVAL, f"{host!r}: not an IPv4 address") from None
    for name, value, low, high in (("count", count, 0, math.inf), ("interval", interval, MIN_INTERVAL, MAX_SECONDS),
                                   ("size", size, 0, MAX_SIZE), ("ttl", ttl, 1, MAXTTL),
                                   ("deadline", MAX_SECONDS if deadline is None else deadline, MIN_INTERVAL,
                                    MAX_SECONDS), ("ident", ident, 0, 0xFFFF)):
        if not low <= value <= high:
            raise OSError(errno.EINVAL, f"ping: {name} {value} is out of range ({low} to {high})")


class PingRun(NodeRun):
    """A ping that runs in a node for a client that collects its lines (the `rumpnet ping` command).

    The times are the node's own, from request to reply on its own socket; the
    client's round trip to fetch the lines is off the timed path. Each piece of
    output is a line and its ending.
    """

    def __init__(self, sock, host, **options):
        super().__init__()
        self.sock = sock
        self.host = host
        self.options = options
        self.stats = PingStats(host)

    def _out(self, text, end="\n"):
        self.put((text, end))

    async def main(self):
        """Ping to the end; the socket is closed either way."""
        with self.sock:
            await ping(self.sock, self.host, out=self._out, stats=self.stats, **self.options)

    def interrupt(self):
        """As Ctrl-C: the pinging stops and the statistics are printed."""
        self.stats.scope.cancel()
