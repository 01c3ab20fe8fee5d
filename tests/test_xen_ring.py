"""The xennet/xvif ring pair: frames through it, and whatever a hostile peer scribbles in it."""

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from rumpnet.net import xenring
from rumpnet.net.xenring import FILE_BYTES, RING_BYTES, SLOTS, Ring, RingError, RingFile


def frame(n, size=60):
    return bytes([n % 256]) * size


def test_frames_come_out_in_order_and_a_full_ring_takes_no_more():
    buf = bytearray(FILE_BYTES)
    tx = Ring(buf, xenring.TX)
    assert tx.put([frame(n) for n in range(SLOTS + 5)]) == SLOTS
    assert tx.take(1000) == [frame(n) for n in range(SLOTS)]
    assert tx.take(1000) == []


def test_indices_wrap_around_two_to_the_32():
    buf = bytearray(FILE_BYTES)
    struct.pack_into("=II", buf, RING_BYTES, 0xFFFFFFFE, 0xFFFFFFFE)
    rx = Ring(buf, xenring.RX)
    assert rx.put([frame(1), frame(2, 1514), frame(3, 14)]) == 3
    assert rx.take(2) == [frame(1), frame(2, 1514)]
    assert rx.take(2) == [frame(3, 14)]
    assert struct.unpack_from("=II", buf, RING_BYTES) == (1, 1)


def test_a_consumer_ahead_of_the_producer_stops_the_producer():
    buf = bytearray(FILE_BYTES)
    struct.pack_into("=II", buf, 0, 5, 9)
    with pytest.raises(RingError, match="consumer index 9 is ahead of producer index 5"):
        Ring(buf, xenring.TX).put([frame(0)])


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.lists(st.tuples(st.integers(0, SLOTS - 1), st.integers(0, 0xFFFF))),
       st.integers(1, 2 * SLOTS))
def test_a_scribbled_ring_gives_checked_frames_or_a_ring_error(header, lengths, limit):
    """Whatever the peer writes: at most limit frames, each 14 to 1514 bytes, never more than it produced."""
    buf = bytearray(FILE_BYTES)
    buf[0:8] = header
    for slot, length in lengths:
        struct.pack_into("=H", buf, xenring.HEADER.size + slot * xenring.SLOT_BYTES, length)
    prod, cons = struct.unpack_from("=II", buf, 0)
    try:
        frames = Ring(buf, xenring.TX).take(limit)
    except RingError:
        assert struct.unpack_from("=II", buf, 0) == (prod, cons)  # nothing consumed
        return
    assert len(frames) <= min(limit, (prod - cons) & 0xFFFFFFFF)
    assert all(14 <= len(f) <= 1514 for f in frames)
    assert struct.unpack_from("=II", buf, 0) == (prod, (cons + len(frames)) & 0xFFFFFFFF)


@pytest.mark.parametrize("size", [0, 4096, FILE_BYTES - 1, FILE_BYTES + 1])
def test_a_ring_file_of_the_wrong_size_is_refused(tmp_path, size):
    path = tmp_path / "ring"
    path.write_bytes(b"\0" * size)
    with pytest.raises(RingError, match=f"{size} bytes; a ring pair is {FILE_BYTES}"):
        RingFile.open(str(path))


def test_a_ring_file_that_is_a_link_or_a_fifo_is_refused(tmp_path):
    RingFile.create(str(tmp_path / "real")).close()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(RingError, match="cannot open ring"):
        RingFile.open(str(tmp_path / "link"))
    import os
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(RingError, match="not a regular file"):
        RingFile.open(str(tmp_path / "fifo"))
