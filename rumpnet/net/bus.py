"""The shmif bus file: a 1 MiB regular file shared as an Ethernet segment.

This module knows the bus format and nothing of any network stack. It is
byte-compatible with NetBSD's libshmif, SHMIF_VERSION 3 (sys/rump/net/lib/
libshmif/shmifvar.h), so a NetBSD rump kernel and a rumpnet node can share one
bus and shmif_dumpbus can read ours.

Layout, host byte order::

    0   u32 magic 0xca11d054       16  u32 first   (offset of the oldest record)
    4   u32 version (3)            20  u32 last    (offset of the newest record)
    8   u64 generation (wraps)     24  u32 lock    (0 free, 1 held)
                                   28  u32 spare
    32  data ring, 1 MiB - 32 bytes

Each record in the ring is a 24-byte header {u32 len, u32 sec, u32 usec,
4 bytes padding, u64 sender} and then len bytes of Ethernet frame; both may
wrap around the end of the ring.
"""

from contextlib import contextmanager, nullcontext
import ctypes
import errno
import mmap
import os
import platform
import stat
import struct
import time
from typing import NamedTuple

MAGIC = 0xCA11D054
VERSION = 3
BUS_SIZE = 1024 * 1024
HEADER = struct.Struct("=IIQIIII")
DATA_OFFSET = HEADER.size  # 32
DATA_SIZE = BUS_SIZE - DATA_OFFSET
RECORD = struct.Struct("=III4xQ")  # len, sec, usec, sender
_U32 = struct.Struct("=I")
_GEN_FIRST_LAST = struct.Struct("=QII")  # the header from offset 8
_MAGIC_TO_LAST = struct.Struct("=IIQII")
MAX_FRAME = 1514  # libshmif asserts this: ETHERMTU + ETHER_HDR_LEN
MIN_FRAME = 14  # shorter records are skipped, as libshmif skips them
WAKEUP_OFFSET = 4  # the version word; a pwrite() there wakes the readers
LOCK_OFFSET = 24
_FIRST = 16
_LAST = 20
_GEN = 8

LOCK_STEAL_AFTER = 0.5  # seconds the lock may stay held before its holder is presumed dead
LOCK_POLL = 0.001  # seconds between tries once the lock was found held, as libshmif sleeps
LOCK_GIVE_UP = 5.0  # seconds a command-line tool waits for a lock that a live writer keeps
_GEN_MASK = (1 << 64) - 1

_libatomic = ctypes.CDLL("libatomic.so.1", use_errno=True)
_cas32 = _libatomic.__atomic_compare_exchange_4
_cas32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_int]
_cas32.restype = ctypes.c_bool
_xchg32 = _libatomic.__atomic_exchange_4
_xchg32.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int]
_xchg32.restype = ctypes.c_uint32
_SEQ_CST = 5
# On x86-64 an aligned 32-bit store is atomic and no earlier store passes it (Linux's spin_unlock
# there is such a store): unlocking needs no atomic exchange, which costs a ctypes call.
_STORE_RELEASES = platform.machine() in ("x86_64", "AMD64")


class BusError(Exception):
    """A bus file that cannot be used; the message names the path and the reason."""


class BusHeader(NamedTuple):
    magic: int
    version: int
    generation: int
    first: int
    last: int
    lock: int


class Record(NamedTuple):
    sender: int
    sec: int
    usec: int
    frame: bytes


def header_problem(magic, version, first, last):
    """What makes these header words unusable, or None: every offset is checked before it is used."""
    if magic != MAGIC:
        return f"not a shmif bus (magic 0x{magic:08x}, expected 0x{MAGIC:08x})"
    if version not in (0, VERSION):
        return f"shmif bus version {version}, this program speaks {VERSION}"
    if first > DATA_SIZE or last >= DATA_SIZE:
        return f"corrupt shmif bus header (first {first}, last {last})"
    return None


def check_header(path, raw):
    """Raise BusError unless raw (the first 32 bytes) is a fresh or a shmif v3 header."""
    magic, version, _gen, first, last, _lock, _spare = HEADER.unpack(raw)
    if magic == 0 and raw.count(0) == len(raw):
        return
    problem = header_problem(magic, version, first, last)
    if problem:
        raise BusError(f"{path}: {problem}")


class Bus:
    """An open bus file: its mapping, its lock word and its ring.

    Opening never damages a file: anything but a regular file of at most
    1 MiB is refused, and so is a foreign or corrupt header, before anything
    is written; an empty file is grown to 1 MiB and initialised as libshmif
    does (magic set, `first` = DATA_SIZE, version left for the first wake-up
    to write).

    Once open, the file is still anyone's to write: `fault()` says whether it
    is still a bus, and must be asked before the mapping is touched (see
    size_fault).
    """

    def __init__(self, path, *, readonly=False):
        self.path = os.fspath(path)
        self.readonly = readonly
        self.locks_stolen = 0
        self.unlinked = False
        self.mem = None
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just after
            self.fd = os.open(self.path, flags | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as e:
            raise BusError(f"{self.path}: cannot open bus: {e.strerror}") from None
        try:
            self._map()
        except BaseException:
            os.close(self.fd)
            raise

    def _map(self):
        st = os.fstat(self.fd)
        if stat.S_ISDIR(st.st_mode):  # opened read-only; read-write it fails at open, as here
            raise BusError(f"{self.path}: cannot open bus: {os.strerror(errno.EISDIR)}")
        if not stat.S_ISREG(st.st_mode):
            raise BusError(f"{self.path}: not a regular file ({_file_kind(st.st_mode)}); a bus is a 1 MiB file")
        size = st.st_size
        if size > BUS_SIZE:
            raise BusError(f"{self.path}: not a shmif bus ({size} bytes, a bus is {BUS_SIZE})")
        if size:
            head = os.pread(self.fd, HEADER.size, 0)
            if len(head) < HEADER.size:
                raise BusError(f"{self.path}: not a shmif bus (only {size} bytes)")
            check_header(self.path, head)
            if size < BUS_SIZE and head.count(0) != len(head):
                raise BusError(f"{self.path}: truncated shmif bus ({size} bytes, expected {BUS_SIZE})")
        if size < BUS_SIZE:
            if self.readonly:
                raise BusError(f"{self.path}: truncated shmif bus ({size} bytes, expected {BUS_SIZE})")
            os.ftruncate(self.fd, BUS_SIZE)
        access = mmap.ACCESS_READ if self.readonly else mmap.ACCESS_WRITE
        self.mem = mmap.mmap(self.fd, BUS_SIZE, access=access)
        if self.readonly:
            self._lockword = None
            return
        self._lockword = ctypes.c_uint32.from_buffer(self.mem, LOCK_OFFSET)
        self._lockaddr = ctypes.c_void_p(ctypes.addressof(self._lockword))
        self._lockview = memoryview(self.mem)[LOCK_OFFSET:LOCK_OFFSET + 4].cast("I")
        self._expected = ctypes.c_uint32(0)  # the CAS's comparand, made once: the lock is taken per burst
        self._expectedaddr = ctypes.c_void_p(ctypes.addressof(self._expected))
        if self._u32(0) == 0:  # a fresh file: initialise it under the lock, once, whoever comes first
            with self.locked():
                if self._u32(0) == 0:
                    struct.pack_into("=I", self.mem, 0, MAGIC)
                    struct.pack_into("=I", self.mem, _FIRST, DATA_SIZE)

    def close(self):
        if self.mem is None:
            return
        self._lockword = None
        if not self.readonly:
            self._lockview.release()
        self.mem.close()
        self.mem = None
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- is it still a bus? ------------------------------------------------

    def size_fault(self):
        """Why the mapping must not be touched now, or None.

        A page of the mapping past the end of a file that shrank kills the
        process with SIGBUS at the first access, and Python cannot catch it;
        so every wake-up and every write burst starts with this check. (A file
        cut between this check and the access still kills: the window is the
        microseconds of one batch.) The size is asked with lseek(2), which
        makes no stat_result.
        """
        size = os.lseek(self.fd, 0, os.SEEK_END)
        if size < BUS_SIZE:
            return f"{self.path}: bus file shrank to {size} bytes"
        return None

    def check_link(self):
        """Note whether the file still has a name: a bus removed or replaced goes on, for those who
        hold it open. An fstat, so asked only when inotify reports IN_ATTRIB (the link count changed)."""
        self.unlinked = os.fstat(self.fd).st_nlink == 0

    def header_fault(self):
        """Why the header is no longer a usable bus header, or None; only after size_fault()."""
        magic, version, _gen, first, last = _MAGIC_TO_LAST.unpack_from(self.mem, 0)
        problem = header_problem(magic, version, first, last)
        return problem and f"{self.path}: {problem}"

    def fault(self):
        return self.size_fault() or self.header_fault()

    def same_file(self):
        """Whether the bus path still names the file this bus has open."""
        try:
            named = os.stat(self.path)
        except OSError:
            return False
        st = os.fstat(self.fd)
        return (named.st_dev, named.st_ino) == (st.st_dev, st.st_ino)

    # -- header ------------------------------------------------------------

    def _u32(self, off):
        return struct.unpack_from("=I", self.mem, off)[0]

    def header(self):
        magic, version, gen, first, last, lock, _ = HEADER.unpack_from(self.mem, 0)
        return BusHeader(magic, version, gen, first, last, lock)

    # -- lock --------------------------------------------------------------

    def try_lock(self):
        if _cas32(self._lockaddr, self._expectedaddr, 1, _SEQ_CST, _SEQ_CST):
            return True
        self._expected.value = 0  # a failed compare-and-swap stores the word it found in the comparand
        return False

    def lock(self):
        """Take the bus lock, sleeping between tries: for command-line tools, never for a node.

        As libshmif: compare-and-swap 0 -> 1, 1000 tries, then sleep 1 ms,
        and again; with LockWait's rule for a dead holder. Unlike libshmif it
        gives up, with BusError, when the bus stops being a bus or a live
        writer keeps the lock for LOCK_GIVE_UP seconds.
        """
        if self.try_lock():
            return
        wait = LockWait(self)
        give_up = time.monotonic() + LOCK_GIVE_UP
        while True:
            for _ in range(1000):
                if self.try_lock():
                    return
            time.sleep(LOCK_POLL)
            problem = self.fault()
            if problem:
                raise BusError(problem)
            if self.try_lock() or wait.take_over():
                return
            if time.monotonic() > give_up:
                raise BusError(f"{self.path}: bus lock held for over {LOCK_GIVE_UP:g} s by a writer that keeps going")

    def _progress(self):
        return _GEN_FIRST_LAST.unpack_from(self.mem, _GEN)

    def unlock(self):
        if _STORE_RELEASES:
            self._lockview[0] = 0
        else:
            _xchg32(self._lockaddr, 0, _SEQ_CST)

    @contextmanager
    def locked(self):
        self.lock()
        try:
            yield
        finally:
            self.unlock()

    def wakeup(self):
        """Wake every reader: a real write(2) at offset 4, which inotify sees."""
        os.pwrite(self.fd, struct.pack("=I", VERSION), WAKEUP_OFFSET)

    # -- ring --------------------------------------------------------------

    def _ring_read(self, off, length):
        """Read length bytes of the ring at off, wrapping; returns (bytes, next offset, wrapped)."""
        start = DATA_OFFSET + off
        chunk = min(length, DATA_SIZE - off)
        data = self.mem[start:start + chunk]
        wrapped = off + chunk == DATA_SIZE
        if chunk == length:
            return data, (off + chunk) % DATA_SIZE, wrapped
        rest = length - chunk
        return data + self.mem[DATA_OFFSET:DATA_OFFSET + rest], rest, True

    def record_length(self, off):
        """The frame length of the record at ring offset off (< DATA_SIZE), or None when it cannot be a record."""
        if off <= DATA_SIZE - _U32.size:
            length = _U32.unpack_from(self.mem, DATA_OFFSET + off)[0]
        else:
            length = _U32.unpack(self._ring_read(off, _U32.size)[0])[0]
        if length >= DATA_SIZE // 2:
            return None
        return length

    def next_offset(self, off):
        """Where the record after the one at off starts (libshmif's shmif_nextpktoff)."""
        length = self.record_length(off)
        if length is None:
            return None
        return (off + RECORD.size + length) % DATA_SIZE

    def _advance_first(self, off, length, first):
        """Move `first` (as the caller read it) past every record that a write of length bytes at off
        overwrites; returns where it is now."""
        moved = first
        while off <= moved + RECORD.size and off + length > moved:
            following = self.next_offset(moved % DATA_SIZE)
            if following is None:
                following = (off + length) % DATA_SIZE
            moved = following
            if length >= DATA_SIZE:
                break
        if moved != first:  # stored once, before any byte of the records it passed is written
            _U32.pack_into(self.mem, _FIRST, moved)
        return moved

    def _ring_write(self, off, data, first):
        chunk = min(len(data), DATA_SIZE - off)
        filled = off + chunk == DATA_SIZE
        first = self._advance_first(off, chunk + (1 if filled else 0), first)
        self.mem[DATA_OFFSET + off:DATA_OFFSET + off + chunk] = data[:chunk]
        if chunk == len(data):
            return filled
        rest = len(data) - chunk
        self._advance_first(0, rest, first)
        self.mem[DATA_OFFSET:DATA_OFFSET + rest] = data[chunk:]
        return True

    def append(self, frames, sender, sec=None, usec=None):
        """Write a record for each frame after the newest; the caller holds the lock, has seen no
        header_fault() under it, and wakes the readers.

        `last` and the generation are stored after each record is complete, so
        a writer killed half-way leaves no torn record behind `last`. Where the
        next record starts and where `first` stands are carried from one
        record to the next, not read back from the header. A burst that stops
        short of the ring's end moves `first` once, past all it will cover:
        readers that take the lock see the header only after the burst, and
        one that finds it cut short (its writer killed) reads up to `last`,
        never into the space between `last` and `first`.
        """
        if sec is None:
            sec, usec = _stamp()
        sec &= 0xFFFFFFFF
        mem = self.mem
        gen, first, last = _GEN_FIRST_LAST.unpack_from(mem, _GEN)
        off = self.next_offset(last)
        if off is None:  # a corrupt newest record: start again at the ring's start
            off = 0
        span = RECORD.size * len(frames) + sum(map(len, frames))
        within = off + span < DATA_SIZE  # the usual burst: every record written in place
        if within:
            first = self._advance_first(off, span, first)
        for frame in frames:
            end = off + RECORD.size + len(frame)
            if end < DATA_SIZE:  # written in place: the record stops short of the ring's end
                if not within:
                    first = self._advance_first(off, end - off, first)
                start = DATA_OFFSET + off
                RECORD.pack_into(mem, start, len(frame), sec, usec, sender)
                mem[start + RECORD.size:DATA_OFFSET + end] = frame
            else:
                if self._ring_write(off, RECORD.pack(len(frame), sec, usec, sender) + frame, first):
                    gen = (gen + 1) & _GEN_MASK
                    struct.pack_into("=Q", mem, _GEN, gen)
                first = _U32.unpack_from(mem, _FIRST)[0]
                end -= DATA_SIZE
            _U32.pack_into(mem, _LAST, off)
            off = end

    def records(self):
        """Every record on the bus from `first` to `last`, oldest first (as shmif_dumpbus walks)."""
        problem = self.fault()
        if problem:
            raise BusError(problem)
        header = self.header()
        off = 0 if header.first == DATA_SIZE else header.first
        for _ in range(DATA_SIZE // RECORD.size + 1):
            raw, after, _ = self._ring_read(off, RECORD.size)
            length, sec, usec, sender = RECORD.unpack(raw)
            if length >= DATA_SIZE // 2:
                raise BusError(f"{self.path}: corrupt record at offset {off} (length {length})")
            frame, after, _ = self._ring_read(after, length)
            if length:
                yield Record(sender, sec, usec, frame)
            if off == header.last:
                return
            off = after
        raise BusError(f"{self.path}: corrupt ring: no record ends at last ({header.last})")

    def send(self, frames, sender):
        """Append frames under the lock and wake the readers once; BusError if it is no longer a bus."""
        problem = self.fault()
        if problem:
            raise BusError(problem)
        with self.locked():
            problem = self.header_fault()
            if problem:
                raise BusError(problem)
            self.append(frames, sender)
        self.wakeup()


class LockWait:
    """What to do about a bus lock found held: wait, or take it over from a dead holder.

    libshmif waits forever; a holder killed with the lock would stop the bus
    for good. A live holder, rumpnet or libshmif, keeps the lock for
    microseconds, so a lock held for LOCK_STEAL_AFTER seconds while the ring
    does not move is taken over. Any change of `first`, `last` or the
    generation meanwhile shows a live writer (perhaps one that took the lock
    over itself) and starts the wait again, so two waiters do not both take
    it. The caller sleeps between tries: time.sleep in a tool, trio.sleep in
    a node, whose event loop must go on.
    """

    def __init__(self, bus):
        self.bus = bus
        self.progress = bus._progress()
        self.deadline = time.monotonic() + LOCK_STEAL_AFTER

    def take_over(self):
        """After a failed try (and a size_fault() check): True when the lock has just been taken over."""
        now = time.monotonic()
        progress = self.bus._progress()
        if progress != self.progress:
            self.progress, self.deadline = progress, now + LOCK_STEAL_AFTER
            return False
        if now < self.deadline:
            return False
        _xchg32(self.bus._lockaddr, 1, _SEQ_CST)
        self.bus.locks_stolen += 1
        return True


class Cursor:
    """A reader's place on the bus, after libshmif's shmif_rcv, made safe against any writer.

    The place is an absolute position, `pos` = generation * DATA_SIZE + ring
    offset, so that ahead and behind are comparisons. The cursor also keeps
    where the newest record started and ended when it last looked, and the
    24 bytes at each place then (`witness`). Writers append exactly at that
    end, so the header may claim new records only if the bytes there have
    changed; a header moved any other way (rewound, a newest record made
    longer) is corrupt, and the reader skips to the newest record's end,
    counting it, without reading what lies between. So header words never
    make it read the same bytes twice, and it is in step with the writers
    again at their next record.

    A reader that was lapped (writers overwrote what it had not read yet)
    starts again at `first`, counting the lap, as libshmif does; but only
    when the last record it read was overwritten too, which a real lap does
    and a generation made up does not (its time stamp and sender are
    compared: a record length may have been changed by the same hand).
    Every record is checked against the newest record's end before its
    frame is copied; one that runs past it is corrupt, as is any longer than
    half the ring.
    """

    def __init__(self, bus, *, lock=True):
        """With lock=False the cursor stands nowhere until catch_up() under the caller's lock."""
        self.bus = bus
        self.laps = 0
        self.corrupt = 0
        self.pos = self.seen_start = self.seen_end = 0
        self.witness = None
        self.last_read = None  # (position, (sec, usec, sender)) of the last record read: a lap overwrites it
        if lock:
            with bus.locked() if not bus.readonly else nullcontext():
                self.catch_up()

    @property
    def gen(self):
        return self.pos // DATA_SIZE

    @property
    def next(self):
        return self.pos % DATA_SIZE

    def _newest(self):
        """(end, start) of the newest record and the oldest record's start, as absolute positions.

        None when `first` or `last` is out of the ring. A newest record of
        impossible length ends, as writers see it, at ring offset 0: they
        start again there (Bus.append).
        """
        gen, first, last = _GEN_FIRST_LAST.unpack_from(self.bus.mem, _GEN)
        if first > DATA_SIZE or last >= DATA_SIZE:
            return None
        base = gen * DATA_SIZE
        length = self.bus.record_length(last)
        if length is None:
            return base, base, base
        end = last + RECORD.size + length
        if end >= DATA_SIZE:  # the newest record reached the ring's end: the generation counts its wrap
            end -= DATA_SIZE
        oldest = base - DATA_SIZE + first if first >= end else base + first
        return base + end, base + end - RECORD.size - length, oldest

    def _bytes_at(self, pos):
        off = pos % DATA_SIZE
        if off + RECORD.size <= DATA_SIZE:
            return self.bus.mem[DATA_OFFSET + off:DATA_OFFSET + off + RECORD.size]
        return self.bus._ring_read(off, RECORD.size)[0]

    def _look(self, end, start):
        """Remember where the newest record is, and what lies at its start and end."""
        self.seen_end, self.seen_start = end, start
        self.witness = (self._bytes_at(start), self._bytes_at(end))

    def _overwritten(self, which):
        """Whether a writer wrote at the newest record's start (0) or end (1) since _look().

        A writer's record header is never the bytes that were there before:
        its time stamp has moved on.
        """
        return self._bytes_at((self.seen_start, self.seen_end)[which]) != self.witness[which]

    def _lapped(self, oldest):
        """Whether writers went round the ring past this reader: the last record it read is gone,
        and the oldest record left at `oldest` was written after it.

        Its time stamp and sender are compared, not its length, which anyone
        may rewrite in place. Writers stamp under the lock, so after a real
        lap the oldest record is the newer; a `last` or generation scribbled
        over can make an old record look like a lap's first, and reading on
        from it would deliver what was read before. A reader that has read
        nothing holds nothing a replay could repeat.
        """
        if self.last_read is None:
            return True
        at, stamp = self.last_read
        return (RECORD.unpack(self._bytes_at(at))[1:] != stamp
                and RECORD.unpack(self._bytes_at(oldest))[1:3] > stamp[:2])

    def _stand(self, end, start):
        self.pos = end
        self._look(end, start)

    def catch_up(self):
        """Stand after the newest record, as if it had just been read (the caller holds the lock)."""
        newest = self._newest()
        if newest is not None:
            self._stand(newest[0], newest[1])

    def resume(self):
        """Go on after the file was unusable (the caller holds the lock).

        Nothing changed: go on in place. Otherwise the file may have been made
        anew and written to before this reader looked: it reads the newest
        record, and what came before it is lost.
        """
        newest = self._newest()
        if newest is None:
            return
        end, start, _ = newest
        if end != self.seen_end or self._overwritten(0) or self._overwritten(1):
            self.pos = start
            self._look(end, start)

    def caught_up(self):
        """Whether there is nothing to read: a lockless look at the header, after the caller's size_fault().

        A writer stores `last` after its record and before its wake-up, so a
        record that this look misses wakes the reader again.
        """
        newest = self._newest()
        return newest is None or newest[0] == self.seen_end == self.pos

    def read(self, limit=64, skip=None, budget=None):
        """Up to limit new records, for tools: checks the file, takes the lock unless readonly.

        BusError when the file is no longer a bus.
        """
        bus = self.bus
        problem = bus.fault()
        if problem:
            raise BusError(problem)
        if self.caught_up():
            return []
        if bus.readonly:
            return self.read_locked(limit, skip, budget)
        with bus.locked():
            return self.read_locked(limit, skip, budget)

    def read_locked(self, limit=64, skip=None, budget=None, *, frames=False):
        """Up to limit new records; the caller holds the lock and has seen no fault().

        Records of sender `skip` (a node's own) are stepped over, not
        returned, but count towards limit; with a budget, reading stops once
        the records hold that many bytes. So one call visits at most limit
        records and copies at most budget bytes and one record more. With
        frames=True it returns their frames alone, all a driver hands up (a
        Record made for each would cost a third of the reading).
        """
        newest = self._newest()
        if newest is None:
            return []
        end, start, oldest = newest
        if self.witness is None:
            self._stand(end, start)
            return []
        if end != self.seen_end:
            if self.pos < oldest and oldest > self.seen_start:
                sane = self._lapped(oldest)
            else:
                sane = end > self.seen_end and start >= self.seen_end and self._overwritten(1)
            if not sane:
                self.corrupt += 1  # the header moved, but no writer wrote where records continue or lapped us
                self._stand(end, start)
                return []
            if self.pos < oldest:
                self.laps += 1
                self.pos = oldest
            self._look(end, start)
        mem = self.bus.mem
        records = []
        pos = self.pos
        read = None  # where the last record read starts
        budget = DATA_SIZE if budget is None else budget
        while pos < end and limit > 0 and budget > 0:
            off = pos % DATA_SIZE
            if off + RECORD.size <= DATA_SIZE:  # the usual case: the record header does not wrap
                length, sec, usec, sender = RECORD.unpack_from(mem, DATA_OFFSET + off)
            else:
                length, sec, usec, sender = RECORD.unpack(self.bus._ring_read(off, RECORD.size)[0])
            following = pos + RECORD.size + length
            if following > end or length >= DATA_SIZE // 2:
                self.corrupt += 1
                self._remember(read)
                self._stand(end, start)
                return records
            limit -= 1
            budget -= length
            read = pos
            if sender != skip:
                at = (off + RECORD.size) % DATA_SIZE
                if at + length <= DATA_SIZE:
                    frame = mem[DATA_OFFSET + at:DATA_OFFSET + at + length]
                else:
                    frame = self.bus._ring_read(at, length)[0]
                records.append(frame if frames else Record(sender, sec, usec, frame))
            pos = following
        self.pos = pos
        self._remember(read)
        return records

    def _remember(self, at):
        """Note the last record read, at `at` (None: none read), and its stamp, which a lap overwrites
        (_lapped): once a batch, not for every record."""
        if at is not None:
            self.last_read = (at, RECORD.unpack(self._bytes_at(at))[1:])

    def append(self, frames, sender):
        """Append a burst of this reader's own frames; the caller holds the lock, has seen no
        header_fault(), and wakes the readers.

        A cursor that had read everything steps over its own records at once:
        reading them back only to skip them would cost a pass over the bus
        for every burst sent. The records of one burst share a time stamp.
        """
        caught_up = self.witness is not None and self.caught_up()
        self.bus.append(frames, sender)
        if caught_up:
            self.catch_up()


def _stamp():
    """A record's time stamp, now: (seconds, microseconds)."""
    now = time.time()
    return int(now), int(now * 1e6) % 1000000


def _file_kind(mode):
    for test, name in ((stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def new_sender():
    """A random 64-bit sender id, as libshmif gives each interface: readers skip their own frames by it."""
    return struct.unpack("=Q", os.urandom(8))[0]


def create(path):
    """Create (or open) a bus file and return it open; the Python counterpart of rump_pub_shmif_create's bus."""
    return Bus(path)


__all__ = ["Bus", "BusError", "BusHeader", "Cursor", "LockWait", "Record", "create", "new_sender", "check_header",
           "MAGIC", "VERSION", "BUS_SIZE", "DATA_SIZE", "MAX_FRAME", "MIN_FRAME"]
