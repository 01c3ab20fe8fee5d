"""The bus reader over a live ring that anyone may scribble on.

Hypothesis interleaves a writer's frames, arbitrary header words and record
lengths, and the reader's wake-ups, on a real bus file: no exception escapes
the reader, no frame is delivered twice, each wake-up does bounded work, and
once the header is sane again a new frame reaches the reader.
"""

import struct

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rumpnet.net.bus import DATA_SIZE, RECORD, Bus, BusError, Cursor

LIMIT, BUDGET = 8, 4096
MARK = b"\x02rumpnet-prop"
HEADER_WORDS = {"generation": (8, "=Q", 64), "first": (16, "=I", 32), "last": (20, "=I", 32)}
LENGTHS = st.sampled_from([0, 1, 13, 14, 1514, 1515, 2000, 100000, DATA_SIZE // 2, 0x7FFFFFFF, 0xFFFFFFFF])

steps = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(1, 40), st.integers(14, 1514)),
    st.tuples(st.just("read")),
    st.tuples(st.just("header"), st.sampled_from(sorted(HEADER_WORDS)),
              st.one_of(st.integers(0, 2 ** 32 - 1), st.integers(0, DATA_SIZE + 1))),
    st.tuples(st.just("length"), st.one_of(st.just("last"), st.integers(0, DATA_SIZE - 1)),
              st.one_of(LENGTHS, st.integers(0, 2 ** 32 - 1))),
), max_size=40)


NUMBER = struct.Struct("!QQ")  # the writer's sequence number, then its complement
ALL_ONES = 2 ** 64 - 1


def frame(number, size):
    body = MARK + NUMBER.pack(number, number ^ ALL_ONES)
    return (b"\xff" * 6 + b"\x02" * 6 + b"\x88\xb5" + body).ljust(size, b"\0")


def number_of(frame):
    """The writer's sequence number, or None for a frame a scribbled length cut short or moved, or whose
    number a scribble rewrote (it no longer matches its complement: one 4-byte write cannot change both)."""
    if frame.find(MARK) != 14 or len(frame) < 14 + len(MARK) + NUMBER.size:
        return None
    number, complement = NUMBER.unpack_from(frame, 14 + len(MARK))
    return number if number ^ complement == ALL_ONES else None


class Reader:
    """What a node does on a wake-up: check the file, then read one batch under the lock, as records
    (a tool) or as frames alone (a driver); the batch's frames either way."""

    def __init__(self, bus, frames_only):
        self.bus = bus
        self.cursor = Cursor(bus)
        self.frames_only = frames_only
        self.seen = set()

    def wake(self):
        if self.bus.fault():
            return []
        with self.bus.locked():
            read = self.cursor.read_locked(LIMIT, None, BUDGET, frames=self.frames_only)
        frames = read if self.frames_only else [record.frame for record in read]
        assert all(isinstance(frame, bytes) for frame in frames)
        assert len(frames) <= LIMIT
        assert sum(len(frame) for frame in frames) <= BUDGET + DATA_SIZE // 2  # the last record may pass the budget
        for frame in frames:
            number = number_of(frame)
            if number is not None:
                assert number not in self.seen, f"frame {number} delivered twice"
                self.seen.add(number)
        return frames


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps, frames_only=st.booleans())
# a frame cut short inside the writer's number:
@example(steps=[("send", 1, 14), ("length", "last", 27)], frames_only=False)
# a scribble inside a frame, over the low half of its writer's number (not a second delivery of frame 0):
@example(steps=[("send", 8, 14), ("length", 492, 0)], frames_only=False)
# a write over the last record read, then a generation: not a lap:
@example(steps=[("send", 1, 14), ("send", 1, 14), ("read",), ("header", "last", 75), ("send", 1, 14),
                ("header", "generation", 1)], frames_only=True)
def test_reader_over_a_scribbled_ring(tmp_path_factory, steps, frames_only):
    path = tmp_path_factory.mktemp("ring") / "bus"
    with Bus(path) as bus:
        reader, sent = Reader(bus, frames_only), 0
        for step in steps:
            if step[0] == "send":
                frames = [frame(sent + i, step[2]) for i in range(step[1])]
                try:
                    bus.send(frames, sender=7)
                except BusError:
                    continue  # not a bus now: writers leave it alone
                sent += len(frames)
            elif step[0] == "read":
                reader.wake()
            elif step[0] == "header":
                offset, fmt, bits = HEADER_WORDS[step[1]]
                struct.pack_into(fmt, bus.mem, offset, step[2] % (1 << bits))
            else:
                where = struct.unpack_from("=I", bus.mem, 20)[0] if step[1] == "last" else step[1]
                if where < DATA_SIZE - 4:
                    struct.pack_into("=I", bus.mem, 32 + where, step[2])
        if bus.fault():
            return
        for _ in range(DATA_SIZE // RECORD.size // LIMIT + 2):  # bounded: at most the whole ring, a batch at a time
            if reader.cursor.caught_up():
                break
            reader.wake()
        else:
            raise AssertionError("the reader never caught up")
        bus.send([frame(sent, 60)], sender=7)
        assert sent in {number_of(frame) for frame in reader.wake()}, "not back in step with the writers"
