"""Busy polling (Linux's net.core.busy_poll): a socket reader that waits keeps the node polling.

A node sleeps in epoll between frames. On a virtual machine the wake-up
from that sleep, and the Python that then runs on cold caches, costs several
times what the frame's own work does: a request/response exchange between
two nodes pays it twice a round trip. With net.core.busy_poll set to N
microseconds, a task that starts waiting on a socket keeps the event loop
from sleeping for up to N µs: one task of the node checkpoints meanwhile, so
trio looks at every descriptor (the bus's inotify watch, a tap, an event
channel) with a zero timeout instead of blocking. A reply that comes within
the window is taken at once, by a process that never slept. The cost is a
processor kept busy for up to N µs per wait, so it is off (0) by default.
Each pass gives the processor to any other runnable process first
(sched_yield), so that the polling delays no one else, the peer least of all.
"""

import os

import trio

SYSCTL = "net.core.busy_poll"


class BusyPoll:
    """The node's poller: idle until a socket waits, then busy until its window ends."""

    def __init__(self, sysctl):
        self._sysctl = sysctl
        self._until = 0.0  # trio time at which the current window ends
        self._idle = trio.lowlevel.ParkingLot()

    def waiting(self):
        """A task is about to wait on a socket: poll for the next net.core.busy_poll µs."""
        window = self._sysctl[SYSCTL]
        if window:
            self._until = trio.current_time() + window / 1e6
            self._idle.unpark_all()

    async def run(self):
        """The polling task, run in the node's nursery for its lifetime."""
        while True:
            while trio.current_time() < self._until:
                os.sched_yield()
                await trio.lowlevel.checkpoint()
            await self._idle.park()
