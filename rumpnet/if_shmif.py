"""shmif(4): an Ethernet interface whose wire is a shmif bus file.

The driver turns bus records into Ethernet input and Ethernet output into bus
records. A node's receive loop drains every new record in one batch, runs
each through the stack in place, and wakes the other readers once for all
the frames the batch made the node send.

The bus file is anyone's to write, so the driver trusts none of it. Before
it touches the mapping it checks the file's size; before it reads or writes
the ring it checks the header under the lock. A bus that shrank or stopped
being a bus is reported once on standard error (the node's log) and counted,
left alone, and used again once it is a bus again. The lock is never waited
for in a way that stops the event loop: output that finds it held queues its
frames, and a task of the interface sends them in one burst once it is free.
"""

import errno
import os
import sys

import trio

from . import bus as shmbus
from . import offload
from .ifnet import IFF_RUNNING, Interface, InterfaceError
from .inotify import ModifyWatch

BATCH = 64  # frames the receive loop runs through the stack before it lets other tasks run
BATCH_BYTES = 16 * 1024  # and bytes: a batch must fit a socket's default queue, which its reader drains after
SEND_QUEUE = 256  # frames output holds while the bus lock is busy; more are dropped and counted


def random_mac():
    """b2:a0 and four random bytes, as libshmif picks them."""
    return b"\xb2\xa0" + os.urandom(4)


def log(message):
    print(f"rumpnet: {message}", file=sys.stderr, flush=True)


class ShmifInterface(Interface):
    kind = "shmif"

    def __init__(self, name, stats):
        super().__init__(name=name, mac=random_mac(), capabilities=offload.SHMIF_CAPABILITIES)
        self.sender = shmbus.new_sender()
        self.stats = stats
        self.bus = None
        self.cursor = None
        self.watch = None
        self.trouble = None  # why the bus cannot be used now, or None
        self._unlinked_told = False
        self._queue = []  # frames waiting for the bus lock
        self._sender_waits = False  # the send task is waiting for the lock: output only queues
        self._send_wanted = None
        self._deferred = 0
        self._dirty = False
        self._scope = None
        self._noted = (0, 0, 0)  # the bus events already added to the node's counters

    # -- the link ------------------------------------------------------------

    def linkstr(self):
        """The bus path, marked when the path no longer names the file in use (removed or replaced)."""
        if self.bus is None:
            return None
        return self.bus.path if self.bus.same_file() else f"{self.bus.path} (deleted)"

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
        self.trouble = None
        self._unlinked_told = False

    def detach(self):
        self.stop()
        if self.bus is not None:
            self.watch.close()
            self.bus.close()
            self.bus = self.cursor = self.watch = None

    # -- running -------------------------------------------------------------

    def start(self, nursery, ether_input):
        """Bring the link up: start reading the bus (BSD's if_init).

        The cursor is placed after the newest record by the first task to get
        the lock, not here: ifconfig must not wait for the lock either.
        """
        if self.bus is None:
            raise InterfaceError(errno.ENXIO, f"{self.name}: no bus; set one with linkstr first")
        if self.running:
            return
        self.flags |= IFF_RUNNING
        self._noted = (0, 0, self.bus.locks_stolen)  # a new cursor has seen nothing yet
        self.cursor = shmbus.Cursor(self.bus, lock=False)
        self._send_wanted = trio.Event()
        self._scope = trio.CancelScope()
        nursery.start_soon(self._run, ether_input, self._scope)

    def stop(self):
        self.flags &= ~IFF_RUNNING
        self._drop(len(self._queue))
        self._queue = []
        self._sender_waits = False
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _run(self, ether_input, scope):
        with scope:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._receive_loop, ether_input)
                tasks.start_soon(self._send_loop)

    async def _receive_loop(self, ether_input):
        """Drain the bus in batches and sleep on inotify only when it has nothing new.

        The drain comes before the read, so a write after it wakes the next
        wait and none is missed. Each wake-up starts with the size check that
        makes touching the mapping safe.
        """
        watch, cursor, bus = self.watch, self.cursor, self.bus
        while True:
            watch.drain()
            problem = bus.fault()
            self._note_unlinked()
            if problem:
                self._report(problem)
                await watch.wait()
                continue
            if self.trouble is None and cursor.witness is not None and cursor.caught_up():
                await watch.wait()
                continue
            if not await self._take(checked=True):
                await watch.wait()
                continue
            try:
                records = cursor.read_locked(BATCH, self.sender, BATCH_BYTES)
            finally:
                bus.unlock()
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

    # -- the bus lock and the bus's health -----------------------------------------

    def _grab(self, wait=None, checked=False):
        """One try for the bus: True holding the lock on a sane bus, False when the bus cannot be
        used (reported), None when the lock is held by someone else.

        The header is checked before the lock word is touched (a file that is
        no longer a bus is not written, not even its lock word) and again
        under the lock, which is what writers and readers rely on.
        """
        bus = self.bus
        problem = None if checked else bus.fault()
        if problem is None:
            if not bus.try_lock() and not (wait is not None and wait.take_over()):
                return None
            problem = bus.header_fault()
            if problem is None:
                if self.cursor.witness is None:  # the first look: only what is written from now on
                    self.cursor.catch_up()
                elif self.trouble is not None:
                    self._resume()
                return True
            bus.unlock()
        self._report(problem)
        return False

    async def _take(self, checked=False):
        """_grab until it answers, sleeping 1 ms between tries: waiting never stops the event loop."""
        got = self._grab(checked=checked)
        wait = None
        while got is None:
            wait = wait or shmbus.LockWait(self.bus)
            await trio.sleep(shmbus.LOCK_POLL)
            got = self._grab(wait)
        return got

    def _report(self, problem):
        if self.trouble is None:
            log(f"{self.name}: {problem}; not using it until it is a shmif bus again")
            self.stats.shmif["bus_unusable"] += 1
        self.trouble = problem

    def _resume(self):
        log(f"{self.name}: {self.bus.path}: a shmif bus again; using it")
        self.trouble = None
        self.cursor.resume()

    def _note_unlinked(self):
        if self.bus.unlinked and not self._unlinked_told:
            log(f"{self.name}: {self.bus.path}: bus file removed or replaced; "
                "staying on the file already open (a node attaching now gets another bus)")
            self.stats.shmif["bus_unlinked"] += 1
            self._unlinked_told = True

    # -- output ----------------------------------------------------------------

    def output(self, frame, csum_flags=0):
        """Put one Ethernet frame on the bus, with the sums the stack left to us (TX offload).

        Frames are queued and written in bursts: at once, at the end of a
        deferred_wakeup() block, or by the send task once a busy lock is free.
        """
        if not self.running:
            self.counters.oerrors += 1
            raise InterfaceError(errno.ENETDOWN, f"{self.name} is down")
        if csum_flags:
            frame = offload.finish_tx(frame, csum_flags)
        if len(self._queue) >= SEND_QUEUE:
            self._drop(1)
            return
        self._queue.append(frame)
        if not self._sender_waits and (not self._deferred or len(self._queue) >= SEND_QUEUE):
            self._flush()

    def _flush(self):
        got = self._grab()
        if got is None:
            self._sender_waits = True
            self._send_wanted.set()
        else:
            self._send_queued(got)

    async def _send_loop(self):
        while True:
            await self._send_wanted.wait()
            self._send_wanted = trio.Event()
            got = await self._take()
            self._sender_waits = False
            self._send_queued(got)

    def _send_queued(self, got):
        """Write the queue in one burst if got (the lock is held), drop it if the bus is unusable."""
        frames, self._queue = self._queue, []
        if not got:
            self._drop(len(frames))
            return
        try:
            for frame in frames:
                self.cursor.append(frame, self.sender)
        finally:
            self.bus.unlock()
        counters = self.counters
        for frame in frames:
            counters.opackets += 1
            counters.obytes += len(frame)
            if frame[0] & 1:
                counters.omcasts += 1
        self._dirty = bool(self._deferred)
        if not self._deferred:
            self.bus.wakeup()

    def _drop(self, count):
        self.stats.shmif["send_dropped"] += count
        self.counters.oerrors += count

    def deferred_wakeup(self):
        return _Deferral(self)


class _Deferral:
    """While inside, output() only queues; one burst and one wake-up follow at the end."""

    def __init__(self, ifp):
        self.ifp = ifp

    def __enter__(self):
        self.ifp._deferred += 1

    def __exit__(self, *exc):
        ifp = self.ifp
        ifp._deferred -= 1
        if ifp._deferred or ifp.bus is None:
            return
        if ifp._queue and not ifp._sender_waits:
            ifp._flush()
        if ifp._dirty:
            ifp._dirty = False
            ifp.bus.wakeup()
