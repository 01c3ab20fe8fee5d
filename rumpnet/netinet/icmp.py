"""ICMP: echo, errors and their delivery (BSD's netinet/ip_icmp.c)."""

import errno
import struct

from .checksum import in_cksum, verifies
from .ip import IP_HEADER, IP_OFFMASK, IPPROTO_ICMP, MAXTTL, IpHeader, ip_output
from .protosw import CtlNotice
from .raw_ip import rip_deliver

ICMP_ECHOREPLY = 0
ICMP_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIMXCEED = 11
ICMP_PARAMPROB = 12
ICMP_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, id, seq (or the unused word)
_TYPE_CODE_SUM = struct.Struct("!BBH")  # the header's first four bytes
ICMP_ERROR_TYPES = {ICMP_UNREACH, 4, 5, ICMP_TIMXCEED, ICMP_PARAMPROB}

# What a socket is told when an ICMP error names one of its datagrams (BSD's inetctlerrmap):
# by unreachable code; a parameter problem is ENOPROTOOPT, a time exceeded nothing.
UNREACH_ERRNO = {0: errno.EHOSTUNREACH, 1: errno.EHOSTUNREACH, 2: errno.ENOPROTOOPT,
                 3: errno.ECONNREFUSED, 4: errno.EMSGSIZE}
CTLINPUT_TYPES = (ICMP_UNREACH, ICMP_TIMXCEED, ICMP_PARAMPROB)


def icmp_message(icmp_type, code, rest):
    """An ICMP message with its checksum; rest is everything after the checksum field.

    The type and code word is added to the sum as a number, so the message
    is packed once, with its sum in place (rest starts on a word boundary).
    """
    return _TYPE_CODE_SUM.pack(icmp_type, code, in_cksum(rest, (icmp_type << 8) + code)) + rest


def icmp_input(node, ifp, header, packet, marks):
    stats = node.stats.icmp
    stats["input"] += 1
    message = packet[header.hlen:]
    if len(message) < ICMP_HEADER.size:
        stats["too_short"] += 1
        return
    if not verifies(message):
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
    if icmp_type in CTLINPUT_TYPES:
        _ctlinput(node, icmp_type, code, message[8:])
    rip_deliver(node, header, packet)


def _ctlinput(node, icmp_type, code, inner):
    """Tell the protocol whose packet an ICMP error quotes, through the switch (BSD's pr_ctlinput).

    The quote must hold an IPv4 header and the 8 bytes after it (RFC 792);
    a shorter one is counted and given to nobody but the raw sockets.
    """
    hlen = (inner[0] & 0xF) * 4 if inner else 0
    if len(inner) < IP_HEADER.size or inner[0] >> 4 != 4 or hlen < IP_HEADER.size or len(inner) < hlen + 8:
        node.stats.icmp["bad_quote"] += 1
        return
    entry = node.protosw.get(inner[9])
    if entry is None or entry.ctlinput is None:
        return
    quoted = IpHeader(inner[12:16], inner[16:20], inner[9], inner[8], hlen, False)
    entry.ctlinput(node, CtlNotice(icmp_type, code, _ctl_errno(icmp_type, code), quoted, bytes(inner)))


def _ctl_errno(icmp_type, code):
    if icmp_type == ICMP_UNREACH:
        return UNREACH_ERRNO.get(code, errno.EHOSTUNREACH)
    return errno.ENOPROTOOPT if icmp_type == ICMP_PARAMPROB else 0


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
    src = header.dst if header.dst in node.inaddrs.local else None
    try:
        ip_output(node, IPPROTO_ICMP, src, header.src, icmp_message(icmp_type, code, b"\0\0\0\0" + quote), ttl=MAXTTL)
    except OSError:
        return
    stats["errors_sent"] += 1
    stats["output"] += 1
