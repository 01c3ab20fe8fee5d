"""The reassembly queue: any order, any overlap, the stream comes out whole and never held twice."""

from hypothesis import given
from hypothesis import strategies as st

from rumpnet.netinet.tcp_reass import MAX_SEGMENTS, ReassemblyQueue
from rumpnet.netinet.tcp_seq import seq_add, seq_gt, seq_lt

STREAM = bytes(range(256)) * 4


@st.composite
def pieces(draw):
    """Overlapping pieces covering the stream, shuffled, the one at the start held back to the end."""
    cuts = sorted(draw(st.lists(st.integers(1, len(STREAM) - 1), max_size=20)))
    bounds = list(zip([0] + cuts, cuts + [len(STREAM)]))
    spread = [(max(0, s - draw(st.integers(0, 30))), min(len(STREAM), e + draw(st.integers(0, 30))))
              for s, e in bounds]
    first = [p for p in spread if p[0] == 0]
    rest = draw(st.permutations([p for p in spread if p[0] != 0]))
    return rest, first


@given(pieces(), st.integers(0, 2**32 - 1))
def test_any_order_and_overlap_gives_the_stream_back(parts, isn):
    rest, first = parts
    queue = ReassemblyQueue()
    rcv_nxt = isn
    for start, end in rest:
        queue.insert(rcv_nxt, seq_add(isn, start), STREAM[start:end], end == len(STREAM))
        assert queue.bytes <= len(STREAM)  # never a byte twice
    got = b""
    for start, end in first:
        queue.insert(rcv_nxt, seq_add(isn, start), STREAM[start:end], end == len(STREAM))
    fin = False
    while (ready := queue.pop_ready(rcv_nxt)) is not None:
        data, fin = ready
        got += data
        rcv_nxt = seq_add(rcv_nxt, len(data))
    assert got == STREAM and fin and queue.bytes == 0 and not queue


@given(st.integers(0, 2**32 - 1), st.integers(1, 2**31 - 1))
def test_comparisons_hold_across_the_wrap(a, n):
    assert seq_lt(a, seq_add(a, n)) and seq_gt(seq_add(a, n), a)


def test_a_byte_here_and_a_byte_there_cannot_make_the_queue_long():
    queue = ReassemblyQueue()
    kept = [queue.insert(0, 2 * n + 1, b"x", False) for n in range(1000)]
    assert kept.count(True) == MAX_SEGMENTS and len(queue) == MAX_SEGMENTS
    assert queue.insert(0, 0, b"y", False)  # what fills the gap at rcv_nxt is always taken
    assert queue.pop_ready(0) == (b"y", False) and queue.pop_ready(1) == (b"x", False)
