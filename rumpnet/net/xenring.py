"""The shared ring pair of a xennet/xvif link, and the event channel that says "look at the ring".

Xen's netfront and netback share pages granted by the guest, each a ring
of slots with producer and consumer indices (xen/io/ring.h), and kick each
other through an event channel. Here the frontend creates one ring-pair
file in the store's grant directory; both nodes map it:

    offset 0            tx ring: the guest produces, the backend consumes
    offset RING_BYTES   rx ring: the backend produces, the guest consumes

Each ring (host byte order, as ring.h's shared pages):

    u32 prod      the producer's free-running count of slots filled (ring.h's req_prod)
    u32 cons      the consumer's free-running count of slots emptied (ring.h's req_cons, shared)
    u32 event     the producer wants a kick once cons passes it (ring.h's rsp_event)
    52 bytes      padding to one cache line
    SLOTS slots of SLOT_BYTES: u16 length, then the Ethernet frame

A single producer and a single consumer per ring, so no lock: the producer
writes slots, then prod; the consumer reads slots up to prod, then cons.
The other process reads an index while it is being written, so each is
read and written as one aligned 32-bit word through a memoryview of the
mapping (what ring.h's plain u32 stores are). struct.pack_into will not
do: it zero-fills its field before writing the value, and a peer that
looks in between sees an index of 0 and takes the ring for corrupt.
The peer writes these words, so a consumer checks every one before use:
more than SLOTS slots outstanding, or a length outside 14..1514, is a
corrupt ring (RingError) and the link goes down; it is never read past.

A producer that finds the ring full keeps its frames (the driver's send
queue) and sets event to the next slot to be emptied; the consumer, having
emptied slots, kicks it if event was among them, as netback answers
netfront's requests and notifies it when rsp_event says so. The producer
sets event, then looks at cons again, so a consumer that emptied the ring
in between is not missed (ring.h's final check). ring.h puts a full
barrier between each side's store and its load of the other's word;
Python offers none, and relies on the microsecond of interpreted steps
between them, far longer than a store takes to reach the other core. A
kick missed all the same would leave the queue waiting for the next frame
either way. event is only ever a reason to kick: whatever the peer writes there costs at most one kick per
batch taken.

The event channel is a pair of FIFOs: each side writes a byte to the
other's FIFO after a batch and sleeps on its own until woken. A FIFO whose
only writer is gone reads as end of file, which is how a backend notices a
guest that died (Xen's toolstack learns it from the hypervisor).
"""

import errno
import mmap
import os
import stat
import struct

import trio

SLOTS = 128
SLOT_BYTES = 2048
HEADER = struct.Struct("=III52x")
WORDS = struct.Struct("=III")  # the header's words, as one view
LENGTH = struct.Struct("=H")
MIN_FRAME = 14
MAX_FRAME = 1514
RING_BYTES = HEADER.size + SLOTS * SLOT_BYTES
FILE_BYTES = 2 * RING_BYTES
TX, RX = 0, 1  # the rings, named from the guest's side
MASK = 0xFFFFFFFF


class RingError(Exception):
    """A ring the peer left in a state no correct peer can: the link must go down."""


class Ring:
    """One ring of the pair, over a writable buffer (the mapping) at offset base."""

    def __init__(self, buffer, which):
        self.buf = buffer
        self.base = which * RING_BYTES
        self.name = "tx" if which == TX else "rx"

    def _words(self):
        """prod, cons and event (words 0, 1, 2) as 32-bit words of the mapping, each read one load and each
        store one store. For a with block, whose end releases the view, so that the mapping can be closed."""
        return memoryview(self.buf)[self.base:self.base + WORDS.size].cast("I")

    def _indices(self):
        """(prod, cons)."""
        with self._words() as words:
            return words[0], words[1]

    def _word(self, word):
        with self._words() as words:
            return words[word]

    def _publish(self, word, value):
        """Store a word, never passing through another value (struct.pack_into would zero it first)."""
        with self._words() as words:
            words[word] = value & MASK

    def reset(self):
        HEADER.pack_into(self.buf, self.base, 0, 0, 0)

    def _pending(self, prod, cons):
        """Slots filled and not yet emptied; RingError when the indices say what no correct peer can."""
        pending = (prod - cons) & MASK
        if pending <= SLOTS:
            return pending
        if (cons - prod) & MASK <= SLOTS:
            raise RingError(f"{self.name} ring: consumer index {cons} is ahead of producer index {prod}")
        raise RingError(f"{self.name} ring: producer index {prod} is {pending} slots ahead of "
                        f"consumer index {cons} (the ring has {SLOTS})")

    def _slot(self, index):
        return self.base + HEADER.size + (index % SLOTS) * SLOT_BYTES

    def put(self, frames):
        """Producer: as many frames as there is room for; returns how many went in."""
        prod, cons = self._indices()
        count = min(SLOTS - self._pending(prod, cons), len(frames))
        for n in range(count):
            frame = frames[n]
            at = self._slot(prod + n)
            LENGTH.pack_into(self.buf, at, len(frame))
            self.buf[at + LENGTH.size:at + LENGTH.size + len(frame)] = frame
        if count:
            self._publish(0, prod + count)
        return count

    def want_room(self):
        """Producer, on a full ring: ask for a kick once the consumer empties the next slot.

        The caller puts again afterwards (ring.h's final check): a consumer
        that emptied slots before event was written did not kick.
        """
        self._publish(2, self._word(1) + 1)

    def room_wanted(self, freed):
        """Consumer, having just emptied freed slots: whether the producer asked for a kick among them."""
        cons = self._word(1)
        return (cons - self._word(2)) & MASK < freed

    def take(self, limit):
        """Consumer: up to limit frames, oldest first, each checked; RingError when the ring is corrupt."""
        prod, cons = self._indices()
        pending = self._pending(prod, cons)
        frames = []
        for n in range(min(pending, limit)):
            at = self._slot(cons + n)
            (length,) = LENGTH.unpack_from(self.buf, at)
            if not MIN_FRAME <= length <= MAX_FRAME:
                raise RingError(f"{self.name} ring: slot {(cons + n) % SLOTS} holds a frame of {length} bytes "
                                f"(a frame is {MIN_FRAME} to {MAX_FRAME})")
            frames.append(bytes(self.buf[at + LENGTH.size:at + LENGTH.size + length]))
        if frames:
            self._publish(1, cons + len(frames))
        return frames


class RingFile:
    """The mapped ring-pair file; create() for the frontend, open() for the backend."""

    def __init__(self, path, fd):
        self.path = path
        self.fd = fd
        self.map = mmap.mmap(fd, FILE_BYTES)

    @classmethod
    def create(cls, path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, FILE_BYTES)
            return cls(path, fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def open(cls, path):
        """The frontend's file, after checking it is one; RingError saying why not."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise RingError(f"{path}: cannot open ring: {os.strerror(e.errno)}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise RingError(f"{path}: not a regular file; a ring pair is a file of {FILE_BYTES} bytes")
            if info.st_size != FILE_BYTES:
                raise RingError(f"{path}: {info.st_size} bytes; a ring pair is {FILE_BYTES}")
            return cls(path, fd)
        except BaseException:
            os.close(fd)
            raise

    def ring(self, which):
        return Ring(self.map, which)

    def intact(self):
        """Whether the file still has its size: a shrunk file would fault on access to the mapping."""
        try:
            return os.fstat(self.fd).st_size == FILE_BYTES
        except OSError:
            return False

    def close(self):
        if self.fd >= 0:
            self.map.close()
            os.close(self.fd)
            self.fd = -1


class PeerGone(Exception):
    """The other end of the event channel closed it: its node ended."""


def _open_fifo(path, mode):
    """A FIFO opened non-blocking, and nothing else: a link or a regular file planted there is refused."""
    fd = os.open(path, mode | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path}: not a FIFO")
    return fd


class EventChannel:
    """Our FIFO to sleep on, and the peer's to kick; both non-blocking."""

    def __init__(self, listen_path):
        self.listen = _open_fifo(listen_path, os.O_RDONLY)
        self.kick = -1

    def connect(self, kick_path):
        """Open the peer's FIFO for writing; it must be listening (ENXIO otherwise)."""
        self.kick = _open_fifo(kick_path, os.O_WRONLY)

    def notify(self):
        """Wake the peer; a full FIFO already holds a wake-up. PeerGone when no one listens."""
        try:
            os.write(self.kick, b"!")
        except BlockingIOError:
            pass
        except BrokenPipeError:
            raise PeerGone() from None

    def drain(self):
        """Consume the kicks queued so far, so that a kick after this wakes the next wait()."""
        while True:
            try:
                if len(os.read(self.listen, 4096)) < 4096:
                    return
            except BlockingIOError:
                return

    async def wait(self):
        """Sleep until kicked; PeerGone once the peer, having opened its end, closed it.

        poll(2) on a FIFO reports a hang-up only after a writer has come and
        gone, never before the first one, so waiting is safe from the start.
        A waiter already woken when its driver is cancelled and the channel
        closed (both in the same turn of the scheduler) meets the cancellation
        before it reads: the descriptor is gone by then. A waiter whose channel
        is closed under it, cancelled or not, gets trio.ClosedResourceError.
        """
        while True:
            await trio.lowlevel.wait_readable(self._listening())
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                data = os.read(self._listening(), 4096)
            except BlockingIOError:
                continue
            if not data:
                raise PeerGone()
            return

    def _listening(self):
        if self.listen < 0:
            raise trio.ClosedResourceError("the event channel is closed")
        return self.listen

    def close(self):
        """Close both FIFOs; a task waiting on ours is woken first (trio must be told before the fd goes)."""
        if self.listen >= 0:
            trio.lowlevel.notify_closing(self.listen)
        for fd in (self.listen, self.kick):
            if fd >= 0:
                os.close(fd)
        self.listen = self.kick = -1
