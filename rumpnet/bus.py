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

import ctypes
import mmap
import os
import struct
import time
from contextlib import contextmanager
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
MAX_FRAME = 1514  # libshmif asserts this: ETHERMTU + ETHER_HDR_LEN
MIN_FRAME = 14  # shorter records are skipped, as libshmif skips them
WAKEUP_OFFSET = 4  # the version word; a pwrite() there wakes the readers
LOCK_OFFSET = 24
_FIRST = 16
_LAST = 20
_GEN = 8

LOCK_STEAL_AFTER = 0.5  # seconds the lock may stay held before its holder is presumed dead

_libatomic = ctypes.CDLL("libatomic.so.1", use_errno=True)
_cas32 = _libatomic.__atomic_compare_exchange_4
_cas32.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_int]
_cas32.restype = ctypes.c_bool
_xchg32 = _libatomic.__atomic_exchange_4
_xchg32.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int]
_xchg32.restype = ctypes.c_uint32
_SEQ_CST = 5


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


def check_header(path, raw):
    """Raise BusError unless raw (the first 32 bytes) is a fresh or a shmif v3 header."""
    magic, version, _gen, first, last, _lock, _spare = HEADER.unpack(raw)
    if magic == 0 and raw.count(0) == len(raw):
        return
    if magic != MAGIC:
        raise BusError(f"{path}: not a shmif bus (magic 0x{magic:08x}, expected 0x{MAGIC:08x})")
    if version not in (0, VERSION):
        raise BusError(f"{path}: shmif bus version {version}, this program speaks {VERSION}")
    if first > DATA_SIZE or last >= DATA_SIZE:
        raise BusError(f"{path}: corrupt shmif bus header (first {first}, last {last})")


class Bus:
    """An open bus file: its mapping, its lock word and its ring.

    Opening never damages a file: a foreign or corrupt header is refused before
    anything is written; an empty file is grown to 1 MiB and initialised as
    libshmif does (magic set, `first` = DATA_SIZE, version left for the first
    wake-up to write).
    """

    def __init__(self, path, *, readonly=False):
        self.path = os.fspath(path)
        self.readonly = readonly
        self.locks_stolen = 0
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        try:
            self.fd = os.open(self.path, flags | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise BusError(f"{self.path}: cannot open bus: {e.strerror}") from None
        try:
            self._map()
        except BaseException:
            os.close(self.fd)
            raise

    def _map(self):
        size = os.fstat(self.fd).st_size
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
        self._expected = ctypes.c_uint32(0)  # the CAS's comparand, made once: the lock is taken per frame
        self._expectedaddr = ctypes.c_void_p(ctypes.addressof(self._expected))
        with self.locked():
            if self._u32(0) == 0:
                struct.pack_into("=I", self.mem, 0, MAGIC)
                struct.pack_into("=I", self.mem, _FIRST, DATA_SIZE)

    def close(self):
        if self.mem is None:
            return
        self._lockword = None
        self.mem.close()
        self.mem = None
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- header ------------------------------------------------------------

    def _u32(self, off):
        return struct.unpack_from("=I", self.mem, off)[0]

    def header(self):
        magic, version, gen, first, last, lock, _ = HEADER.unpack_from(self.mem, 0)
        return BusHeader(magic, version, gen, first, last, lock)

    # -- lock --------------------------------------------------------------

    def try_lock(self):
        self._expected.value = 0
        return _cas32(self._lockaddr, self._expectedaddr, 1, _SEQ_CST, _SEQ_CST)

    def lock(self):
        """Take the bus lock: compare-and-swap 0 -> 1, as libshmif does.

        libshmif spins 1000 times, then sleeps 1 ms, forever. A holder killed
        with the lock would stop the bus for good, so a lock held for
        LOCK_STEAL_AFTER seconds while the ring does not move is taken over:
        no live holder, rumpnet or libshmif, keeps it for more than
        microseconds. Any change of `last` or the generation meanwhile shows
        a live writer (perhaps one that took the lock over itself) and starts
        the wait again, so two waiters do not both take it.
        """
        if self.try_lock():
            return
        spins = 0
        progress = self._progress()
        deadline = time.monotonic() + LOCK_STEAL_AFTER
        while not self.try_lock():
            spins += 1
            if spins > 1000:
                time.sleep(0.001)
                spins = 0
                now = time.monotonic()
                if self._progress() != progress:
                    progress = self._progress()
                    deadline = now + LOCK_STEAL_AFTER
                elif now > deadline:
                    _xchg32(self._lockaddr, 1, _SEQ_CST)
                    self.locks_stolen += 1
                    return

    def _progress(self):
        return _GEN_FIRST_LAST.unpack_from(self.mem, _GEN)

    def unlock(self):
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
        """The frame length of the record at off, or None when it cannot be a record."""
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

    def _advance_first(self, off, length):
        """Move `first` past every record that a write of length bytes at off overwrites."""
        first = self._u32(_FIRST)
        while off <= first + RECORD.size and off + length > first:
            following = self.next_offset(first % DATA_SIZE)
            if following is None:
                following = (off + length) % DATA_SIZE
            first = following
            struct.pack_into("=I", self.mem, _FIRST, first)
            if length >= DATA_SIZE:
                break

    def _ring_write(self, off, data):
        chunk = min(len(data), DATA_SIZE - off)
        filled = off + chunk == DATA_SIZE
        self._advance_first(off, chunk + (1 if filled else 0))
        self.mem[DATA_OFFSET + off:DATA_OFFSET + off + chunk] = data[:chunk]
        if chunk == len(data):
            return (off + chunk) % DATA_SIZE, filled
        rest = len(data) - chunk
        self._advance_first(0, rest)
        self.mem[DATA_OFFSET:DATA_OFFSET + rest] = data[chunk:]
        return rest, True

    def append(self, frame, sender, sec=None, usec=None):
        """Write one record after the newest; the caller holds the lock and wakes the readers.

        `last` and the generation are stored after the record is complete, so a
        writer killed half-way leaves no torn record behind `last`. Returns
        where the next record will start.
        """
        if sec is None:
            now = time.time()
            sec, usec = int(now), int(now * 1e6) % 1000000
        mem = self.mem
        gen, _, last = _GEN_FIRST_LAST.unpack_from(mem, _GEN)
        off = self.next_offset(last)
        if off is None:  # a corrupt newest record: start again at the ring's start
            off = 0
        end = off + RECORD.size + len(frame)
        if end < DATA_SIZE:  # the usual case, written in place: the record stops short of the ring's end
            self._advance_first(off, end - off)
            start = DATA_OFFSET + off
            RECORD.pack_into(mem, start, len(frame), sec & 0xFFFFFFFF, usec, sender)
            mem[start + RECORD.size:DATA_OFFSET + end] = frame
            _U32.pack_into(mem, _LAST, off)
            return end
        end, wrapped = self._ring_write(off, RECORD.pack(len(frame), sec & 0xFFFFFFFF, usec, sender) + frame)
        if wrapped:
            struct.pack_into("=Q", mem, _GEN, gen + 1)
        _U32.pack_into(mem, _LAST, off)
        return end

    def newest(self):
        """(generation, last) read without the lock: a writer stores both before its wake-up."""
        gen, _, last = _GEN_FIRST_LAST.unpack_from(self.mem, _GEN)
        return gen, last

    def records(self):
        """Every record on the bus from `first` to `last`, oldest first (as shmif_dumpbus walks)."""
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
        """Append frames under the lock and wake the readers once."""
        with self.locked():
            for frame in frames:
                self.append(frame, sender)
        self.wakeup()


class Cursor:
    """A reader's place on the bus, after libshmif's shmif_rcv.

    A reader that was lapped (writers overwrote what it had not read yet)
    notices through the generation count and starts again at `first`,
    counting the lap; a corrupt record makes it skip to the newest record.
    """

    def __init__(self, bus):
        self.bus = bus
        self.laps = 0
        self.corrupt = 0
        with bus.locked() if not bus.readonly else _nolock():
            self._catch_up(bus.header())

    def _catch_up(self, header):
        """Stand after the newest record, as if it had just been read."""
        following = self.bus.next_offset(header.last)
        self.next = 0 if following is None else following
        self.gen = header.generation

    def _still_valid(self, gen, first, last_end):
        gendiff = gen - self.gen
        if gendiff > 1 or gendiff < 0:
            return False
        if last_end is None:
            return False
        devoff = self.next
        if first >= last_end:
            last_end += DATA_SIZE
            if gendiff == 0:
                devoff += DATA_SIZE
        elif gendiff:
            return False
        return first <= devoff <= last_end

    def pending(self):
        header = self.bus.header()
        return not (self.gen == header.generation and self.bus.next_offset(header.last) == self.next)

    def _caught_up(self, gen, last):
        return self.gen == gen and self.bus.next_offset(last) == self.next

    def read(self, limit=64, skip=None, budget=None):
        """Return up to limit new records (without taking the lock when readonly).

        Records of sender `skip` (a node's own) are stepped over, not returned,
        and count against neither limit nor budget: a run of them longer than a
        batch must not look like an empty bus, or the reader would sleep with
        frames still unread. With a budget, reading stops once the records hold
        that many bytes; no read steps over more records than the ring can hold.
        A cursor that the header shows caught up takes no lock: a writer
        stores `last` after its record and before its wake-up, so a record
        that this check misses wakes the reader again.
        """
        bus = self.bus
        if self._caught_up(*bus.newest()):
            return []
        mem = bus.mem
        records = []
        budget = DATA_SIZE if budget is None else budget
        if not bus.readonly:
            bus.lock()
        try:
            header = bus.header()
            if header.magic != MAGIC:
                return records
            gen, first, last = header.generation, header.first, header.last
            last_end = bus.next_offset(last)
            steps = DATA_SIZE // RECORD.size
            while len(records) < limit and budget > 0 and steps:
                steps -= 1
                if self.gen == gen and last_end == self.next:
                    break
                if not self._still_valid(gen, first, last_end):
                    if last_end is None:
                        self.corrupt += 1
                        break
                    self.laps += 1
                    self.next = 0 if first == DATA_SIZE else first
                    self.gen = gen - 1 if first > last else gen
                off = self.next
                if off + RECORD.size < DATA_SIZE:  # the usual case: the record header does not wrap
                    length, sec, usec, sender = RECORD.unpack_from(mem, DATA_OFFSET + off)
                    after, wrapped = off + RECORD.size, False
                else:
                    raw, after, wrapped = bus._ring_read(off, RECORD.size)
                    length, sec, usec, sender = RECORD.unpack(raw)
                if length >= DATA_SIZE // 2:
                    self.corrupt += 1
                    self._catch_up(header)
                    break
                if sender != skip:
                    budget -= length
                if after + length < DATA_SIZE:
                    self.next = after + length
                    if sender != skip:
                        records.append(Record(sender, sec, usec, mem[DATA_OFFSET + after:DATA_OFFSET + self.next]))
                else:
                    frame, self.next, _ = bus._ring_read(after, length)
                    wrapped = True  # the frame reaches the ring's end
                    if sender != skip:
                        records.append(Record(sender, sec, usec, frame))
                if wrapped:
                    self.gen += 1
        finally:
            if not bus.readonly:
                bus.unlock()
        return records

    def append(self, frame, sender):
        """Append a frame of this reader's own; the caller holds the lock and wakes the readers.

        A cursor that had read everything steps over its own record at once:
        reading it back only to skip it would cost a pass over the bus for
        every frame sent.
        """
        caught_up = self._caught_up(*self.bus.newest())
        end = self.bus.append(frame, sender)
        if caught_up:
            self.next, self.gen = end, self.bus.newest()[0]


@contextmanager
def _nolock():
    yield


def new_sender():
    """A random 64-bit sender id, as libshmif gives each interface: readers skip their own frames by it."""
    return struct.unpack("=Q", os.urandom(8))[0]


def create(path):
    """Create (or open) a bus file and return it open; the Python counterpart of rump_pub_shmif_create's bus."""
    return Bus(path)


__all__ = ["Bus", "BusError", "BusHeader", "Cursor", "Record", "create", "new_sender", "check_header",
           "MAGIC", "VERSION", "BUS_SIZE", "DATA_SIZE", "MAX_FRAME", "MIN_FRAME"]
