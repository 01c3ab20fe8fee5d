"""rumpnet dumpbus: a bus's header, its frames as tcpdump lines, a pcap that tcpdump reads, and -f.

tcpdump, where installed, is the judge of the pcap files and of the lines;
dpkt's pcap reader and a struct reading of the header check the rest
independently of rumpnet's own readers.
"""

import contextlib
import hashlib
import io
import os
import shutil
import signal
import struct
import subprocess
import time

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rumpnet.net.bus import BUS_SIZE, DATA_SIZE, MAGIC, Bus
from rumpnet.cli import dumpbus
from rumpnet.tools.decode import describe
from rumpnet.testing import inject, rumpnet_command, run

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None,
                                   reason="tcpdump is not installed (CI installs it; apt-get install tcpdump)")
UTC = {"TZ": "UTC"}
FAKE = b"\x02\x00\x00\x00\x00\x99"
NODE_B = b"\xb2\xa0\x00\x00\x00\x02"


def mac_of(node):
    return next(line.split()[1] for line in node.ifconfig("shmif0").splitlines() if "address:" in line)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tcpdump(*args):
    return subprocess.run(["tcpdump", *map(str, args)], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **UTC))


def udp(sport, dport, data, src=b"\x0a\0\0\x09", dst=b"\x0a\0\0\x02", dst_mac=NODE_B):
    """An Ethernet frame holding one UDP datagram, made by dpkt."""
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(data), data=data)
    return bytes(dpkt.ethernet.Ethernet(dst=dst_mac, src=FAKE, type=0x0800,
                                        data=dpkt.ip.IP(src=src, dst=dst, p=17, data=datagram)))


@pytest.fixture
def pinged(pair, bus):
    """A bus after node A pinged node B twice: (bus, A's MAC, B's MAC)."""
    a, b = pair
    done = a.run("ping", "-c", "2", "-i", "0.2", "10.0.0.2")
    assert done.returncode == 0, done.stderr
    return bus, mac_of(a), mac_of(b)


# -- a ping exchange, dumped ------------------------------------------------------------------


@needs_tcpdump
def test_pcap_of_a_ping_reads_in_tcpdump(pinged, workdir):
    bus, mac_a, mac_b = pinged
    out = workdir / "ping.pcap"
    done = run("dumpbus", "-p", out, bus)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    shown = tcpdump("-e", "-n", "-r", out)
    assert shown.returncode == 0
    assert shown.stderr.strip() == f"reading from file {out}, link-type EN10MB (Ethernet), snapshot length 262144"
    lines = shown.stdout.splitlines()
    assert any(f"{mac_a} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
               "Request who-has 10.0.0.2 tell 10.0.0.1, length 28" in line for line in lines)
    assert any(f"{mac_b} > {mac_a}, ethertype ARP (0x0806), length 42: "
               f"Reply 10.0.0.2 is-at {mac_b}, length 28" in line for line in lines)
    assert sum("10.0.0.1 > 10.0.0.2: ICMP echo request" in line for line in lines) == 2
    assert sum("10.0.0.2 > 10.0.0.1: ICMP echo reply" in line for line in lines) == 2


@needs_tcpdump
def test_lines_are_tcpdumps_lines(pinged, workdir, monkeypatch):
    bus = pinged[0]
    monkeypatch.setenv("TZ", "UTC")
    out = workdir / "ping.pcap"
    assert run("dumpbus", "-p", out, bus).returncode == 0
    done = run("dumpbus", bus)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines() == tcpdump("-e", "-n", "-r", out).stdout.splitlines()


def test_pcap_holds_every_frame_with_its_own_timestamp(pinged, workdir):
    bus = pinged[0]
    out = workdir / "ping.pcap"
    assert run("dumpbus", "-p", out, bus).returncode == 0
    with open(out, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        saved = [(round(ts * 1e6), frame) for ts, frame in reader]
    with Bus(bus, readonly=True) as b:
        on_bus = [(r.sec * 1_000_000 + r.usec, r.frame) for r in b.records()]
    assert saved == on_bus
    assert len(saved) == 8  # two announcements, ARP request and reply, two pings and their replies


def test_pcap_to_standard_output_is_the_same_file(pinged, workdir):
    bus = pinged[0]
    out = workdir / "ping.pcap"
    assert run("dumpbus", "-p", out, bus).returncode == 0
    piped = subprocess.run(rumpnet_command("dumpbus", "-p", "-", bus), capture_output=True, timeout=30)
    assert piped.returncode == 0 and piped.stdout == out.read_bytes()


def test_lines_describe_the_ping(pinged):
    bus, mac_a, mac_b = pinged
    done = run("dumpbus", bus)
    lines = done.stdout.splitlines()
    assert len(lines) == 8
    assert lines[2].endswith(f"{mac_a} > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
                             "Request who-has 10.0.0.2 tell 10.0.0.1, length 28")
    assert lines[3].endswith(f"Reply 10.0.0.2 is-at {mac_b}, length 28")
    assert "10.0.0.1 > 10.0.0.2: ICMP echo request, id " in lines[4] and ", seq 0, length 64" in lines[4]
    assert "10.0.0.2 > 10.0.0.1: ICMP echo reply, id " in lines[5] and ", seq 0, length 64" in lines[5]
    assert ", seq 1, length 64" in lines[7]


def test_header_only(pinged):
    bus = pinged[0]
    done = run("dumpbus", "-h", bus)
    with open(bus, "rb") as f:
        magic, version, generation, first, last, lock, _ = struct.unpack("=IIQIIII", f.read(32))
    assert done.returncode == 0
    assert done.stdout == (f"magic 0x{magic:08x}, bus version {version}, lock: 0 (free), generation: {generation}, "
                           f"firstoff: 0x{first:04x}, lastoff: 0x{last:04x}\n")
    assert magic == MAGIC and version == 3


def test_header_shows_a_held_lock(workdir):
    path = str(workdir / "bus")
    with Bus(path) as bus:
        bus.lock()
        try:
            done = run("dumpbus", "-h", path)
        finally:
            bus.unlock()
    assert "lock: 1 (held)" in done.stdout


# -- frames of every kind the decoder knows, judged by tcpdump -----------------------------------


def icmp_frame(icmp_type, code, rest):
    message = dpkt.icmp.ICMP(type=icmp_type, code=code, data=rest)
    return bytes(dpkt.ethernet.Ethernet(dst=NODE_B, src=FAKE, type=0x0800,
                                        data=dpkt.ip.IP(src=b"\x0a\0\0\x09", dst=b"\x0a\0\0\x02", p=1, data=message)))


def quoted_udp():
    """The first 28 bytes of a UDP datagram's IP packet, as an ICMP error quotes them."""
    return bytes(udp(40000, 9, b"x")[14:42])


KINDS = {
    "arp-request": bytes(dpkt.ethernet.Ethernet(dst=b"\xff" * 6, src=FAKE, type=0x0806, data=dpkt.arp.ARP(
        sha=FAKE, spa=b"\x0a\0\0\x09", tha=b"\0" * 6, tpa=b"\x0a\0\0\x02", op=1))),
    "arp-reply-padded": bytes(dpkt.ethernet.Ethernet(dst=NODE_B, src=FAKE, type=0x0806, data=dpkt.arp.ARP(
        sha=FAKE, spa=b"\x0a\0\0\x09", tha=NODE_B, tpa=b"\x0a\0\0\x02", op=2))) + bytes(18),
    "udp": udp(40000, 7777, b"hello"),
    "udp-bad-length": udp(40000, 7777, b"hello")[:38] + b"\x00\x40" + udp(40000, 7777, b"hello")[40:],
    "echo-request": icmp_frame(8, 0, struct.pack("!HH", 77, 5) + b"abcdefgh"),
    "port-unreachable": icmp_frame(3, 3, b"\0\0\0\0" + quoted_udp()),
    "host-unreachable": icmp_frame(3, 1, b"\0\0\0\0" + quoted_udp()),
    "need-to-frag": icmp_frame(3, 4, b"\0\0\x05\xdc" + quoted_udp()),
    "time-exceeded": icmp_frame(11, 0, b"\0\0\0\0" + quoted_udp()),
    "icmp-cut-short": icmp_frame(3, 3, b"\0\0"),
    "tcp-syn": bytes(dpkt.ethernet.Ethernet(dst=NODE_B, src=FAKE, type=0x0800, data=dpkt.ip.IP(
        src=b"\x0a\0\0\x09", dst=b"\x0a\0\0\x02", p=6, data=dpkt.tcp.TCP(sport=40000, dport=7777, flags=0x02,
                                                                        seq=1000, win=512)))),
    "ip-proto-99": bytes(dpkt.ethernet.Ethernet(dst=NODE_B, src=FAKE, type=0x0800, data=dpkt.ip.IP(
        src=b"\x0a\0\0\x09", dst=b"\x0a\0\0\x02", p=99, data=b"abcd"))),
    "bad-ip-header-length": udp(40000, 7777, b"hello")[:14] + b"\x44" + udp(40000, 7777, b"hello")[15:],
}


@needs_tcpdump
@pytest.mark.parametrize("frame", KINDS.values(), ids=KINDS.keys())
def test_each_kind_of_frame_reads_as_tcpdump_reads_it(workdir, monkeypatch, frame):
    monkeypatch.setenv("TZ", "UTC")
    bus, out = str(workdir / "bus"), workdir / "one.pcap"
    inject(bus, frame)
    assert run("dumpbus", "-p", out, bus).returncode == 0
    expected = tcpdump("-S", "-e", "-n", "-r", out).stdout.splitlines()[0]
    mine = run("dumpbus", bus).stdout.splitlines()[0]
    assert mine.replace(":  ", ": ") == expected.replace(":  ", ": ")  # tcpdump doubles a space before some


def test_each_kind_of_frame_has_its_words():
    words = {"arp-request": "Request who-has 10.0.0.2 tell 10.0.0.9, length 28",
             "arp-reply-padded": "Reply 10.0.0.9 is-at 02:00:00:00:00:99, length 46",
             "udp": "10.0.0.9.40000 > 10.0.0.2.7777: UDP, length 5",
             "echo-request": "ICMP echo request, id 77, seq 5, length 16",
             "port-unreachable": "ICMP 10.0.0.2 udp port 9 unreachable, length 36",
             "time-exceeded": "ICMP time exceeded in-transit, length 36",
             "tcp-syn": "10.0.0.9.40000 > 10.0.0.2.7777: Flags [S], seq 1000, win 512, length 0",
             "bad-ip-header-length": "bad-hlen 16"}
    for kind, text in words.items():
        assert describe(KINDS[kind]).endswith(text), kind


def test_every_ip_protocol_plain_or_quoted_makes_one_line():
    for proto in range(256):
        packet = bytes(dpkt.ip.IP(src=b"\x0a\0\0\x09", dst=b"\x0a\0\0\x02", p=proto, data=bytes(8)))
        for frame in (NODE_B + FAKE + b"\x08\x00" + packet, icmp_frame(3, 3, b"\0\0\0\0" + packet),
                      icmp_frame(11, 0, b"\0\0\0\0" + packet[:24])):
            assert "\n" not in describe(frame), proto


@settings(max_examples=2000)
@given(frame=st.binary(max_size=200))
def test_any_bytes_make_one_line(frame):
    text = describe(frame)
    assert isinstance(text, str) and "\n" not in text


HEADS = [b"\x08\x00\x45", b"\x08\x00\x46\x00", b"\x08\x06\x00\x01\x08\x00\x06\x04", b"\x08\x00\x45\x00\x00"]


@settings(max_examples=2000)
@given(head=st.sampled_from(HEADS), proto=st.sampled_from([1, 6, 17, 99]), rest=st.binary(max_size=120),
       cut=st.integers(0, 200))
def test_plausible_but_spoilt_frames_make_one_line(head, proto, rest, cut):
    """Frames that pass the first checks (IPv4 or ARP, a protocol we decode) and then go wrong."""
    body = bytearray(head + rest)
    if len(body) > 11:
        body[11] = proto  # the IP protocol field, after the 2-byte ethertype
    text = describe((NODE_B + FAKE + bytes(body))[:14 + cut])
    assert isinstance(text, str) and "\n" not in text


# -- following a live bus -------------------------------------------------------------------------


class Follower:
    """`rumpnet dumpbus -f` in a process of its own, started once it says it listens."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(rumpnet_command("dumpbus", "-f", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr.readline().startswith("listening on ")

    def stop(self):
        """SIGSTOP, returning once the process is stopped: from then on it reads nothing."""
        self.proc.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "T":
            assert time.monotonic() < deadline, "the follower did not stop"
            time.sleep(0.01)

    def lines(self, count):
        return [self.proc.stdout.readline().rstrip("\n") for _ in range(count)]

    def interrupt(self):
        """^C, as a user stops tcpdump; returns (exit status, what it said on standard error)."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def follow():
    started = []

    def start(*args):
        started.append(Follower(*args))
        return started[-1]

    yield start
    for follower in started:
        follower.kill()


@pytest.mark.timeout(60)
def test_follow_shows_new_frames_until_interrupted(workdir, follow):
    bus = str(workdir / "bus")
    inject(bus, udp(40000, 7777, b"old"))
    follower = follow(bus)
    inject(bus, udp(40001, 7777, b"new"), udp(40002, 7777, b"newer"))
    first, second = follower.lines(2)
    assert first.endswith("10.0.0.9.40001 > 10.0.0.2.7777: UDP, length 3")
    assert second.endswith("10.0.0.9.40002 > 10.0.0.2.7777: UDP, length 5")
    inject(bus, udp(40003, 7777, b"last"))
    assert follower.lines(1)[0].endswith("10.0.0.9.40003 > 10.0.0.2.7777: UDP, length 4")
    status, err = follower.interrupt()
    assert status == 0
    assert "3 frames captured" in err and "0 frames missed" in err


@pytest.mark.timeout(60)
def test_follow_survives_a_lap_and_counts_what_it_missed(workdir, follow):
    bus = str(workdir / "bus")
    inject(bus, udp(40000, 7777, b"start"))
    follower = follow(bus)
    count, size = 1000, 1400  # 1000 records of 1442 bytes: more than the ring holds
    follower.stop()
    try:
        inject(bus, *[udp(20000 + n, 7777, bytes(size)) for n in range(count)])
    finally:
        follower.proc.send_signal(signal.SIGCONT)
    with Bus(bus, readonly=True) as b:
        kept = sum(1 for _ in b.records())
    assert kept < count
    shown = follower.lines(kept)
    assert [line.split("10.0.0.9.")[1].split(" ")[0] for line in shown] == \
        [str(20000 + n) for n in range(count - kept, count)]
    status, err = follower.interrupt()
    assert status == 0
    assert f"lapped by the writers: {count - kept} frames" in err
    assert f"{kept} frames captured" in err and f"{count - kept} frames missed" in err


@pytest.mark.timeout(60)
def test_follow_into_a_pcap(workdir, follow):
    bus, out = str(workdir / "bus"), workdir / "live.pcap"
    inject(bus, udp(40000, 7777, b"before"))
    follower = follow("-p", out, bus)
    frames = [udp(40001, 7777, b"one"), udp(40002, 7777, b"two")]
    inject(bus, *frames)
    with Bus(bus, readonly=True) as b:
        wanted = [(r.sec * 1_000_000 + r.usec, r.frame) for r in b.records()][1:]
    size = 24 + sum(16 + len(frame) for frame in frames)  # the pcap header, then a header per frame
    deadline = time.monotonic() + 10
    while out.stat().st_size < size and time.monotonic() < deadline:
        time.sleep(0.02)
    status, _ = follower.interrupt()
    assert status == 0
    with open(out, "rb") as f:
        assert [(round(ts * 1e6), frame) for ts, frame in dpkt.pcap.Reader(f)] == wanted


# -- bad input: one line, exit 1, nothing written ---------------------------------------------------


def real_bus(path):
    inject(path, udp(40000, 7777, b"a frame"))


def write(content):
    def make(path):
        with open(path, "wb") as f:
            f.write(content)
    return make


def truncated_bus(path):
    real_bus(path)
    os.truncate(path, 4096)


def corrupt_ring(path):
    real_bus(path)
    with open(path, "r+b") as f:
        f.seek(32 + 24)  # the first frame's record, after the empty one at offset 0
        f.write(struct.pack("=I", 0x7FFFFFFF))


def header(magic=MAGIC, version=3, generation=0, first=DATA_SIZE, last=0, lock=0):
    return struct.pack("=IIQIIII", magic, version, generation, first, last, lock, 0)


BAD_BUSES = {
    "missing": (None, "No such file"),
    "empty": (write(b""), "truncated"),
    "truncated": (truncated_bus, "truncated"),
    "text-file": (write(b"#!/bin/sh\necho not a bus\n" * 40000), "not a shmif bus"),
    "random-bytes": (write(os.urandom(BUS_SIZE)), "not a shmif bus"),
    "never-used": (write(bytes(BUS_SIZE)), "not a shmif bus"),
    "other-version": (write(header(version=2) + bytes(BUS_SIZE - 32)), "version 2"),
    "offsets-out-of-the-ring": (write(header(first=DATA_SIZE + 8) + bytes(BUS_SIZE - 32)), "corrupt"),
    "directory": (os.mkdir, "Is a directory"),
}


@pytest.mark.parametrize("mode", [["-h"], [], ["-p", "OUT"], ["-f", "-p", "OUT"]], ids=["header", "lines", "pcap",
                                                                                      "follow"])
@pytest.mark.parametrize("make, message", BAD_BUSES.values(), ids=BAD_BUSES.keys())
def test_bad_bus_one_line_exit_1_nothing_written(workdir, make, message, mode):
    path, out = str(workdir / "bus"), str(workdir / "out.pcap")
    if make:
        make(path)
    before = digest(path) if os.path.isfile(path) else None
    done = run("dumpbus", *[out if word == "OUT" else word for word in mode], path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"rumpnet dumpbus: {path}") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert (digest(path) if os.path.isfile(path) else None) == before
    assert not os.path.exists(out)


@pytest.mark.parametrize("mode", [[], ["-p", "OUT"]], ids=["lines", "pcap"])
def test_corrupt_ring_one_line_exit_1_nothing_written(workdir, mode):
    path, out = str(workdir / "bus"), str(workdir / "out.pcap")
    corrupt_ring(path)
    before = digest(path)
    done = run("dumpbus", *[out if word == "OUT" else word for word in mode], path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"rumpnet dumpbus: {path}: corrupt record at offset 24 (length 2147483647)\n"
    assert digest(path) == before and not os.path.exists(out)


def test_pcap_over_the_bus_itself_is_refused(workdir):
    path = str(workdir / "bus")
    real_bus(path)
    before = digest(path)
    done = run("dumpbus", "-p", path, path)
    assert done.returncode == 1 and "would destroy it" in done.stderr
    assert digest(path) == before


def test_usage_errors(workdir):
    done = run("dumpbus")
    assert done.returncode == 1 and done.stderr.startswith("rumpnet dumpbus: ") and done.stderr.count("\n") == 1
    assert "-p PCAPFILE" in run("dumpbus", "--help").stdout


FIELDS = st.fixed_dictionaries({
    "magic": st.sampled_from([MAGIC, 0, 0xD054CA11]) | st.integers(0, 2**32 - 1),
    "version": st.sampled_from([0, 3, 2]) | st.integers(0, 2**32 - 1),
    "generation": st.integers(0, 2**64 - 1),
    "first": st.sampled_from([0, 24, DATA_SIZE, DATA_SIZE - 1, DATA_SIZE + 1]) | st.integers(0, 2**32 - 1),
    "last": st.sampled_from([0, 24, DATA_SIZE - 24, DATA_SIZE]) | st.integers(0, 2**32 - 1),
    "lock": st.sampled_from([0, 1]) | st.integers(0, 2**32 - 1),
})


@settings(max_examples=150, deadline=None)
@given(fields=FIELDS, ring=st.binary(max_size=64))
def test_any_header_is_shown_or_refused_in_one_line(tmp_path_factory, fields, ring):
    """The header check and the ring walk, in process: exit 0, or one line and exit 1; the file untouched."""
    path = str(tmp_path_factory.mktemp("hdr") / "bus")
    with open(path, "wb") as f:
        f.write(header(**fields) + ring + bytes(BUS_SIZE - 32 - len(ring)))
    before = digest(path)
    for args in (["-h", path], [path]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = dumpbus.main(args, None)
        if status:
            assert status == 1 and err.getvalue().startswith("rumpnet dumpbus: ") and err.getvalue().count("\n") == 1
        else:
            assert fields["magic"] == MAGIC and fields["version"] in (0, 3) and err.getvalue() == ""
    assert digest(path) == before
