"""A bus whose ring holds garbage: readers skip it and count it, and never crash or deliver oversize."""

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from rumpnet.net.bus import BUS_SIZE, DATA_SIZE, Bus, BusError, Cursor, check_header


def corrupt_bus(path, first, last, generation, ring_bytes):
    with open(path, "wb") as f:
        f.write(struct.pack("=IIQIIII", 0xCA11D054, 3, generation, first, last, 0, 0))
        f.write(ring_bytes + bytes(BUS_SIZE - 32 - len(ring_bytes)))


offsets = st.integers(0, DATA_SIZE - 1)


@settings(max_examples=150, deadline=None)
@given(first=st.one_of(offsets, st.just(DATA_SIZE)), last=offsets, generation=st.integers(0, 5),
       ring=st.binary(min_size=0, max_size=4096), frames=st.lists(st.binary(min_size=14, max_size=200), max_size=5))
def test_readers_survive_any_ring(tmp_path_factory, first, last, generation, ring, frames):
    path = tmp_path_factory.mktemp("ring") / "bus"
    corrupt_bus(path, first, last, generation, ring)
    with Bus(path) as bus:
        cursor = Cursor(bus)
        for record in cursor.read(1000):
            assert len(record.frame) < DATA_SIZE // 2
        bus.send(frames, sender=9)  # writing over garbage must work too
        got = cursor.read(1000)
        if frames and not cursor.corrupt:
            assert [r.frame for r in got][-len(frames):] == frames
        try:
            walked = list(bus.records())
        except BusError as e:
            assert str(path) in str(e)
        else:
            assert all(len(r.frame) < DATA_SIZE // 2 for r in walked)


@given(st.binary(min_size=32, max_size=32))
def test_header_check_refuses_or_accepts_cleanly(raw):
    try:
        check_header("/x/bus", raw)
    except BusError as e:
        assert str(e).startswith("/x/bus: ")


def test_fresh_file_is_initialised_like_libshmif(tmp_path):
    path = tmp_path / "bus"
    Bus(path).close()
    raw = open(path, "rb").read()
    assert len(raw) == BUS_SIZE
    magic, version, gen, first, last, lock, spare = struct.unpack("=IIQIIII", raw[:32])
    assert (magic, version, gen, first, last, lock, spare) == (0xCA11D054, 0, 0, DATA_SIZE, 0, 0, 0)
    assert raw[32:].count(0) == BUS_SIZE - 32
    assert os.path.getsize(path) == BUS_SIZE
