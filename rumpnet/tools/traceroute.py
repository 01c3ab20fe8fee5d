"""traceroute: UDP probes with a rising TTL, answers read from a raw ICMP socket (BSD's traceroute.c).

A probe to port BASE+seq leaves with TTL 1, 2, ...; each router where the
TTL runs out answers "time exceeded" quoting the probe, the destination
answers "port unreachable". The quote (the probe's IP header and its first
8 bytes, RFC 792) names the source and destination ports, which is how an
answer is matched to its probe, as BSD's traceroute does.

The same code serves `rumpnet traceroute` (remote sockets, through the
control socket) and the Python API (a node's local sockets).
"""

from dataclasses import dataclass
import errno
import inspect
import struct

import trio

from ..netinet.ip import IP_HEADER

BASE_PORT = 32768 + 666  # 33434, BSD's default
DEFAULT_PROBES = 3
DEFAULT_WAIT = 5.0
ICMP_UNREACH = 3
ICMP_TIMXCEED = 11
ICMP_UNREACH_PORT = 3
ICMP_UNREACH_NEEDFRAG = 4
ICMP_UNREACH_PROTOCOL = 2
IPPROTO_UDP = 17
_OUTDATA = struct.Struct("!BBxxQ")  # seq, ttl, send time in ns: 12 bytes, so probes are 40 bytes long
PACKET_LENGTH = IP_HEADER.size + 8 + _OUTDATA.size

# What BSD's traceroute prints after the time of an unreachable answer, by code.
UNREACH_MARK = {0: "!N", 1: "!H", 2: "!P", 4: "!F", 5: "!S", 6: "!U", 7: "!W", 8: "!I", 9: "!A", 10: "!Z",
                11: "!Q", 12: "!T", 13: "!X", 14: "!V", 15: "!C"}


@dataclass(frozen=True)
class Answer:
    """An ICMP error that quotes a UDP datagram: what matching a probe needs."""
    icmp_type: int
    code: int
    ttl: int  # of the answer itself
    sport: int
    dport: int
    mtu: int  # next-hop MTU of "fragmentation needed" (RFC 1191), else 0


def parse_answer(packet):
    """The Answer in an IP packet from a raw ICMP socket, or None when it is not an error quoting UDP.

    Every length is checked before use: the packet came off the wire.
    """
    if len(packet) < IP_HEADER.size or packet[0] >> 4 != 4:
        return None
    hlen = (packet[0] & 0xF) * 4
    message = packet[hlen:]
    if hlen < IP_HEADER.size or len(message) < 8 + IP_HEADER.size:
        return None
    icmp_type, code, mtu = message[0], message[1], struct.unpack_from("!H", message, 6)[0]
    if icmp_type not in (ICMP_UNREACH, ICMP_TIMXCEED):
        return None
    inner = message[8:]
    ihl = (inner[0] & 0xF) * 4
    if inner[0] >> 4 != 4 or ihl < IP_HEADER.size or len(inner) < ihl + 4 or inner[9] != IPPROTO_UDP:
        return None
    sport, dport = struct.unpack_from("!HH", inner, ihl)
    needfrag = icmp_type == ICMP_UNREACH and code == ICMP_UNREACH_NEEDFRAG
    return Answer(icmp_type, code, packet[8], sport, dport, mtu if needfrag else 0)


def probe_port(base, seq):
    """Destination port of probe seq: base+seq, wrapping within 1..65535."""
    return (base + seq - 1) % 65535 + 1


def mark(answer):
    """What follows a probe's time: "!N" and the like for an unreachable, " !" for a TTL of 1 at the end."""
    if answer.icmp_type != ICMP_UNREACH:
        return ""
    if answer.code == ICMP_UNREACH_PORT:
        return " !" if answer.ttl <= 1 else ""
    if answer.code == ICMP_UNREACH_NEEDFRAG:
        return f" !F-{answer.mtu}"
    return " " + UNREACH_MARK.get(answer.code, f"!<{answer.code}>")


async def _call(result):
    """Local sockets answer at once, remote ones through the control socket: await the latter."""
    return await result if inspect.isawaitable(result) else result


async def traceroute(udp, icmp, host, *, max_ttl=64, nprobes=DEFAULT_PROBES, waittime=DEFAULT_WAIT,
                     port=BASE_PORT, numeric=False, out=print, clock=trio.current_time):
    """Probe host hop by hop, printing each hop's line as BSD's traceroute does; True when host answered.

    udp sends the probes (its TTL set per probe), icmp (a raw ICMP socket)
    receives the answers. A probe unanswered within waittime seconds is a
    "*". The trace stops at max_ttl, when the destination answers (port or
    protocol unreachable), or when all but one probe of a hop are
    unreachable. out(text, end) prints; each probe's result is printed as it
    comes.
    """
    await udp.bind(("0.0.0.0", 0))
    ident = (await _call(udp.getsockname()))[1]
    seq = 0
    for ttl in range(1, max_ttl + 1):
        out(f"{ttl:2d} ", end="")
        await _call(udp.setsockopt("IP_TTL", ttl))
        last = None
        got_there = unreachable = 0
        for _ in range(nprobes):
            seq += 1
            dport = probe_port(port, seq)
            sent = clock()
            await udp.sendto(_OUTDATA.pack(seq & 0xFF, ttl, round(sent * 1e9) & (2**64 - 1)), (host, dport))
            got = await _wait_answer(icmp, ident, dport, sent, waittime, clock)
            if got is None:
                out(" *", end="")
                continue
            source, answer, rtt = got
            if source != last:
                out(f" {source}" if numeric else f" {source} ({source})", end="")
                last = source
            out(f"  {rtt * 1000:.3f} ms{mark(answer)}", end="")
            if answer.icmp_type == ICMP_UNREACH:
                if answer.code in (ICMP_UNREACH_PORT, ICMP_UNREACH_PROTOCOL):
                    got_there += 1
                else:
                    unreachable += 1
        out("")
        if got_there or (unreachable and unreachable >= nprobes - 1):
            return bool(got_there)
    return False


async def _wait_answer(icmp, ident, dport, sent, waittime, clock):
    """(source, Answer, round trip) of the answer to the probe sent to dport, or None after waittime."""
    deadline = sent + waittime
    while (left := deadline - clock()) > 0:
        try:
            packet, (source, _) = await icmp.recvfrom(65535, timeout=left)
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return None
            raise
        answer = parse_answer(packet)
        if answer is None or answer.sport != ident or answer.dport != dport:
            continue
        if answer.icmp_type == ICMP_TIMXCEED and answer.code != 0:
            continue  # fragment reassembly time exceeded, not the TTL running out on the way
        return source, answer, clock() - sent
    return None
