"""shmif(4): an Ethernet interface whose wire is a shmif bus file.

The driver turns bus records into Ethernet input and Ethernet output into bus
records. A node's receive loop drains every new record in one batch, runs
each through the stack in place, and wakes the other readers once for all
the frames the batch made the node send.
"""

import errno
import os

import trio

from . import bus as shmbus
from . import offload
from .ifnet import IFF_RUNNING, Interface, InterfaceError
from .inotify import ModifyWatch

BATCH = 64  # frames the receive loop runs through the stack before it lets other tasks run
BATCH_BYTES = 16 * 1024  # and bytes: a batch must fit a socket's default queue, which its reader drains after


def random_mac():
    """b2:a0 and four random bytes, as libshmif picks them."""
    return b"\xb2\xa0" + os.urandom(4)


class ShmifInterface(Interface):
    kind = "shmif"

    def __init__(self, name, stats):
        super().__init__(name=name, mac=random_mac(), capabilities=offload.SHMIF_CAPABILITIES)
        self.sender = shmbus.new_sender()
        self.stats = stats
        self.bus = None
        self.cursor = None
        self.watch = None
        self._deferred = 0
        self._dirty = False
        self._receiver = None
        self._noted = (0, 0, 0)  # the bus events already added to the node's counters

    # -- the link ------------------------------------------------------------

    def linkstr(self):
        return self.bus.path if self.bus else None

    def attach(self, path):
        """Connect to the bus file at path (ifconfig linkstr)."""
        if self.up:
            raise InterfaceError(errno.EBUSY, f"{self.name}: linkstr cannot change while the interface is up")
        if self.bus is not None:
            raise InterfaceError(errno.EBUSY, f"{self.name}: already on bus {self.bus.path}; destroy it first")
        try:
            bus = shmbus.Bus(path)
        except shmbus.BusError as e:
            raise InterfaceError(errno.ENOEXEC, str(e)) from None
        try:
            watch = ModifyWatch(bus.path)
        except OSError as e:
            bus.close()
            raise InterfaceError(e.errno, str(e)) from None
        self.bus, self.watch = bus, watch

    def detach(self):
        self.stop()
        if self.bus is not None:
            self.watch.close()
            self.bus.close()
            self.bus = self.cursor = self.watch = None

    # -- running -------------------------------------------------------------

    def start(self, nursery, ether_input):
        """Bring the link up: start reading the bus (BSD's if_init)."""
        if self.bus is None:
            raise InterfaceError(errno.ENXIO, f"{self.name}: no bus; set one with linkstr first")
        if self.running:
            return
        self.flags |= IFF_RUNNING
        self._noted = (0, 0, self.bus.locks_stolen)  # a new cursor has seen nothing yet
        self.cursor = shmbus.Cursor(self.bus)
        self._receiver = trio.CancelScope()
        nursery.start_soon(self._receive_loop, ether_input, self._receiver)

    def stop(self):
        self.flags &= ~IFF_RUNNING
        if self._receiver is not None:
            self._receiver.cancel()
            self._receiver = None

    async def _receive_loop(self, ether_input, scope):
        """Drain the bus in batches and sleep on inotify only when it has nothing new.

        The drain comes before the read, so a write after it wakes the next
        wait and none is missed. A stopped interface may already have a
        wake-up queued: the loop checks its scope before touching the bus.
        """
        watch, cursor = self.watch, self.cursor
        with scope:
            while not scope.cancel_called:
                watch.drain()
                records = cursor.read(BATCH, self.sender, BATCH_BYTES)
                if not records:
                    await watch.wait()
                    continue
                with self.deferred_wakeup():
                    for record in records:
                        self._input(record, ether_input)
                self._note_bus_events()
                await trio.lowlevel.checkpoint()

    def _input(self, record, ether_input):
        frame = record.frame
        if len(frame) < shmbus.MIN_FRAME:
            self.stats.shmif["runt"] += 1
            return
        dst = frame[:6]
        if dst != self.mac and not dst[0] & 1:
            return
        if len(frame) > shmbus.MAX_FRAME:  # only counted by the node it was meant for
            self.stats.shmif["oversized"] += 1
            self.counters.ierrors += 1
            return
        self.counters.ipackets += 1
        self.counters.ibytes += len(frame)
        if dst[0] & 1:
            self.counters.imcasts += 1
        capenable = self.capenable
        ether_input(self, frame, offload.check_rx(frame, capenable) if capenable & offload.RX_BITS else 0)

    def _note_bus_events(self):
        """Add what the bus code counted since last time: the counters are the node's, for every bus."""
        now = self.cursor.laps, self.cursor.corrupt, self.bus.locks_stolen
        shmif = self.stats.shmif
        for name, new, old in zip(("bus_laps", "bus_corrupt", "locks_stolen"), now, self._noted):
            shmif[name] += new - old
        self._noted = now

    # -- output ----------------------------------------------------------------

    def output(self, frame, csum_flags=0):
        """Put one Ethernet frame on the bus, with the sums the stack left to us (TX offload);
        wake the readers now or at the batch's end."""
        if not self.running:
            self.counters.oerrors += 1
            raise InterfaceError(errno.ENETDOWN, f"{self.name} is down")
        if csum_flags:
            frame = offload.finish_tx(frame, csum_flags)
        self.bus.lock()
        try:
            self.cursor.append(frame, self.sender)
        finally:
            self.bus.unlock()
        self.counters.opackets += 1
        self.counters.obytes += len(frame)
        if frame[0] & 1:
            self.counters.omcasts += 1
        if self._deferred:
            self._dirty = True
        else:
            self.bus.wakeup()

    def deferred_wakeup(self):
        return _Deferral(self)


class _Deferral:
    """While inside, output() only marks the bus; one wake-up follows at the end."""

    def __init__(self, ifp):
        self.ifp = ifp

    def __enter__(self):
        self.ifp._deferred += 1

    def __exit__(self, *exc):
        ifp = self.ifp
        ifp._deferred -= 1
        if not ifp._deferred and ifp._dirty:
            ifp._dirty = False
            if ifp.bus is not None:
                ifp.bus.wakeup()
