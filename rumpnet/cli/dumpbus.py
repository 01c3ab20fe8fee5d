"""rumpnet dumpbus: show or save the frames on a shmif bus, after NetBSD's shmif_dumpbus(1).

    rumpnet dumpbus [-h] [-f] [-p pcapfile] busfile

-h prints the bus header and stops. -p writes every frame, oldest first, to a
pcap file ("-" is standard output) for tcpdump -r or Wireshark. Otherwise each
frame is one line, as tcpdump -e -n prints it. -f follows the bus, as
tcpdump -l does, until interrupted.

The bus is opened read-only and never locked, as shmif_dumpbus does: looking
at a bus must not change it, and a reader without write permission can look.
"""

from dataclasses import dataclass
import io
import os
import sys

import trio

from ..net import pcap
from ..net.bus import DATA_SIZE, MAGIC, RECORD, Bus, BusError, Cursor
from ..net.inotify import ModifyWatch
from ..tools import decode
from .common import Parser, fail

BATCH = 64
POLL = 1.0  # seconds between looks at a bus whose writer died before its wake-up


def open_bus(path):
    """The bus at path, read-only; BusError unless it is a shmif bus of our version."""
    try:
        bus = Bus(path, readonly=True)
    except OSError as e:  # a directory opens read-only and fails at the first read
        raise BusError(f"{path}: {e.strerror}") from None
    magic = bus.header().magic
    if magic != MAGIC:  # Bus accepts an all-zero header, the start of a bus no node has opened yet
        bus.close()
        raise BusError(f"{path}: not a shmif bus (magic 0x{magic:08x}, expected 0x{MAGIC:08x})")
    return bus


def header_line(header):
    """shmif_dumpbus's header line, with the magic number and what the lock word means."""
    lock = "held" if header.lock else "free"
    return (f"magic 0x{header.magic:08x}, bus version {header.version}, lock: {header.lock} ({lock}), "
            f"generation: {header.generation}, firstoff: 0x{header.first:04x}, lastoff: 0x{header.last:04x}")


def main(argv, server):
    parser = Parser("dumpbus", "Print or save the frames on a shmif bus file.", node=False, add_help=False)
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", dest="header", action="store_true", help="print the bus header only")
    parser.add_argument("-p", dest="pcapfile", help="write the frames to PCAPFILE as pcap (- for standard output)")
    parser.add_argument("-f", dest="follow", action="store_true",
                        help="follow the bus until interrupted, a line (or pcap record) per new frame")
    parser.add_argument("busfile")
    args = parser.parse_args(argv)
    try:
        bus = open_bus(args.busfile)
    except BusError as e:
        return fail("dumpbus", str(e))
    with bus:
        if args.pcapfile and args.pcapfile != "-" and os.path.exists(args.pcapfile) \
                and os.path.samefile(args.pcapfile, args.busfile):
            return fail("dumpbus", f"{args.pcapfile}: is the bus itself; writing the pcap there would destroy it")
        try:
            if args.header:
                print(header_line(bus.header()))
            elif args.follow:
                return follow(bus, args.pcapfile)
            else:
                return dump(bus, args.pcapfile)
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as tcpdump does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def dump(bus, pcapfile):
    """Every frame now on the bus, as lines or as a pcap written only once all are read."""
    try:
        records = list(bus.records())
    except BusError as e:
        return fail("dumpbus", str(e))
    if not pcapfile:
        for record in records:
            print(decode.line(record))
        return 0
    buffer = io.BytesIO()
    writer = pcap.Writer(buffer)
    for record in records:
        writer.write(record.frame, record.sec, record.usec)
    if pcapfile == "-":
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.flush()
        return 0
    try:
        out = open(pcapfile, "wb")
    except OSError as e:
        return fail("dumpbus", f"{pcapfile}: {e.strerror}")
    try:
        with out:
            out.write(buffer.getvalue())
    except OSError as e:  # a disk that filled up: no half-written pcap is left behind
        os.unlink(pcapfile)
        return fail("dumpbus", f"{pcapfile}: {e.strerror}")
    return 0


@dataclass
class Tally:
    """What a follower saw, and what the writers overwrote before it could look."""

    captured: int = 0
    missed: int = 0
    missed_bytes: int = 0
    laps: int = 0


def follow(bus, pcapfile):
    """Print (or save) each new frame until interrupted, then the tally on standard error."""
    if pcapfile is None:
        return _follow_with(bus, lambda record: print(decode.line(record)), sys.stdout.flush)
    if pcapfile == "-":
        return _follow_into(bus, sys.stdout.buffer)
    try:
        out = open(pcapfile, "wb")
    except OSError as e:
        return fail("dumpbus", f"{pcapfile}: {e.strerror}")
    with out:
        return _follow_into(bus, out)


def _follow_into(bus, out):
    writer = pcap.Writer(out)
    return _follow_with(bus, lambda record: writer.write(record.frame, record.sec, record.usec), out.flush)


def _follow_with(bus, emit, flush):
    tally = Tally()
    watch = ModifyWatch(bus.path)
    cursor = Cursor(bus)  # placed before saying so: every frame written after "listening" is shown
    print(f"listening on {bus.path}, link-type EN10MB (Ethernet)", file=sys.stderr, flush=True)
    status = 0
    try:
        trio.run(_follow, cursor, watch, emit, flush, tally)
    except KeyboardInterrupt:
        pass
    except BusError as e:  # the file shrank or stopped being a bus under us
        status = fail("dumpbus", str(e))
    finally:
        watch.close()
        flush()
    print(f"{tally.captured} frames captured", file=sys.stderr)
    print(f"{tally.missed} frames missed ({tally.missed_bytes} bytes overwritten, lapped {tally.laps} times)",
          file=sys.stderr)
    return status


@trio.lowlevel.enable_ki_protection
async def _follow(cursor, watch, emit, flush, tally):
    """Read, emit, sleep until woken; Ctrl-C lands only in the sleep, never half-way through a frame."""
    while True:
        watch.drain()
        records = _read(cursor, tally)
        if not records:
            with trio.move_on_after(POLL):
                await watch.wait()
            continue
        for record in records:
            emit(record)
        flush()
        await trio.lowlevel.checkpoint()


def _read(cursor, tally):
    """The next batch of records, counting what a lap made the cursor skip.

    The ring is one stream of bytes, so the cursor's movement less the bytes
    of the records it returned is what it skipped. shmif records carry no
    sequence number: the frames skipped are counted at the average size of
    the frames read after the lap.
    """
    before = cursor.gen * DATA_SIZE + cursor.next
    events = cursor.laps + cursor.corrupt
    records = cursor.read(BATCH)
    frames = [record for record in records if record.frame]  # an empty record is no frame, as in a dump
    tally.captured += len(frames)
    if cursor.laps + cursor.corrupt == events:
        return frames
    read = sum(RECORD.size + len(record.frame) for record in records)
    skipped = cursor.gen * DATA_SIZE + cursor.next - before - read
    missed = round(skipped * len(records) / read) if read else 0
    tally.laps += cursor.laps + cursor.corrupt - events
    tally.missed_bytes += skipped
    tally.missed += missed
    print(f"rumpnet dumpbus: lapped by the writers: {missed} frames ({skipped} bytes) missed",
          file=sys.stderr, flush=True)
    return frames
