"""xennet(4): the guest's end of a Xen paravirtualised link, a ring pair shared with xvif(4).

The driver moves frames between the stack and the rings of xenring.py: it
puts a batch on its transmit ring and kicks the peer once; its receive task
takes what the peer put on the other ring, one batch per kick. It does not
know the XenStore: the node's xenbus service (rumpnet/xen/xenbus.py) makes
the interface, and hands it the ring file and the event channel once the
two ends have agreed (`connect`). Before that, output is dropped and counted;
its receive task runs from then on, so that a peer that goes away is noticed
even while the interface is down.

Whatever the peer writes in the ring is checked (xenring.Ring.take); a
corrupt ring, a ring file that changed size or a peer that went away takes
the link down: the driver stops and tells the xenbus service why.
"""

import sys

import trio

from . import xenring
from .ifnet import IFF_RUNNING, Driver

BATCH = 64  # frames the receive task hands up per trip through the scheduler


def log(message):
    print(f"rumpnet: {message}", file=sys.stderr, flush=True)


class XenNetDriver(Driver):
    """The frontend: transmits on the tx ring, receives from the rx ring."""

    kind = "xennet"
    send_ring, receive_ring = xenring.TX, xenring.RX

    def __init__(self, ifp):
        super().__init__(ifp)
        self.ring_file = None
        self.channel = None
        self.on_down = None  # the xenbus service's callback: on_down(reason, or None when the peer left)
        self.down = None  # why the link went down, once it has
        self._input = None  # the interface's, while it runs
        self._scope = None

    def linkstr(self):
        return self.ring_file.path if self.ring_file else None

    def connect(self, nursery, ring_file, channel, on_down):
        """The link is ready: the rings, the event channel, whom to tell when it goes down.

        The receive task runs from now on, up or down: it is what notices a
        peer that went away. While the interface is down it drops what comes.
        """
        self.ring_file, self.channel, self.on_down = ring_file, channel, on_down
        self.tx = ring_file.ring(self.send_ring)
        self.rx = ring_file.ring(self.receive_ring)
        self._scope = trio.CancelScope()
        nursery.start_soon(self._receive_loop, self._scope)

    def start(self, nursery, input):
        self._input = input

    def stop(self):
        self._input = None

    def detach(self):
        self.stop()
        if self._scope is not None:
            self._scope.cancel()
        if self.channel is not None:
            self.channel.close()
        if self.ring_file is not None:
            self.ring_file.close()
        self.channel = self.ring_file = self._scope = None

    async def _receive_loop(self, scope):
        """Drain the kicks, then the ring; sleep on the event channel only when the ring is empty."""
        with scope:
            while self.down is None:
                self.channel.drain()
                frames = self._take()
                if frames:
                    if self._input is not None:
                        self._input(frames)
                    else:
                        self.ifp.counters.iqdrops += len(frames)
                    await trio.lowlevel.checkpoint()
                    continue
                if frames is None:
                    return
                try:
                    await self.channel.wait()
                except xenring.PeerGone:
                    self._link_down(None)

    def _take(self):
        if not self.ring_file.intact():
            self._link_down(f"{self.ring_file.path}: the ring file changed size")
            return None
        try:
            return self.rx.take(BATCH)
        except xenring.RingError as e:
            self._link_down(str(e))
            return None

    def transmit(self, frames):
        """A batch onto the transmit ring, one kick for all of it; what does not fit is dropped and counted."""
        if self.down is not None or self.ring_file is None or not self.ring_file.intact():
            self.ifp.counters.oerrors += len(frames)
            if self.down is None and self.ring_file is not None:
                self._link_down(f"{self.ring_file.path}: the ring file changed size")
            return
        try:
            sent = self.tx.put(frames)
            if sent:
                self.channel.notify()
        except (xenring.RingError, xenring.PeerGone) as e:
            self.ifp.counters.oerrors += len(frames)
            self._link_down(str(e) if isinstance(e, xenring.RingError) else None)
            return
        self.ifp.counters.count_output(frames[:sent])
        self.ifp.counters.oerrors += len(frames) - sent

    def _link_down(self, reason):
        """Stop using the link: say why (a corrupt ring) and let the xenbus service change the state."""
        if self.down is not None:
            return
        self.down = reason or "peer gone"
        if reason:
            log(f"{self.ifp.name}: {reason}; link down")
        self.ifp.flags &= ~IFF_RUNNING  # the link carries nothing any more
        self.stop()
        if self._scope is not None:
            self._scope.cancel()
        if self.on_down is not None:
            self.on_down(reason)
