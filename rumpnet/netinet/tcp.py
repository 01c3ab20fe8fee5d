"""The TCP header and its options (RFC 9293 section 3.1; BSD's netinet/tcp.h).

Only bytes in and out: `tcp_parse` checks a received segment once (length,
data offset, checksum, options, flag combinations no sender may use) and
hands inward a plain `Segment`; `tcp_build` writes one with its checksum, or
with the field zero for an interface that sums TCP itself (`tcp_csum_flags`).
The state machine never slices a header itself.
"""

import struct
from typing import NamedTuple

from ..net.offload import CSUM_L4_BAD, CSUM_L4_CHECKED, IFCAP_CSUM_TCPv4_Tx, M_CSUM_TCPv4
from .checksum import in_cksum, pseudo_header_sum, verifies

IPPROTO_TCP = 6
TCP_HEADER = struct.Struct("!HHIIBBHHH")  # ports, seq, ack, data offset, flags, window, checksum, urgent
TH_FIN, TH_SYN, TH_RST, TH_PUSH, TH_ACK, TH_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MAXSEG, TCPOPT_WINDOW = 0, 1, 2, 3
TCP_MAX_WINSHIFT = 14  # RFC 7323: a larger shift is taken as 14


class Segment(NamedTuple):
    """A received segment as the state machine sees it: values, no offsets."""

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int  # as sent, not yet scaled
    mss: int | None  # the MSS option, if any
    wscale: int | None  # the window scale option, if any
    data: bytes


class BadSegment(Exception):
    """Why a segment is dropped: its args[0] is the name of the counter it goes to."""


def tcp_parse(src, dst, segment, marks=0):
    """Check a segment (the bytes after the IP header) and return a Segment; BadSegment names the drop."""
    if len(segment) < TCP_HEADER.size:
        raise BadSegment("too_short")
    sport, dport, seq, ack, off, flags, win, _, _ = TCP_HEADER.unpack_from(segment)
    hlen = (off >> 4) * 4
    if hlen < TCP_HEADER.size or hlen > len(segment):
        raise BadSegment("bad_offset")
    if marks & CSUM_L4_CHECKED:
        if marks & CSUM_L4_BAD:
            raise BadSegment("bad_checksum")
    elif not verifies(segment, pseudo_header_sum(src, dst, IPPROTO_TCP, len(segment))):
        raise BadSegment("bad_checksum")
    flags &= 0x3F
    if flags & TH_SYN and flags & (TH_FIN | TH_RST) or not flags & (TH_SYN | TH_RST | TH_ACK):
        raise BadSegment("bad_flags")  # SYN+FIN, SYN+RST, or neither SYN, RST nor ACK
    mss, wscale = _options(segment[TCP_HEADER.size:hlen]) if hlen > TCP_HEADER.size else (None, None)
    return Segment(sport, dport, seq, ack, flags, win, mss, wscale, bytes(segment[hlen:]))


def _options(options):
    """(MSS, window scale) from the options; BadSegment("bad_options") when one overruns or lies about its length."""
    mss = wscale = None
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2 or i + options[i + 1] > len(options):
            raise BadSegment("bad_options")
        length = options[i + 1]
        if kind == TCPOPT_MAXSEG:
            if length != 4:
                raise BadSegment("bad_options")
            mss = struct.unpack_from("!H", options, i + 2)[0]
        elif kind == TCPOPT_WINDOW:
            if length != 3:
                raise BadSegment("bad_options")
            wscale = min(options[i + 2], TCP_MAX_WINSHIFT)
        i += length  # other options (SACK, timestamps) are skipped: we never offer them
    return mss, wscale


def syn_options(mss, wscale):
    """The options of a SYN or SYN-ACK: MSS, and the window scale when there is one to offer."""
    options = struct.pack("!BBH", TCPOPT_MAXSEG, 4, mss)
    if wscale is not None:
        options += struct.pack("!BBBB", TCPOPT_NOP, TCPOPT_WINDOW, 3, wscale)
    return options


def tcp_build(src, dst, sport, dport, seq, ack, flags, win, options=b"", data=b"", checksum=True):
    """A segment ready for ip_output (options: a multiple of 4 bytes), with its checksum unless
    checksum is False: then the field is left zero, for the interface to fill in."""
    off = (TCP_HEADER.size + len(options)) // 4 << 4
    header = TCP_HEADER.pack(sport, dport, seq, ack, off, flags, win, 0, 0) + options
    if not checksum:
        return header + data
    pseudo = pseudo_header_sum(src, dst, IPPROTO_TCP, len(header) + len(data))
    return header[:16] + struct.pack("!H", in_cksum(header + data, pseudo)) + header[18:] + data


def tcp_csum_flags(ifp):
    """M_CSUM_TCPv4 when ifp has TCP's TX offload on (it sums what we leave zero: offload.finish_tx), else 0."""
    return M_CSUM_TCPv4 if ifp.capenable & IFCAP_CSUM_TCPv4_Tx else 0
