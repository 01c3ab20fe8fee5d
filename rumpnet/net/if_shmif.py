"""shmif(4): an Ethernet interface whose wire is a shmif bus file.

The driver turns bus records into batches of received frames and batches of
frames to send into bus records (the Driver contract of ifnet.py). Its
receive loop drains every new record in one batch, which the interface runs
through the stack in place; the frames that batch made the node send come
back as one batch, written under one lock with one wake-up for the readers.

The bus file is anyone's to write, so the driver trusts none of it. Before
it touches the mapping it checks the file's size; before it reads or writes
the ring it checks the header under the lock. A bus that shrank or stopped
being a bus is reported once on standard error (the node's log) and counted,
left alone, and used again once it is a bus again. The lock is never waited
for in a way that stops the event loop: transmit that finds it held queues
its frames, and a task of the driver sends them in one burst once it is free.
"""

from collections import defaultdict
import errno
import logging
import time

import trio

from . import bus as shmbus
from . import offload
from .if_clone import register_driver
from .ifnet import Driver, InterfaceError
from .inotify import IN_MODIFY, ModifyWatch

BATCH = 64  # frames the receive loop runs through the stack before it lets other tasks run
BATCH_BYTES = 32 * 1024  # and bytes: a batch must fit a socket's default queue (net.inet.udp.recvspace, 41600), which its reader drains after
LOCK_SPIN = 0.0005  # seconds a busy bus lock is retried between other tasks before it is polled every 1 ms
CORRUPT_LOG_INTERVAL = 10.0  # seconds between log lines about a corrupt ring (each one is counted)


log = logging.getLogger(__name__)  # the node's log: its faults at WARNING, news at INFO


def ratecheck(driver, interval):
    """BSD's ratecheck(9): True at most once per interval seconds, so a hostile writer cannot flood the log."""
    now = trio.current_time()
    if driver.last_logged is not None and now - driver.last_logged < interval:
        return False
    driver.last_logged = now
    return True


class ShmifDriver(Driver):
    """The shmif(4) driver: a bus file as the medium; the linkstr is its path."""

    kind = "shmif"
    needs_linkstr = True
    capabilities = offload.SHMIF_CAPABILITIES

    def __init__(self, ifp):
        super().__init__(ifp)
        self.name = ifp.name
        self.stats = defaultdict(int)
        self.sender = shmbus.new_sender()
        self.bus = None
        self.cursor = None
        self.watch = None
        self.trouble = None  # why the bus cannot be used now, or None
        self._unlinked_told = False
        self.last_logged = None  # when the last corrupt ring was logged (ratecheck)
        self._queue = []  # frames waiting for the bus lock
        self._sender_waits = False  # the send task is waiting for the lock: transmit only queues
        self._in_batch = False  # a received batch is going up: the bus was checked at its wake-up
        self._send_wanted = None
        self._scope = None
        self._noted = (0, 0, 0)  # the bus events already added to the counters

    # -- the link ------------------------------------------------------------

    def linkstr(self):
        """The bus path, marked when the path no longer names the file in use (removed or replaced)."""
        if self.bus is None:
            return None
        return self.bus.path if self.bus.same_file() else f"{self.bus.path} (deleted)"

    def attach(self, path):
        """Connect to the bus file at path (ifconfig linkstr)."""
        if self.ifp.up:
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
        self._check_link()  # removed before the watch was set: no IN_ATTRIB would tell

    def detach(self):
        self.stop()
        if self.bus is not None:
            self.watch.close()
            self.bus.close()
            self.bus = self.cursor = self.watch = None

    # -- running -------------------------------------------------------------

    def start(self, nursery, input):
        """Start reading the bus (BSD's if_init).

        The cursor is placed after the newest record by the first task to get
        the lock, not here: ifconfig must not wait for the lock either.
        """
        if self.bus is None:
            raise InterfaceError(errno.ENXIO, f"{self.name}: no bus; set one with linkstr first")
        self._noted = (0, 0, self.bus.locks_stolen)  # a new cursor has seen nothing yet
        self.cursor = shmbus.Cursor(self.bus, lock=False)
        self._send_wanted = trio.Event()
        self._scope = trio.CancelScope()
        nursery.start_soon(self._run, input, self._scope)

    def stop(self):
        self.drop_queue()
        self._sender_waits = False
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None

    async def _run(self, input, scope):
        with scope:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._receive_loop, input, scope)
                tasks.start_soon(self._send_loop, scope)

    async def _receive_loop(self, input, scope):
        """Drain the bus in batches and sleep on inotify only when it has nothing new.

        The drain comes before the read, so a write after it wakes the next
        wait and none is missed; so a batch that read up to the newest record
        goes straight back to sleep, without another drain, size check and
        look at the header that would find nothing (half of an idle bus's
        Python per frame). A wake-up stands for a write (a writer takes back
        its own, _take_back_own_wakeup), so it goes straight for the lock; the
        lockless look at the header is for a pass nothing woke. Each wake-up
        starts with the size check that makes
        touching the mapping safe, and the replies the batch sends rely on it
        too. A task already woken when stop() cancels it runs on to its next
        checkpoint: it checks the scope first, as the bus may be closed by then.
        """
        cursor, bus = self.cursor, self.bus
        while not scope.cancel_called:
            woken = self._drain()
            problem = bus.fault()
            if problem:
                self._report(problem)
                await self._sleep()
                continue
            if not woken and self.trouble is None and cursor.witness is not None and cursor.caught_up():
                await self._sleep()
                continue
            if not await self._take(checked=True):
                await self._sleep()
                continue
            try:
                read = cursor.read_locked(BATCH, self.sender, BATCH_BYTES, frames=True)
            finally:
                bus.unlock()
            frames = [frame for frame in read if shmbus.MIN_FRAME <= len(frame) <= shmbus.MAX_FRAME]
            if len(frames) < len(read):
                self._count_insane(read)
            if frames:
                self._in_batch = True
                try:
                    input(frames)
                finally:
                    self._in_batch = False
            self._note_bus_events()
            if cursor.pos == cursor.seen_end:  # all read: anything newer was written after the drain
                await self._sleep()
            else:
                await trio.lowlevel.checkpoint()

    async def _sleep(self):
        """Wait for a write to the bus, counting the wake-ups (netstat -s -p shmif)."""
        await self.watch.wait()
        self.stats["wakeups"] += 1

    def _count_insane(self, frames):
        """Count the frames a shmif reader does not deliver (libshmif's size rules: the batch kept the rest)."""
        for frame in frames:
            if len(frame) < shmbus.MIN_FRAME:
                self.stats["runt"] += 1
            elif len(frame) > shmbus.MAX_FRAME:
                self.stats["oversized"] += 1
                self.ifp.counters.ierrors += 1

    def _note_bus_events(self):
        """Add what the bus code counted since last time."""
        now = self.cursor.laps, self.cursor.corrupt, self.bus.locks_stolen
        if now == self._noted:  # the usual batch: nothing to note
            return
        if now[1] > self._noted[1] and ratecheck(self, CORRUPT_LOG_INTERVAL):
            log.warning(f"{self.name}: {self.bus.path}: corrupt ring or header; skipped to the newest record "
                        f"(netstat -s counts every time)")
        for name, new, old in zip(("bus_laps", "bus_corrupt", "locks_stolen"), now, self._noted):
            self.stats[name] += new - old
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
        """_grab until it answers; waiting never stops the event loop.

        A live holder keeps the lock for microseconds, so the first tries
        come after a trip through the scheduler (other tasks run meanwhile);
        only a lock still held after LOCK_SPIN seconds is polled every 1 ms,
        as libshmif sleeps. Sleeping at once made a busy bus lose most of its
        frames: the reader slept while the writers lapped it.
        """
        got = self._grab(checked=checked)
        if got is not None:
            return got
        wait = shmbus.LockWait(self.bus)
        spin_until = time.monotonic() + LOCK_SPIN
        while got is None:
            if time.monotonic() < spin_until:
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(shmbus.LOCK_POLL)
            got = self._grab(wait)
        return got

    def _report(self, problem):
        if self.trouble is None:
            log.warning(f"{self.name}: {problem}; not using it until it is a shmif bus again")
            self.stats["bus_unusable"] += 1
        self.trouble = problem

    def _resume(self):
        log.info(f"{self.name}: {self.bus.path}: a shmif bus again; using it")
        self.trouble = None
        self.cursor.resume()

    def _drain(self):
        """Consume the watch's events (their mask): what is not a write (IN_ATTRIB, the link count
        among it; an overflow) has the file's name looked at at once, whichever drain takes it."""
        mask = self.watch.drain()
        if mask & ~IN_MODIFY:
            self._check_link()
        return mask

    def _check_link(self):
        self.bus.check_link()
        if self.bus.unlinked and not self._unlinked_told:
            log.warning(f"{self.name}: {self.bus.path}: bus file removed or replaced; "
                        "staying on the file already open (a node attaching now gets another bus)")
            self.stats["bus_unlinked"] += 1
            self._unlinked_told = True

    # -- output ----------------------------------------------------------------

    def transmit(self, frames):
        """Put a batch of Ethernet frames on the bus: one lock and one wake-up for all of them.

        When the lock is busy the frames wait in a bounded queue, and the send
        task writes them in one burst once it is free.
        """
        self.hold(frames)
        if not self._sender_waits:
            self._flush()

    def _flush(self):
        got = self._grab(checked=self._in_batch)
        if got is None:
            self._sender_waits = True
            self._send_wanted.set()
        else:
            self._send_queued(got)

    async def _send_loop(self, scope):
        while True:
            await self._send_wanted.wait()
            self._send_wanted = trio.Event()
            got = await self._take()
            if scope.cancel_called:
                return
            self._sender_waits = False
            self._send_queued(got)

    def _send_queued(self, got):
        """Write the queue in one burst if got (the lock is held), drop it if the bus is unusable."""
        frames, self._queue = self._queue, []
        if not got:
            self.drop(len(frames))
            return
        try:
            self.cursor.append(frames, self.sender)
        finally:
            self.bus.unlock()
        self.ifp.counters.count_output(frames)
        self.bus.wakeup()
        self._take_back_own_wakeup()

    def _take_back_own_wakeup(self):
        """Consume the wake-up our own write just queued on our own watch, unless it may hide another.

        inotify wakes every watcher of the bus, the writer too; left there,
        each burst would cost the receive loop a pass that finds nothing.
        The drain may also take a peer's wake-up that came before ours, but
        a peer stores `last` before it wakes, so its record shows in the
        look that follows: then, or when the drain held anything but writes
        (the file removed or renamed), the wake-up is given again for the
        receive loop to find. The cursor steps over its own records
        (Cursor.append), so when nothing else came it is caught up.
        """
        if self._drain() & ~IN_MODIFY or not self.cursor.caught_up():
            self.bus.wakeup()


register_driver(ShmifDriver)
