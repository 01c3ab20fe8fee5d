"""The xennet/xvif ring pair: frames through it, and whatever a hostile peer scribbles in it."""

import os
import struct
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
import trio
import trio.testing

from rumpnet.net import xenring
from rumpnet.net.xenring import FILE_BYTES, RING_BYTES, SLOTS, EventChannel, Ring, RingError, RingFile


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
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(RingError, match="not a regular file"):
        RingFile.open(str(tmp_path / "fifo"))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF),
       st.lists(st.tuples(st.booleans(), st.integers(0, 2 * SLOTS)), max_size=30))
def test_put_and_take_agree_with_a_queue_wherever_the_indices_start(start, steps):
    """From any u32 starting index, across 2**32: a FIFO of at most SLOTS frames, indices never more than SLOTS apart."""
    buf = bytearray(FILE_BYTES)
    struct.pack_into("=II", buf, 0, start, start)
    ring, queue, made = Ring(buf, xenring.TX), [], 0
    for producing, count in steps:
        if producing:
            frames = [frame(made + n, 14 + (made + n) % 1500) for n in range(count)]
            went = ring.put(frames)
            assert went == min(count, SLOTS - len(queue))
            queue += frames[:went]
            made += count
        else:
            taken = ring.take(count)
            assert taken == queue[:count]
            del queue[:count]
        prod, cons = struct.unpack_from("=II", buf, 0)
        assert (prod - cons) & 0xFFFFFFFF == len(queue) <= SLOTS


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, SLOTS), st.lists(st.integers(1, SLOTS), min_size=1, max_size=8))
def test_the_consumer_kicks_a_producer_that_waits_for_room_once(start, before, batches):
    """Only a producer that asked is kicked, once, by the batch that empties the slot it asked for, wherever
    the indices are (across 2**32)."""
    buf = bytearray(FILE_BYTES)
    struct.pack_into("=III", buf, 0, start, start, start)
    ring = Ring(buf, xenring.TX)
    assert ring.put([frame(n) for n in range(SLOTS + 1)]) == SLOTS
    taken = len(ring.take(before))
    assert not (taken and ring.room_wanted(taken))  # nobody asked
    ring.want_room()
    kicks = []
    for size in batches:
        taken = len(ring.take(size))
        kicks.append(bool(taken) and ring.room_wanted(taken))
    assert kicks == [n == 0 and before < SLOTS for n in range(len(batches))]  # the first batch takes the slot


CONSUMER = """
import sys
from rumpnet.net.xenring import TX, RingError, RingFile
ring, want, got = RingFile.open(sys.argv[1]).ring(TX), int(sys.argv[2]), 0
try:
    while got < want:
        for frame in ring.take(1):
            if int.from_bytes(frame[:4], "little") != got:
                sys.exit(f"frame {int.from_bytes(frame[:4], 'little')} where {got} was due")
            got += 1
except RingError as e:
    sys.exit(str(e))
"""
FRAMES = 30000


def test_a_producer_and_a_consumer_in_two_processes_never_see_a_false_index(tmp_path):
    """Each side reads the other's index while it is being written: it must read the old value or the new one.

    One frame per index update, so that the two processes race on the
    header as often as they can; every frame arrives, in order.
    """
    path = str(tmp_path / "ring")
    ring_file = RingFile.create(path)
    tx = ring_file.ring(xenring.TX)
    consumer = subprocess.Popen([sys.executable, "-c", CONSUMER, path, str(FRAMES)], stderr=subprocess.PIPE, text=True)
    sent, error = 0, None
    try:
        while sent < FRAMES and consumer.poll() is None:
            try:
                sent += tx.put([sent.to_bytes(4, "little") + bytes(56)])
            except RingError as e:
                error = str(e)
                break
    finally:
        if error is not None:
            consumer.kill()
        _, consumer_error = consumer.communicate(timeout=60)
        ring_file.close()
    assert error is None, f"the producer, after {sent} frames: {error}"
    assert consumer.returncode == 0, f"the consumer: {consumer_error}"


async def test_a_channel_closed_while_its_waiter_is_being_woken_only_cancels_the_waiter(tmp_path):
    """A driver detached in the scheduler turn in which its kick arrived: the woken waiter must not read
    the closed descriptor. Kick and detach are woken together; trio runs them in either order, so 20 tries."""
    for n in range(20):
        kicks, other = tmp_path / f"kicks{n}", tmp_path / f"other{n}"
        os.mkfifo(kicks)
        os.mkfifo(other)
        channel = EventChannel(str(kicks))
        detach = os.open(other, os.O_RDONLY | os.O_NONBLOCK)
        writers = [os.open(path, os.O_WRONLY | os.O_NONBLOCK) for path in (kicks, other)]
        scope = trio.CancelScope()

        async def waiter():
            with scope:
                await channel.wait()

        async def detacher():
            await trio.lowlevel.wait_readable(detach)
            scope.cancel()
            channel.close()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiter)
                nursery.start_soon(detacher)
                await trio.testing.wait_all_tasks_blocked()
                for fd in writers:
                    os.write(fd, b"!")
        finally:
            for fd in (detach, *writers):
                os.close(fd)


async def test_a_channel_closed_under_its_waiter_wakes_it(tmp_path):
    """Closed with no cancellation, the channel's waiter is told so at once; it neither hangs nor reads a stale fd."""
    kicks = tmp_path / "kicks"
    os.mkfifo(kicks)
    channel = EventChannel(str(kicks))
    writer = os.open(kicks, os.O_WRONLY | os.O_NONBLOCK)  # a peer that is there and quiet
    outcome = []

    async def waiter():
        try:
            await channel.wait()
            outcome.append("returned")
        except trio.ClosedResourceError:
            outcome.append("closed")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            channel.close()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # a waiter left hanging would keep the test from ending
    finally:
        os.close(writer)
    assert outcome == ["closed"]
