"""The packets ping builds and reads (rumpnet.tools.ping), checked against dpkt's own ICMP and IP code."""

import struct

import dpkt
from hypothesis import example, given, strategies as st

from rumpnet.tools.ping import MAX_SIZE, echo_request, parse_reply

idents = st.integers(0, 0xFFFF)
sizes = st.one_of(st.integers(0, MAX_SIZE), st.integers(MAX_SIZE, 65507))
times = st.floats(0, 1e9, allow_nan=False)


def fill(start, end):
    """ping(8)'s data bytes from start to end: byte i is (8 + i) & 0xff."""
    return bytes((8 + i) & 0xFF for i in range(start, end))


def ip_packet(payload, ttl=64, options=b""):
    """An IPv4 packet around an ICMP message, as the raw socket hands it to ping."""
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 1]), p=dpkt.ip.IP_PROTO_ICMP, ttl=ttl,
                    opts=options, data=payload)
    ip.hl = 5 + len(options) // 4
    return bytes(ip)


@given(idents, idents, sizes, times)
@example(0, 0, 0, 0.0)
@example(0xFFFF, 0xFFFF, 7, 1.5)
@example(1, 2, 8, 2.0)
def test_an_echo_request_is_what_dpkt_builds(ident, seq, size, sent):
    request = echo_request(ident, seq, size, sent)
    stamp = struct.pack("!Q", round(sent * 1e9) & 0xFFFF_FFFF_FFFF_FFFF) if size >= 8 else b""
    expected = dpkt.icmp.ICMP(type=dpkt.icmp.ICMP_ECHO, code=0,
                              data=dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=stamp + fill(len(stamp), size)))
    assert request == bytes(expected)  # dpkt sums the message when it packs it


@given(idents, idents, st.integers(8, MAX_SIZE), times, st.integers(1, 255),
       st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x07\x07\x04" + bytes(5)]))
def test_a_reply_to_our_request_is_read_back(ident, seq, size, sent, ttl, options):
    reply = bytearray(echo_request(ident, seq, size, sent))
    reply[0] = dpkt.icmp.ICMP_ECHOREPLY  # the sum is not checked by ping: the stack did that
    kind, got_seq, got_ttl, length, stamp = parse_reply(ip_packet(bytes(reply), ttl, options), ident)
    assert (kind, got_seq, got_ttl, length) == ("reply", seq, ttl, 8 + size)
    assert stamp == round(sent * 1e9) & 0xFFFF_FFFF_FFFF_FFFF


@given(idents, idents, st.sampled_from([(3, 1, "Destination Host Unreachable"), (3, 3, "Destination Port Unreachable"),
                                        (3, 9, "Destination Unreachable, code 9"), (11, 0, "Time To Live exceeded")]))
def test_an_error_quoting_our_request_names_it(ident, seq, error):
    icmp_type, code, text = error
    quoted = ip_packet(echo_request(ident, seq, 56, 1.0))[:28]  # the header and 8 bytes, as routers quote
    message = struct.pack("!BBHI", icmp_type, code, 0, 0) + quoted
    assert parse_reply(ip_packet(message), ident) == ("error", seq, 64, len(message), text)


@given(idents, idents)
def test_replies_to_other_pings_are_not_ours(ident, other):
    reply = bytearray(echo_request(other, 1, 56, 1.0))
    reply[0] = dpkt.icmp.ICMP_ECHOREPLY
    got = parse_reply(ip_packet(bytes(reply)), ident)
    assert (got is not None) == (ident == other)


@given(st.binary(max_size=200), idents)
@example(b"\x4f" + bytes(19), 0)  # a header length of 60 in a 20-byte packet
@example(b"\x45" + bytes(19) + b"\x03\x00" + bytes(6) + b"\x4f" + bytes(27), 0)  # a quoted header longer than the quote
def test_any_bytes_give_none_or_a_well_formed_answer(packet, ident):
    got = parse_reply(packet, ident)
    if got is not None:
        kind, seq, ttl, length, extra = got
        assert kind in ("reply", "error") and 0 <= seq <= 0xFFFF and ttl == packet[8]
        assert 8 <= length <= len(packet)
