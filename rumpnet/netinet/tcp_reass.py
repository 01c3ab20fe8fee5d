"""The reassembly queue: segments that arrived ahead of a gap (BSD's tcp_reass in netinet/tcp_input.c).

Segments are kept by sequence number, overlaps already cut away, so the queue
never holds a byte twice; what it holds counts against the receive window
(TcpCb.rcv_space), so a peer cannot make it grow past the buffer it was
offered. It holds at most MAX_SEGMENTS pieces, so a peer sending a byte
here and a byte there cannot make it long either. A FIN that came early is
kept with the last byte before it.
"""

from .tcp_seq import seq_add, seq_diff

MAX_SEGMENTS = 256  # pieces held at most; a segment that would make more is dropped (the sender sends it again)


class ReassemblyQueue:
    def __init__(self):
        self.segments = []  # [seq, data, fin], sorted by seq, not overlapping
        self.bytes = 0

    def __len__(self):
        return len(self.segments)

    def insert(self, rcv_nxt, seq, data, fin):
        """Keep the parts of (seq, data) not yet held, all after rcv_nxt (the caller trims to the window).

        False when the queue is full and nothing was kept.
        """
        start = seq_diff(seq, rcv_nxt)
        end = start + len(data)
        pieces = []
        for other_seq, other_data, _ in self.segments:
            other_start = seq_diff(other_seq, rcv_nxt)
            other_end = other_start + len(other_data)
            if other_end <= start or other_start >= end:
                continue
            if other_start > start:  # the part before this neighbour is new
                pieces.append((start, data[:other_start - start]))
            data, start = data[max(0, other_end - start):], max(start, other_end)
            if start >= end:
                break
        if start < end:
            pieces.append((start, data))
        if len(self.segments) + len(pieces) > MAX_SEGMENTS and start != 0:
            return False  # full; a piece at rcv_nxt is always taken: it is popped at once
        last = pieces[-1][0] + len(pieces[-1][1]) if pieces else None
        for offset, piece in pieces:
            self.segments.append([seq_add(rcv_nxt, offset), piece, fin and offset + len(piece) == last])
            self.bytes += len(piece)
        if fin and not pieces:  # a FIN on bytes we already hold: mark the segment ending where it ends
            for entry in self.segments:
                if seq_diff(entry[0], rcv_nxt) + len(entry[1]) == end:
                    entry[2] = True
        self.segments.sort(key=lambda entry: seq_diff(entry[0], rcv_nxt))
        return True

    def pop_ready(self, rcv_nxt):
        """The (data, fin) now in order at rcv_nxt, or None."""
        if self.segments and self.segments[0][0] == rcv_nxt:
            _, data, fin = self.segments.pop(0)
            self.bytes -= len(data)
            return data, fin
        return None

    def clear(self):
        self.segments.clear()
        self.bytes = 0
