"""The Internet checksum against a word-by-word reference and dpkt's."""

import struct

import dpkt
from hypothesis import given
from hypothesis import strategies as st

from rumpnet.netinet.checksum import in_cksum, ones_sum


def reference(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@given(st.binary(max_size=3000))
def test_matches_reference_and_dpkt(data):
    assert in_cksum(data) == reference(data) == dpkt.in_cksum(data)


@given(st.binary(min_size=2, max_size=1500).filter(lambda d: len(d) % 2 == 0))
def test_filled_in_checksum_verifies_to_zero(data):
    data = b"\0\0" + data
    filled = struct.pack("!H", in_cksum(data)) + data[2:]
    assert in_cksum(filled) == 0


def test_edge_values():
    assert ones_sum(b"") == 0
    assert in_cksum(b"\0\0") == 0xFFFF
    assert in_cksum(b"\xff\xff") == 0
