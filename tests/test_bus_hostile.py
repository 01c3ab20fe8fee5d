"""A hostile writer of the bus file cannot crash, wedge or fool the nodes on it.

The nodes run unprivileged; the attacker (this test process) writes the bus
file directly. After each attack every node is alive, idle when there is no
traffic, answers each ping once, and pings again once the bus is sane; the
problem is reported once, on the node's standard error and in netstat -s.
"""

import os
import pwd
import struct
import subprocess
import sys
import time

import pytest

from rumpnet.net.bus import BUS_SIZE, DATA_SIZE, RECORD
from rumpnet.testing import rumpnet_command, run

from conftest import cpu_seconds

_FIRST, _LAST, _GEN = 16, 20, 8


# -- what the attacker does ------------------------------------------------------------------

def poke(path, offset, fmt, value):
    """Write one header or record word with write(2), as any program can; it wakes the readers too."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, struct.pack(fmt, value), offset)
    finally:
        os.close(fd)


def peek(path, offset, fmt):
    with open(path, "rb") as f:
        f.seek(offset)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def newest_records(path):
    """(offset of the record before the newest, offset of the newest) on a bus that has not wrapped."""
    with open(path, "rb") as f:
        raw = f.read()
    first, last = struct.unpack_from("=II", raw, _FIRST)
    assert first == DATA_SIZE, "the bus has wrapped"
    previous, off = None, 0
    while off != last:
        previous, off = off, off + RECORD.size + struct.unpack_from("=I", raw, 32 + off)[0]
        assert off <= last
    return previous, last


# -- what a node shows -----------------------------------------------------------------------

def idle_cpu(nodes, seconds=1.0):
    """The largest share of one CPU any of the nodes used over the same second with no traffic."""
    before = [cpu_seconds(node) for node in nodes]
    time.sleep(seconds)
    return max(cpu_seconds(node) - used for node, used in zip(nodes, before)) / seconds


def shmif_counter(node, name):
    from rumpnet.kern.counters import DESCRIPTIONS
    text = dict(DESCRIPTIONS["shmif"])[name]
    done = node.run("netstat", "-s", "-p", "shmif")
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        value, _, described = line.strip().partition(" ")
        if described == text:
            return int(value)
    raise AssertionError(f"{name} not in netstat -s:\n{done.stdout}")


def log_of(node):
    """What the node has written to its standard error so far (read without waiting)."""
    os.set_blocking(node.proc.stderr.fileno(), False)
    node.log = getattr(node, "log", "") + (node.proc.stderr.read() or "")
    return node.log


def ping(node, address, count=3):
    return node.run("ping", "-c", str(count), "-i", "0.2", "-w", "5", address)


def ping_fails(node, address):
    """A ping that must get no reply: exit status 2 after a one-second deadline."""
    return node.run("ping", "-c", "1", "-w", "1", address).returncode == 2


def assert_healthy(*nodes):
    """Alive, idle, and each pings the next with one reply per request (the pings at once)."""
    for node in nodes:
        assert node.is_alive()
    assert idle_cpu(nodes) < 0.2, "a node spins with no traffic"
    pings = [subprocess.Popen(rumpnet_command("ping", "-c", "3", "-i", "0.2", "-w", "5", peer.address),
                              env={**os.environ, "RUMP_SERVER": node.url}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for node, peer in zip(nodes, nodes[1:] + nodes[:1])]
    for proc in pings:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "3 packets received" in out and "duplicates" not in out, out


@pytest.fixture
def pair(nodes, bus):
    a, b = nodes("a"), nodes("b")
    for node, address in ((a, "10.0.0.1"), (b, "10.0.0.2")):
        node.attach(bus, f"{address}/24")
        node.address = address
    assert_healthy(a, b)
    return a, b


def reported_once(nodes, bus, counter, words):
    for node in nodes:
        assert shmif_counter(node, counter) == 1
        lines = [line for line in log_of(node).splitlines() if bus in line and words in line]
        assert len(lines) == 1, log_of(node)


# -- the file shrinks, vanishes, is replaced ----------------------------------------------------

@pytest.mark.parametrize("regrow", ["restored", "new node"])
def test_truncated_to_zero(pair, bus, nodes, regrow):
    saved = open(bus, "rb").read()
    os.truncate(bus, 0)
    time.sleep(0.3)
    a, b = pair
    assert ping_fails(a, "10.0.0.2")  # nothing to send on
    reported_once(pair, bus, "bus_unusable", "shrank to 0 bytes")
    if regrow == "restored":
        with open(bus, "r+b") as f:
            f.write(saved)
        assert_healthy(a, b)
    else:  # a node attaching to the empty file makes it a bus again, as it makes any new bus
        c = nodes("c")
        c.attach(bus, "10.0.0.3/24")
        c.address = "10.0.0.3"
        assert_healthy(a, b, c)
    assert "a shmif bus again" in log_of(a)


def test_replaced(pair, bus, workdir):
    a, b = pair
    fresh = workdir / "fresh"
    fresh.write_bytes(b"")
    os.replace(fresh, bus)
    assert "(deleted)" in a.ifconfig("shmif0")
    assert_healthy(a, b)  # the two go on on the file they hold open
    reported_once(pair, bus, "bus_unlinked", "removed or replaced")


def test_deleted(pair, bus, nodes):
    a, b = pair
    os.unlink(bus)
    assert f"linkstr: {bus} (deleted)" in a.ifconfig("shmif0")
    assert_healthy(a, b)
    reported_once(pair, bus, "bus_unlinked", "removed or replaced")
    c = nodes("c")  # attaching now makes another bus: the segment is split, and ifconfig shows which is which
    c.attach(bus, "10.0.0.3/24")
    assert "(deleted)" not in c.ifconfig("shmif0")
    assert ping_fails(c, "10.0.0.1")


# -- header words out of range ---------------------------------------------------------------

@pytest.mark.parametrize("word, offset", [("last", _LAST), ("first", _FIRST)])
def test_header_offset_out_of_range(pair, bus, word, offset):
    a, b = pair
    saved = peek(bus, offset, "=I")
    poke(bus, offset, "=I", 0xFFFFFFF0)
    time.sleep(0.3)
    assert ping_fails(a, "10.0.0.2")
    assert peek(bus, offset, "=I") == 0xFFFFFFF0  # left as it was found
    reported_once(pair, bus, "bus_unusable", "corrupt shmif bus header")
    poke(bus, offset, "=I", saved)
    assert_healthy(a, b)


def test_magic_overwritten(pair, bus):
    a, b = pair
    poke(bus, 0, "=I", 0xDEADBEEF)
    time.sleep(0.3)
    before = open(bus, "rb").read()
    assert ping_fails(a, "10.0.0.2")
    assert open(bus, "rb").read() == before  # a file that is no longer a bus is not written
    reported_once(pair, bus, "bus_unusable", "not a shmif bus")
    poke(bus, 0, "=I", 0xCA11D054)
    assert_healthy(a, b)


# -- the ring moved without a writer ------------------------------------------------------------

def test_last_rewound_by_one_record(pair, bus):
    a, b = pair
    previous, _ = newest_records(bus)
    poke(bus, _LAST, "=I", previous)
    time.sleep(0.3)
    assert_healthy(a, b)
    assert shmif_counter(a, "bus_corrupt") >= 1
    assert "corrupt ring" in log_of(a)


@pytest.mark.parametrize("length", [2000, 100000, 0x7FFFFFFF])
def test_newest_record_lengthened(pair, bus, length):
    a, b = pair
    _, last = newest_records(bus)
    poke(bus, 32 + last, "=I", length)
    time.sleep(0.3)
    assert_healthy(a, b)
    assert shmif_counter(a, "bus_corrupt") >= 1


# -- a live writer that keeps the lock -----------------------------------------------------------

HOG = """
import sys, time
from rumpnet.net.bus import Bus
bus = Bus(sys.argv[1])
bus.lock()
print("locked", flush=True)
frame = b"\\xff" * 6 + b"\\x02" * 6 + b"\\x88\\xb5" + bytes(46)
stop = time.monotonic() + float(sys.argv[2])
while time.monotonic() < stop:  # the ring moves: it is no dead holder, so no one takes the lock over
    bus.append([frame], 0x4A4A)
    bus.wakeup()
    time.sleep(0.02)
bus.unlock()
bus.wakeup()
"""


def test_lock_kept_by_a_live_writer(pair, bus, nodes, workdir):
    a, b = pair
    c = nodes("c")  # a's other interface, on a bus of its own
    a.ifconfig("shmif1", "create", "linkstr", str(workdir / "bus2"), "inet", "10.0.1.1/24")
    c.attach(str(workdir / "bus2"), "10.0.1.2/24")
    hog = subprocess.Popen([sys.executable, "-c", HOG, bus, "4"], stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert a.run("ifconfig", "-l").returncode == 0
        assert time.monotonic() - started < 2, "the control socket waited for the bus lock"
        done = ping(a, "10.0.1.2")  # the other interface carries on
        assert done.returncode == 0 and "3 packets received" in done.stdout, done.stdout
    finally:
        hog.wait(timeout=20)
    assert shmif_counter(a, "locks_stolen") == 0
    assert_healthy(a, b)


# -- linkstr refuses what it would damage or hang on --------------------------------------------

def users_own(path, user):
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def test_linkstr_refuses_a_2mib_file_with_a_zero_header(pair, workdir, user):
    a, _ = pair
    big = workdir / "big"
    big.write_bytes(bytes(2 * BUS_SIZE))
    users_own(big, user)
    before = os.stat(big)
    done = a.run("ifconfig", "shmif1", "create", "linkstr", str(big))
    assert done.returncode == 1
    assert done.stderr == f"rumpnet ifconfig: {big}: not a shmif bus ({2 * BUS_SIZE} bytes, a bus is {BUS_SIZE})\n"
    after = os.stat(big)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert big.read_bytes() == bytes(2 * BUS_SIZE)


def test_linkstr_refuses_a_device(pair):
    a, _ = pair
    done = a.run("ifconfig", "shmif1", "create", "linkstr", "/dev/zero")
    assert done.returncode == 1
    assert done.stderr == "rumpnet ifconfig: /dev/zero: not a regular file (a character device); a bus is a 1 MiB file\n"


def test_linkstr_refuses_a_fifo(pair, workdir, user):
    a, _ = pair
    fifo = workdir / "fifo"
    os.mkfifo(fifo)
    users_own(fifo, user)
    done = run("ifconfig", "shmif1", "create", "linkstr", str(fifo), server=a.url, timeout=10)
    assert done.returncode == 1
    assert done.stderr == f"rumpnet ifconfig: {fifo}: not a regular file (a FIFO); a bus is a 1 MiB file\n"
    assert a.is_alive()
