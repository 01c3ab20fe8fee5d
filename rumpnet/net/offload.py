"""Checksum offload emulation (shmif(4)): the interface, not the stack, does the sums.

`capenable` holds NetBSD's IFCAP_* bits (net/if.h). With a TX bit set the stack
leaves that checksum zero and says so with the packet (M_CSUM_* flags, as BSD's
mbuf csum_flags), and the interface fills it in before the frame reaches the
wire; a packet the stack only forwards carries no flags and is left as it came.
With an RX bit set the interface verifies the sum and marks the packet, and the
stack trusts the mark. Either way the frames on the wire are the same.
"""

import struct

from ..kern import numbers
from ..netinet.checksum import in_cksum, pseudo_header_sum, verifies

IFCAP_TSOv4 = 0x00080
IFCAP_CSUM_IPv4_Rx = 0x00100
IFCAP_CSUM_IPv4_Tx = 0x00200
IFCAP_CSUM_TCPv4_Rx = 0x00400
IFCAP_CSUM_TCPv4_Tx = 0x00800
IFCAP_CSUM_UDPv4_Rx = 0x01000
IFCAP_CSUM_UDPv4_Tx = 0x02000
IFCAP_CSUM_TCPv6_Rx = 0x04000
IFCAP_CSUM_TCPv6_Tx = 0x08000
IFCAP_CSUM_UDPv6_Rx = 0x10000
IFCAP_CSUM_UDPv6_Tx = 0x20000
IFCAP_TSOv6 = 0x40000

CAP_NAMES = [
    (IFCAP_TSOv4, "TSO4"), (IFCAP_CSUM_IPv4_Rx, "IP4CSUM_Rx"), (IFCAP_CSUM_IPv4_Tx, "IP4CSUM_Tx"),
    (IFCAP_CSUM_TCPv4_Rx, "TCP4CSUM_Rx"), (IFCAP_CSUM_TCPv4_Tx, "TCP4CSUM_Tx"),
    (IFCAP_CSUM_UDPv4_Rx, "UDP4CSUM_Rx"), (IFCAP_CSUM_UDPv4_Tx, "UDP4CSUM_Tx"),
    (IFCAP_CSUM_TCPv6_Rx, "TCP6CSUM_Rx"), (IFCAP_CSUM_TCPv6_Tx, "TCP6CSUM_Tx"),
    (IFCAP_CSUM_UDPv6_Rx, "UDP6CSUM_Rx"), (IFCAP_CSUM_UDPv6_Tx, "UDP6CSUM_Tx"), (IFCAP_TSOv6, "TSO6"),
]
SHMIF_CAPABILITIES = 0x7FF80
RX_BITS = 0x15500  # every RX bit: with none, the interface checks nothing

# ifconfig keywords, as NetBSD's ifconfig(8) spells them, and the bits each sets.
KEYWORDS = {
    "ip4csum": IFCAP_CSUM_IPv4_Rx | IFCAP_CSUM_IPv4_Tx,
    "ip4csum-rx": IFCAP_CSUM_IPv4_Rx, "ip4csum-tx": IFCAP_CSUM_IPv4_Tx,
    "tcp4csum": IFCAP_CSUM_TCPv4_Rx | IFCAP_CSUM_TCPv4_Tx,
    "tcp4csum-rx": IFCAP_CSUM_TCPv4_Rx, "tcp4csum-tx": IFCAP_CSUM_TCPv4_Tx,
    "udp4csum": IFCAP_CSUM_UDPv4_Rx | IFCAP_CSUM_UDPv4_Tx,
    "udp4csum-rx": IFCAP_CSUM_UDPv4_Rx, "udp4csum-tx": IFCAP_CSUM_UDPv4_Tx,
    "tso4": IFCAP_TSOv4,
}

# What the stack asks of the interface for one outgoing packet (BSD's
# m_pkthdr.csum_flags, sys/mbuf.h): the sums it left zero, or a TCP segment
# to cut into frames, whose MSS rides in the bits above TSO_MSS_SHIFT
# (BSD keeps it beside the flags, in m_pkthdr.segsz).
M_CSUM_TSOv4 = 0x10
M_CSUM_TCPv4 = 0x01
M_CSUM_UDPv4 = 0x02
M_CSUM_IPv4 = 0x40
TSO_MSS_SHIFT = 16
TSO_MAX = 65535  # the largest IP packet the stack hands down for cutting

# Marks the interface puts on a received packet (BSD's M_CSUM_* flags).
CSUM_IP_CHECKED = 0x1
CSUM_IP_BAD = 0x2
CSUM_L4_CHECKED = 0x4
CSUM_L4_BAD = 0x8

_IPPROTO_UDP = 17
_IPPROTO_TCP = 6
_UDP_SUM = 6  # where the checksum lies in a UDP header
_TCP_SUM = 16  # and in a TCP header
_TH_FIN, _TH_PUSH = 0x01, 0x08
# The flag that leaves a transport's sum to the interface, and the bit that has the interface check it.
_TX_FLAG = {_IPPROTO_UDP: M_CSUM_UDPv4, _IPPROTO_TCP: M_CSUM_TCPv4}
_RX_BIT = {_IPPROTO_UDP: IFCAP_CSUM_UDPv4_Rx, _IPPROTO_TCP: IFCAP_CSUM_TCPv4_Rx}


def cap_names(bits):
    return ",".join(name for bit, name in CAP_NAMES if bits & bit)


def parse_capenable(text):
    """RUMP_SHMIF_CAPENABLE's value (0x7ff80 style) to bits; ValueError names the problem."""
    try:
        bits = numbers.integer(text, 0, 0xFFFFFFFF, hexadecimal=True)
    except ValueError as e:
        raise ValueError(f"RUMP_SHMIF_CAPENABLE: {e} (try 0x7ff80)") from None
    if bits & ~SHMIF_CAPABILITIES:
        raise ValueError(f"RUMP_SHMIF_CAPENABLE: 0x{bits:x} has bits shmif does not offer (0x{SHMIF_CAPABILITIES:x})")
    return bits


def _ipv4_parts(frame):
    """(header length, protocol) of a sane IPv4 frame, else None: offload never touches the rest."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return None
    hlen = (frame[14] & 0xF) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    if hlen < 20 or total < hlen or 14 + total > len(frame):
        return None
    if struct.unpack_from("!H", frame, 20)[0] & 0x3FFF:  # a fragment: no transport header to sum
        return hlen, None
    return hlen, frame[23]


def _transport(frame, hlen, proto):
    """(pseudo-header sum, the UDP datagram or TCP segment, where its sum lies), or None.

    UDP's checksum covers the UDP length, which may be less than what IP
    carries; TCP's covers all IP carries. A length that does not fit, or a
    segment too short for its header, is the stack's to count, not ours to sum.
    The datagram or segment is a slice of frame: a copy, of the same type.
    """
    start = 14 + hlen
    end = 14 + struct.unpack_from("!H", frame, 16)[0]
    if proto == _IPPROTO_UDP:
        if end < start + 8:
            return None
        length, at = struct.unpack_from("!H", frame, start + 4)[0], _UDP_SUM
        if length < 8 or start + length > end:
            return None
    else:
        length, at = end - start, _TCP_SUM
        if length < 20:
            return None
    return pseudo_header_sum(frame[26:30], frame[30:34], proto, length), frame[start:start + length], at


def finish_tx(frame, csum_flags):
    """Fill in the checksums the stack left to this interface (csum_flags: M_CSUM_* bits)."""
    parts = _ipv4_parts(frame)
    if parts is None:
        return frame
    hlen, proto = parts
    out = bytearray(frame)
    if csum_flags & M_CSUM_IPv4:
        out[24:26] = b"\0\0"
        struct.pack_into("!H", out, 24, in_cksum(out[14:14 + hlen]))
    if csum_flags & _TX_FLAG.get(proto, 0):
        l4 = _transport(out, hlen, proto)
        if l4 is not None:
            pseudo, body, at = l4
            body[at:at + 2] = b"\0\0"  # a copy of out's: the sum is taken with its own field zero
            checksum = in_cksum(body, pseudo)
            if proto == _IPPROTO_UDP:
                checksum = checksum or 0xFFFF  # UDP's zero means "no checksum" (RFC 768)
            struct.pack_into("!H", out, 14 + hlen + at, checksum)
    return bytes(out)


def tso_segments(frame, csum_flags):
    """Cut a large TCP segment into frames of MSS bytes of data (TSO, emulated as shmif(4) does).

    Each frame is what the stack would have sent without TSO: the sequence
    number advanced by the data before it, consecutive IP identifiers from the
    packet's, PSH and FIN only on the last, every checksum filled in. The stack
    hands down only segments it built; anything else is passed on whole.
    """
    mss = csum_flags >> TSO_MSS_SHIFT
    parts = _ipv4_parts(frame)
    if parts is None or parts[1] != _IPPROTO_TCP or mss <= 0:
        return [frame]
    hlen, _ = parts
    start = 14 + hlen
    total = struct.unpack_from("!H", frame, 16)[0]
    if 14 + total < start + 20 or start + (frame[start + 12] >> 4) * 4 > 14 + total:
        return [frame]
    thlen = (frame[start + 12] >> 4) * 4
    headers, data = frame[:start + thlen], frame[start + thlen:14 + total]
    ip_id = struct.unpack_from("!H", frame, 18)[0]
    seq = struct.unpack_from("!I", frame, start + 4)[0]
    flags = frame[start + 13]
    out = []
    for n, offset in enumerate(range(0, max(len(data), 1), mss)):
        chunk = data[offset:offset + mss]
        last = offset + mss >= len(data)
        piece = bytearray(headers) + chunk
        struct.pack_into("!HH", piece, 16, hlen + thlen + len(chunk), (ip_id + n) & 0xFFFF)
        piece[24:26] = b"\0\0"
        struct.pack_into("!H", piece, 24, in_cksum(piece[14:start]))
        struct.pack_into("!I", piece, start + 4, (seq + offset) & 0xFFFFFFFF)
        piece[start + 13] = flags if last else flags & ~(_TH_FIN | _TH_PUSH)
        piece[start + _TCP_SUM:start + _TCP_SUM + 2] = b"\0\0"
        pseudo = pseudo_header_sum(frame[26:30], frame[30:34], _IPPROTO_TCP, thlen + len(chunk))
        struct.pack_into("!H", piece, start + _TCP_SUM, in_cksum(piece[start:], pseudo))
        out.append(bytes(piece))
    return out


def check_rx(frame, capenable):
    """Verify the checksums this interface offloads; return the CSUM_* marks."""
    if not capenable & RX_BITS:
        return 0
    parts = _ipv4_parts(frame)
    if parts is None:
        return 0
    hlen, proto = parts
    marks = 0
    if capenable & IFCAP_CSUM_IPv4_Rx:
        marks |= CSUM_IP_CHECKED
        if not verifies(frame[14:14 + hlen]):
            marks |= CSUM_IP_BAD
    if capenable & _RX_BIT.get(proto, 0):
        l4 = _transport(frame, hlen, proto)
        if l4 is not None:
            pseudo, body, at = l4
            if proto == _IPPROTO_UDP and body[at:at + 2] == b"\0\0":
                return marks  # UDP sent without a checksum: nothing to check
            marks |= CSUM_L4_CHECKED
            if not verifies(body, pseudo):
                marks |= CSUM_L4_BAD
    return marks
