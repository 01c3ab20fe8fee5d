"""Callouts: a function to run at a time to come (BSD's kern/kern_timeout.c).

A protocol keeps one Callout per thing it times (an ARP entry; later a TCP
connection's retransmission, delayed ACK and TIME_WAIT) and re-arms it with
`reset()`, so timing an event allocates no new object. The node's one timer
task sleeps until the earliest deadline and runs what is due, handing each
function `now`: no protocol reads the clock itself, and trio's MockClock
drives every timer in tests.

Pending callouts sit in a heap. Re-arming or stopping one leaves its old heap
entry behind, recognised as stale by its sequence number; the heap is rebuilt
when stale entries outnumber live ones, so it stays within twice the number of
pending callouts.
"""

import heapq
import itertools
import math

import trio

_COMPACT_AT = 64  # fewer stale entries than this are not worth a rebuild


class Callout:
    """One timer, re-armed as often as needed (callout_init / callout_reset / callout_stop)."""

    __slots__ = ("_timers", "_fn", "_args", "_seq", "deadline")

    def __init__(self, timers):
        self._timers = timers
        self._fn = None
        self._args = ()
        self._seq = None  # the sequence number of its live heap entry, None when idle
        self.deadline = math.inf

    @property
    def pending(self):
        return self._seq is not None

    def reset(self, delay, fn, *args):
        """Run fn(now, *args) delay seconds from now, instead of whatever was set before."""
        self._fn, self._args = fn, args
        self._timers._arm(self, self._timers.now() + delay)

    def stop(self):
        """Cancel the callout if it is pending; True if it was."""
        if self._seq is None:
            return False
        self._timers._disarm(self)
        return True


class Timers:
    """The node's timer service: one heap of callouts, one task that runs them when due."""

    def __init__(self):
        self._heap = []  # (deadline, seq, callout)
        self._seq = itertools.count()
        self._stale = 0
        self._sleep = None  # the timer task's cancel scope, whose deadline is the earliest callout

    @staticmethod
    def now():
        return trio.current_time()

    def callout(self):
        """A new idle callout of this service."""
        return Callout(self)

    def __len__(self):
        return len(self._heap) - self._stale

    def _arm(self, callout, deadline):
        if callout._seq is not None:
            self._stale += 1
        callout._seq = next(self._seq)
        callout.deadline = deadline
        heapq.heappush(self._heap, (deadline, callout._seq, callout))
        if self._sleep is not None and deadline < self._sleep.deadline:
            self._sleep.deadline = deadline
        self._compact()

    def _disarm(self, callout):
        callout._seq = None
        callout.deadline = math.inf
        self._stale += 1
        self._compact()

    def _compact(self):
        if self._stale >= _COMPACT_AT and self._stale * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2]._seq == entry[1]]
            heapq.heapify(self._heap)
            self._stale = 0

    def run_due(self, now):
        """Run every callout whose deadline is not after now, earliest first (softclock)."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, callout = heapq.heappop(heap)
            if callout._seq != seq:
                self._stale -= 1
                continue
            callout._seq = None
            callout.deadline = math.inf
            callout._fn(now, *callout._args)

    def next_deadline(self):
        heap = self._heap
        while heap and heap[0][2]._seq != heap[0][1]:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else math.inf

    async def run(self):
        """The timer task: sleep until the earliest deadline, run what is due, again."""
        while True:
            with trio.CancelScope(deadline=self.next_deadline()) as self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            self.run_due(self.now())
