"""ICMP: echo, errors and their delivery (BSD's netinet/ip_icmp.c)."""

import errno
import struct

from .checksum import in_cksum
from .ip import IP_HEADER, IP_OFFMASK, IPPROTO_ICMP, IPPROTO_UDP, MAXTTL, ip_output

ICMP_ECHOREPLY = 0
ICMP_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIMXCEED = 11
ICMP_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, seq (or the unused word)
ICMP_ERROR_TYPES = {ICMP_UNREACH, 4, 5, ICMP_TIMXCEED, 12}

# What a socket is told when an ICMP error names one of its datagrams (BSD's inetctlerrmap).
UNREACH_ERRNO = {0: errno.EHOSTUNREACH, 1: errno.EHOSTUNREACH, 2: errno.ENOPROTOOPT,
                 3: errno.ECONNREFUSED, 4: errno.EMSGSIZE}


def icmp_message(icmp_type, code, rest):
    """An ICMP message with its checksum; rest is everything after the checksum field."""
    head = struct.pack("!BBH", icmp_type, code, 0) + rest
    return head[:2] + struct.pack("!H", in_cksum(head)) + head[4:]


def icmp_input(node, ifp, header, packet, marks):
    stats = node.stats.icmp
    stats["input"] += 1
    message = packet[header.hlen:]
    if len(message) < ICMP_HEADER.size:
        stats["too_short"] += 1
        return
    if in_cksum(message) != 0:
        stats["bad_checksum"] += 1
        return
    icmp_type, code = message[0], message[1]
    if icmp_type == ICMP_ECHO:
        stats["echo_received"] += 1
        if header.broadcast and not node.sysctl["net.inet.icmp.bmcastecho"]:
            stats["bmcast_echo_ignored"] += 1
            return
        src = None if header.broadcast else header.dst
        try:
            ip_output(node, IPPROTO_ICMP, src, header.src, icmp_message(ICMP_ECHOREPLY, code, message[4:]), ttl=MAXTTL)
        except OSError:
            return
        stats["echo_reply_sent"] += 1
        stats["output"] += 1
        return
    if icmp_type == ICMP_UNREACH:
        stats["unreach_received"] += 1
        _notify(node, message, UNREACH_ERRNO.get(code, errno.EHOSTUNREACH))
    node.raw_input(header, packet)


def _notify(node, message, error):
    """Tell the transport whose datagram an ICMP error quotes (BSD's udp_ctlinput)."""
    inner = message[8:]
    if len(inner) < IP_HEADER.size + 8 or inner[9] != IPPROTO_UDP:
        return
    hlen = (inner[0] & 0xF) * 4
    if len(inner) < hlen + 8:
        return
    sport, dport = struct.unpack_from("!HH", inner, hlen)
    node.udp_notify(inner[12:16], sport, inner[16:20], dport, error)


class ErrorRate:
    """At most net.inet.icmp.errppslimit errors a second (BSD's ppsratecheck; negative: no limit).

    A flood to a closed port would otherwise draw one error per datagram.
    """

    def __init__(self):
        self.window_start = None
        self.sent_in_window = 0

    def allows(self, limit, now):
        if limit < 0:
            return True
        if self.window_start is None or now - self.window_start >= 1.0:
            self.window_start, self.sent_in_window = now, 0
        if self.sent_in_window >= limit:
            return False
        self.sent_in_window += 1
        return True


def icmp_error(node, packet, header, icmp_type, code):
    """Answer a packet with an ICMP error, never about an error, a broadcast or a later fragment."""
    stats = node.stats.icmp
    frag = struct.unpack_from("!H", packet, 6)[0]
    if header.broadcast or frag & IP_OFFMASK or header.src[0] >= 224 or header.src == b"\0\0\0\0":
        stats["error_not_sent"] += 1
        return
    if header.proto == IPPROTO_ICMP and len(packet) > header.hlen and packet[header.hlen] in ICMP_ERROR_TYPES:
        stats["error_not_sent"] += 1
        return
    if not node.icmp_error_rate.allows(node.sysctl["net.inet.icmp.errppslimit"], node.now()):
        stats["rate_limited"] += 1
        return
    quote = packet[:header.hlen + 8]
    src = header.dst if node.is_local(header.dst) else None
    try:
        ip_output(node, IPPROTO_ICMP, src, header.src, icmp_message(icmp_type, code, b"\0\0\0\0" + quote), ttl=MAXTTL)
    except OSError:
        return
    stats["errors_sent"] += 1
    stats["output"] += 1
