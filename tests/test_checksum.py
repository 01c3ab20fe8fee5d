"""The Internet checksum against a word-by-word reference and dpkt's."""

import struct

import dpkt
from hypothesis import given
from hypothesis import strategies as st

from rumpnet.netinet.checksum import FOLDED, in_cksum, pseudo_header_sum, ttl_decremented, verifies


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
    assert in_cksum(b"") == 0xFFFF
    assert in_cksum(b"\0\0") == 0xFFFF
    assert in_cksum(b"\xff\xff") == 0


addresses = st.binary(min_size=4, max_size=4)


@given(st.binary(max_size=1600).filter(lambda d: len(d) % 2 == 0), addresses, addresses, st.integers(0, 255),
       st.integers(0, 65535))
def test_pseudo_header_sum_counts_as_its_bytes(data, src, dst, proto, length):
    pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
    assert in_cksum(data, pseudo_header_sum(src, dst, proto, length)) == reference(pseudo + data)


@given(st.binary(max_size=1600), st.lists(st.integers(0, 0xFFFF), max_size=40))
def test_words_added_as_numbers_count_as_their_bytes(data, words):
    """The sum of header words, unfolded, stands for the words packed in front of the data."""
    packed = struct.pack(f"!{len(words)}H", *words)
    assert in_cksum(data, sum(words)) == reference(packed + data)


@given(st.binary(max_size=1600), st.integers(0, 2**34))
def test_verifies_says_what_in_cksum_says(data, initial):
    assert verifies(data, initial) == (in_cksum(data, initial) == 0)


@given(st.binary(max_size=1600), addresses, addresses)
def test_a_filled_in_sum_verifies_and_a_changed_byte_does_not(data, src, dst):
    data = b"\0\0" + data
    pseudo = pseudo_header_sum(src, dst, 17, len(data))
    filled = struct.pack("!H", in_cksum(data, pseudo)) + data[2:]
    assert verifies(filled, pseudo)
    assert not verifies(filled[:-1] + bytes([filled[-1] ^ 1]), pseudo)


def test_all_zeros_do_not_verify():
    assert not verifies(b"\0" * 20)
    assert verifies(b"\xff\xff")


frame_sized = st.integers(FOLDED.start - 2, FOLDED.stop + 1).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@given(frame_sized, st.lists(st.integers(0, 0xFFFF), max_size=20))
def test_frame_sized_data_folded_first_sums_as_the_reference(data, words):
    """Folding a frame-sized number's halves before its remainder changes no sum, odd lengths and both
    ends of the folded sizes included."""
    assert in_cksum(data, sum(words)) == reference(struct.pack(f"!{len(words)}H", *words) + data)
    assert verifies(data, sum(words)) == (in_cksum(data, sum(words)) == 0)


@given(frame_sized.filter(lambda d: len(d) % 2 == 0), addresses, addresses)
def test_a_frame_sized_filled_in_sum_verifies(data, src, dst):
    data = b"\0\0" + data
    pseudo = pseudo_header_sum(src, dst, 17, len(data))
    filled = struct.pack("!H", in_cksum(data, pseudo)) + data[2:]
    assert verifies(filled, pseudo)
    middle = len(filled) // 2
    assert not verifies(filled[:middle] + bytes([filled[middle] ^ 0x80]) + filled[middle + 1:], pseudo)


def test_frame_sized_edge_values():
    """All ones is a sum of 0xffff, not of 0, however it is folded; all zeros stays zero."""
    for size in (FOLDED.start, 1400, 1401, FOLDED.stop - 1):
        assert in_cksum(b"\xff" * size) == reference(b"\xff" * size)
        assert in_cksum(b"\0" * size) == 0xFFFF
        assert not verifies(b"\0" * size)


@given(st.binary(min_size=20, max_size=60).filter(lambda h: len(h) % 4 == 0), st.integers(2, 255),
       st.booleans())
def test_the_sum_after_a_ttl_decrement_is_the_sum_taken_anew(header, ttl, all_ones):
    """Any header whose sum verifies, in either form of a zero sum (0 and 0xffff both verify), gets
    from ttl_decremented exactly what in_cksum gives the header with the TTL one less."""
    header = bytearray(bytes([0x40 | len(header) // 4]) + header[1:8] + bytes([ttl]) + header[9:])
    header[10:12] = b"\0\0"
    checksum = in_cksum(bytes(header))
    if all_ones and checksum == 0:
        checksum = 0xFFFF
    header[10:12] = struct.pack("!H", checksum)
    assert verifies(bytes(header))
    header[8] = ttl - 1
    header[10:12] = b"\0\0"
    assert ttl_decremented(checksum) == in_cksum(bytes(header))
