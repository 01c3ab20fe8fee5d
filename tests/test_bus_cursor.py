"""A reader's cursor: where it starts, what it steps over, and how much one read takes."""

from rumpnet.net.bus import Bus, Cursor


def fill_until_newest_wraps(bus):
    """Append 1000-byte frames until the newest record runs over the ring's end."""
    while True:
        before = bus.header().generation
        bus.send([bytes(1000)], 1)
        if bus.header().generation != before:
            return


def test_reader_attaching_after_a_wrapped_record_reads_only_new_frames(tmp_path):
    with Bus(tmp_path / "bus") as bus:
        fill_until_newest_wraps(bus)
        reader = Cursor(bus)
        assert reader.read() == []
        bus.send([b"new" * 10], 2)
        assert [r.frame for r in reader.read()] == [b"new" * 10]
        assert reader.laps == 0


def test_own_frames_are_stepped_over(tmp_path):
    with Bus(tmp_path / "bus") as bus:
        mine, other = Cursor(bus), Cursor(bus)
        with bus.locked():
            mine.append([b"mine" * 10], 7)
        bus.send([b"theirs" * 10], 8)
        with bus.locked():
            mine.append([b"mine again" * 10, b"and more" * 10], 7)
        assert [r.frame for r in mine.read(skip=7)] == [b"theirs" * 10]
        assert [r.sender for r in other.read()] == [7, 8, 7, 7]


def test_budget_limits_a_read_by_bytes(tmp_path):
    with Bus(tmp_path / "bus") as bus:
        reader = Cursor(bus)
        bus.send([bytes(1000)] * 10, 1)
        assert len(reader.read(64, budget=2500)) == 3  # the record that crosses the budget is the last
        assert len(reader.read(64)) == 7
