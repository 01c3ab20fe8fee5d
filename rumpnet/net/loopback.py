"""Packets a node sends to itself: a bounded queue into ip_input (BSD's looutput and ipintrq).

ip_output never calls ip_input: a packet for one of the node's own addresses
(and the copy of a broadcast, BSD's if_simloop) waits here, and the queue is
drained once the work that sent it is done: after each batch of frames a
driver hands in, and after each socket send. So a protocol that answers itself is not
re-entered, and a TCP segment to self cannot run inside its own tcp_input.
"""

from collections import deque
import errno

import trio

from ..netinet.ip_input import ip_input
from .offload import CSUM_IP_CHECKED, CSUM_L4_CHECKED

IFQ_MAXLEN = 256  # NetBSD's net.inet.ip.ifq.maxlen
LOOPBACK_MARKS = CSUM_IP_CHECKED | CSUM_L4_CHECKED  # never on a wire: its sums count as checked


class LoopbackQueue:
    def __init__(self, node, maxlen=IFQ_MAXLEN):
        self.node = node
        self.maxlen = maxlen
        self.queue = deque()
        self._draining = False
        self._rescheduled = False

    def enqueue(self, ifp, packet):
        """Queue a packet for input on ifp; ENOBUFS (counted) when the queue is full, as looutput."""
        if len(self.queue) >= self.maxlen:
            self.node.stats.ip["loopback_dropped"] += 1
            raise OSError(errno.ENOBUFS, "No buffer space available")
        self.queue.append((ifp, packet))

    def drain(self):
        """Run queued packets through ip_input, at most maxlen of them.

        The packets their input sends to the node itself join the queue and
        run in the same drain. A drain that runs out of budget (a protocol
        that keeps answering itself) leaves the rest to a drain after the
        next checkpoint, so other tasks run in between.
        """
        if self._draining:
            return
        self._draining = True
        try:
            for _ in range(self.maxlen):
                if not self.queue:
                    break
                ifp, packet = self.queue.popleft()
                ip_input(self.node, ifp, packet, LOOPBACK_MARKS, False)
        finally:
            self._draining = False
        if self.queue and not self._rescheduled and not self.node.halted.is_set():
            self._rescheduled = True
            self.node.nursery.start_soon(self._drain_later)

    async def _drain_later(self):
        await trio.lowlevel.checkpoint()
        self._rescheduled = False
        self.drain()
