"""A tool that runs in a node for a client that collects its output as it comes.

`rumpnet ping` and `rumpnet perf -c` (TCP) run their loops inside the node, so the
control socket is not on the timed path, and fetch the output with a call
that waits for more: the command prints each piece as its time comes, as
ping(8) and iperf do. A subclass says what runs (main) and how it stops
early with its report still due (interrupt).
"""

import trio

MAX_UNCOLLECTED = 1024  # pieces of output a client has not collected; beyond them the run is interrupted


class NodeRun:
    """Output waits until the client takes it; a client that leaves MAX_UNCOLLECTED
    pieces behind interrupts the run (its closing output still comes), so a client
    that never reads costs the node a bounded list.
    """

    def __init__(self):
        self.pending = []  # output not yet collected
        self.done = False
        self.scope = trio.CancelScope()
        self._more = trio.Event()

    def put(self, item):
        self.pending.append(item)
        if len(self.pending) > MAX_UNCOLLECTED:
            self.interrupt()
        self._more.set()

    async def main(self):
        raise NotImplementedError

    def interrupt(self):
        """As Ctrl-C: stop early, and still give the closing output."""
        raise NotImplementedError

    async def run(self):
        """Run to the end, or until cancel()."""
        with self.scope:
            try:
                await self.main()
            finally:
                self.done = True
                self._more.set()

    async def output(self):
        """The output put since the last call, waiting for some unless the run is over; (items, done)."""
        if not self.pending and not self.done:
            await self._more.wait()
        self._more = trio.Event()
        items, self.pending = self.pending, []
        return items, self.done

    def cancel(self):
        """The client went: stop without a word."""
        self.scope.cancel()
