"""xennet(4): the guest's end of a Xen paravirtualised link, a ring pair shared with xvif(4).

The driver moves frames between the stack and the rings of xenring.py: it
puts a batch on its transmit ring and kicks the peer once; its receive task
takes what the peer put on the other ring, one batch per kick. A full
transmit ring does not drop: as NetBSD's xennet_start stops taking from the
interface queue when no request slot is free (IFF_OACTIVE), the frames wait
in a bounded send queue and go onto the ring as the peer empties slots; the
peer's kick wakes the receive task, which writes them, as xennet_handler
reclaims the transmit ring and restarts output. Only a full queue drops
(counted). It does not
know the XenStore: the node's xenbus service (rumpnet/xen/xenbus.py) makes
the interface, and hands it the ring file and the event channel once the
two ends have agreed (`connect`). Before that, output is dropped and counted;
its receive task runs from then on, so that a peer that goes away is noticed
even while the interface is down.

Whatever the peer writes in the ring is checked (xenring.Ring.take); a
corrupt ring, a ring file that changed size or a peer that went away takes
the link down: the driver stops and tells the xenbus service why.
"""

from collections import defaultdict
import logging

import trio

from . import xenring
from .ifnet import IFF_RUNNING, Driver

BATCH = 64  # frames the receive task hands up per trip through the scheduler


log = logging.getLogger(__name__)  # the node's log: its faults at WARNING, news at INFO


class XenNetDriver(Driver):
    """The frontend: transmits on the tx ring, receives from the rx ring."""

    kind = "xennet"
    send_ring, receive_ring = xenring.TX, xenring.RX

    def __init__(self, ifp):
        super().__init__(ifp)
        self.stats = defaultdict(int)
        self.ring_file = None
        self.channel = None
        self.on_down = None  # the xenbus service's callback: on_down(reason, or None when the peer left)
        self.down = None  # why the link went down, once it has
        self._input = None  # the interface's, while it runs
        self._scope = None
        self._queue = []  # frames waiting for room on the transmit ring

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
        self.drop_queue()

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
        """Drain the kicks, then the rings; sleep on the event channel only when there is nothing to do.

        A kick means frames on the receive ring or room on the transmit ring
        (Xen's one event channel per vif): every wake-up writes what waits in
        the send queue, then takes a batch.
        """
        with scope:
            while self.down is None:
                self.channel.drain()
                if self._queue:
                    self._flush()
                    if self.down is not None:
                        return  # the flush found the ring broken: the link is down
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
        """A batch from the receive ring, kicking the peer if it waits for the slots this freed; None once down."""
        if not self.ring_file.intact():
            self._link_down(f"{self.ring_file.path}: the ring file changed size")
            return None
        try:
            frames = self.rx.take(BATCH)
            if frames and self.rx.room_wanted(len(frames)):
                self.channel.notify()
            return frames
        except (xenring.RingError, xenring.PeerGone) as e:
            self._link_down(str(e) if isinstance(e, xenring.RingError) else None)
            return None

    def transmit(self, frames):
        """A batch onto the transmit ring, one kick for all of it.

        What does not fit waits in the send queue, which the receive task
        writes when the peer says it emptied slots; only what does not fit
        in the queue either is dropped and counted.
        """
        if self.down is not None or self.ring_file is None:
            self.drop(len(frames))
            return
        self.hold(frames)
        self._flush()

    def _flush(self):
        """As much of the send queue as the ring has room for; on a full ring, ask the peer for a kick.

        A link that goes down stops the driver, which drops the queue and counts it.
        """
        if not self.ring_file.intact():
            self._link_down(f"{self.ring_file.path}: the ring file changed size")
            return
        try:
            sent = self.tx.put(self._queue)
            if sent < len(self._queue):
                self.tx.want_room()
                sent += self.tx.put(self._queue[sent:])  # the peer may have emptied slots before it saw event
            if sent:
                self.channel.notify()
        except (xenring.RingError, xenring.PeerGone) as e:
            self._link_down(str(e) if isinstance(e, xenring.RingError) else None)
            return
        self.ifp.counters.count_output(self._queue[:sent])
        del self._queue[:sent]

    def _link_down(self, reason):
        """Stop using the link: say why (a corrupt ring) and let the xenbus service change the state."""
        if self.down is not None:
            return
        self.down = reason or "peer gone"
        if reason:
            log.warning(f"{self.ifp.name}: {reason}; link down")
        self.ifp.flags &= ~IFF_RUNNING  # the link carries nothing any more
        self.stop()
        if self._scope is not None:
            self._scope.cancel()
        if self.on_down is not None:
            self.on_down(reason)
