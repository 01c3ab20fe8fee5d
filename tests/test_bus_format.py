"""The bus file as written by rumpnet nodes, checked by an independent reader (busreader.py)."""

import os
import struct

import dpkt
from hypothesis import HealthCheck, given, settings, strategies as st

from busreader import RING, SIZE, read_header, walk
from rumpnet.net.bus import MAX_FRAME, MIN_FRAME, Bus, Cursor


def test_bus_after_ping_exchange(pair, bus):
    a, _ = pair
    assert a.run("ping", "-c", "3", "-i", "0.2", "10.0.0.2").returncode == 0
    raw = open(bus, "rb").read()
    assert len(raw) == SIZE
    header = read_header(raw)
    assert header["magic"] == 0xCA11D054
    assert header["version"] == 3
    assert header["lock"] == 0
    assert header["generation"] == 0
    assert header["first"] == RING  # nothing overwritten yet: libshmif's fresh-bus value
    records = walk(raw)
    assert records[0][:2] == (0, 0)  # the empty record a fresh bus starts with
    assert records[1][0] == 24  # so the first frame lands at 24
    kinds = []
    senders = set()
    for offset, length, sec, usec, sender, frame in records[1:]:
        assert 14 <= length <= 1514
        assert usec < 1_000_000 and sec > 0
        senders.add(sender)
        eth = dpkt.ethernet.Ethernet(frame)
        assert eth.src[:2] == b"\xb2\xa0"
        if isinstance(eth.data, dpkt.arp.ARP):
            kinds.append("arp")
        elif isinstance(eth.data, dpkt.ip.IP) and isinstance(eth.data.data, dpkt.icmp.ICMP):
            kinds.append({8: "request", 0: "reply"}[eth.data.data.type])
    assert kinds.count("request") == 3 and kinds.count("reply") == 3
    assert "arp" in kinds
    assert len(senders) == 2


def test_wrapped_bus(tmp_path):
    """After more than a ring's worth of frames: generation counts wraps, first..last walks cleanly."""
    path = tmp_path / "bus"
    frames = [bytes([i % 251]) * 14 + os.urandom(i % 1500) for i in range(2000)]
    with Bus(path) as bus:
        reader = Cursor(bus)
        for i in range(0, len(frames), 10):
            bus.send(frames[i:i + 10], sender=7)
            got = reader.read(100)
            assert [r.frame for r in got] == frames[i:i + 10]
    raw = open(path, "rb").read()
    header = read_header(raw)
    assert header["generation"] >= 1
    records = walk(raw)
    assert records[-1][5] == frames[-1]
    assert [r[5] for r in records] == frames[-len(records):]
    assert {r[4] for r in records} == {7}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fill=st.integers(0, 2 * RING // (24 + MAX_FRAME)),
       bursts=st.lists(st.lists(st.integers(MIN_FRAME, MAX_FRAME), min_size=1, max_size=48), min_size=1, max_size=8))
def test_a_burst_leaves_the_bus_as_its_frames_written_one_by_one(tmp_path_factory, fill, bursts):
    """A burst moves `first` once for all its records, where they all fit before the ring's end; the
    bus it leaves is the one its frames leave appended one at a time, wherever the ring stood."""
    workdir = tmp_path_factory.mktemp("bursts")
    with Bus(workdir / "burst") as burst, Bus(workdir / "single") as single:
        for bus in burst, single:
            for _ in range(fill):  # the ring's state before: anywhere from fresh to wrapped
                bus.append([bytes(MAX_FRAME)], 1, sec=1, usec=0)
        for number, sizes in enumerate(bursts):
            frames = [bytes([number, index & 0xFF]) * (size // 2) + bytes(size % 2) for index, size in enumerate(sizes)]
            burst.append(frames, 7, sec=2, usec=number)
            for frame in frames:
                single.append([frame], 7, sec=2, usec=number)
            assert burst.mem[:] == single.mem[:]
        assert walk(burst.mem[:])[-len(frames):] == walk(single.mem[:])[-len(frames):]
        assert [record[5] for record in walk(burst.mem[:])[-len(frames):]] == frames


def test_lapped_reader_resynchronises(tmp_path):
    path = tmp_path / "bus"
    with Bus(path) as bus:
        slow = Cursor(bus)
        for i in range(1500):
            bus.append([struct.pack("!I", i) + b"\0" * 1400], 1)
        got = slow.read(10000)
        assert slow.laps == 1
        numbers = [struct.unpack_from("!I", r.frame)[0] for r in got]
        assert numbers == list(range(numbers[0], 1500))  # what survived, in order, nothing torn
        assert numbers[0] > 0


def test_attaching_reader_starts_after_newest(tmp_path):
    path = tmp_path / "bus"
    with Bus(path) as bus:
        bus.send([b"old" * 10], 1)
        reader = Cursor(bus)
        assert reader.read() == []
        bus.send([b"new" * 10], 2)
        assert [r.frame for r in reader.read()] == [b"new" * 10]
