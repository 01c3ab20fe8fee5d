"""rumpnet pcapin: a pcap's Ethernet frames go onto a bus, where dumpbus and running nodes see them.

Captures are written by dpkt or by tcpdump itself, and read back by dpkt,
so that rumpnet's pcap module is checked against other readers and writers.
"""

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

from rumpnet.net import pcap
from rumpnet.testing import frames_on, inject, run

FAKE = b"\x02\x00\x00\x00\x00\x99"
FAKE_IP = bytes([10, 0, 0, 9])
PACKET = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), st.binary(min_size=14, max_size=1514))


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.isfile(path) else None


def write_pcap(path, frames, linktype=dpkt.pcap.DLT_EN10MB):
    """A pcap written by dpkt's own writer."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype)
        for n, frame in enumerate(frames):
            writer.writepkt(frame, ts=1_700_000_000 + n / 10)


def read_pcap(path):
    with open(path, "rb") as f:
        return [frame for _, frame in dpkt.pcap.Reader(f)]


def arp_request(target, dst=b"\xff" * 6):
    return bytes(dpkt.ethernet.Ethernet(dst=dst, src=FAKE, type=0x0806, data=dpkt.arp.ARP(
        op=1, sha=FAKE, spa=FAKE_IP, tha=b"\0" * 6, tpa=target)))


def echo_request(dst_mac, dst_ip, seq):
    icmp = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=4242, seq=seq, data=b"replayed"))
    return bytes(dpkt.ethernet.Ethernet(dst=dst_mac, src=FAKE, type=0x0800,
                                        data=dpkt.ip.IP(src=FAKE_IP, dst=dst_ip, p=1, ttl=64, data=icmp)))


# -- replaying captures ---------------------------------------------------------------------------


def test_replayed_capture_is_on_the_bus_frame_for_frame(workdir):
    frames = [arp_request(bytes([10, 0, 0, n])) for n in range(1, 4)] + \
             [echo_request(b"\xb2\xa0\0\0\0\x02", bytes([10, 0, 0, 2]), seq) for seq in range(3)]
    capture, bus, out = workdir / "in.pcap", str(workdir / "bus"), workdir / "out.pcap"
    write_pcap(capture, frames)
    done = run("pcapin", capture, bus)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"6 frames written to {bus}\n"
    assert frames_on(bus) == frames
    assert run("dumpbus", "-p", out, bus).returncode == 0
    assert read_pcap(out) == frames
    assert run("pcapin", capture, bus).returncode == 0  # a second replay follows the first
    assert frames_on(bus) == frames + frames


def test_replay_reaches_running_nodes(pair, bus, workdir):
    """A captured ARP request and echo request, replayed, are answered by the node they name."""
    a, b = pair
    mac_b = bytes.fromhex(next(line.split()[1] for line in b.ifconfig("shmif0").splitlines()
                               if "address:" in line).replace(":", ""))
    capture = workdir / "ask.pcap"
    write_pcap(capture, [arp_request(bytes([10, 0, 0, 2])), echo_request(mac_b, bytes([10, 0, 0, 2]), 7)])
    assert run("pcapin", capture, bus).returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answers = [dpkt.ethernet.Ethernet(f) for f in frames_on(bus) if f[6:12] == mac_b and f[:6] == FAKE]
        if len(answers) == 2:
            break
        time.sleep(0.05)
    assert len(answers) == 2, "node B did not answer both replayed requests"
    arp_reply, echo_reply = answers
    assert arp_reply.arp.op == 2 and arp_reply.arp.tpa == FAKE_IP
    assert echo_reply.ip.icmp.type == 0 and echo_reply.ip.icmp.echo.seq == 7
    assert echo_reply.ip.icmp.echo.data == b"replayed"
    stats = b.run("netstat", "-s", "-p", "icmp").stdout
    assert "\t1 echo requests received" in stats


@pytest.fixture
def veth():
    """Two network namespaces joined by a veth pair, 192.0.2.1 and .2 (a documentation range), removed after."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the test creates network namespaces and a veth pair")
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (CI installs iproute2 and tcpdump)")
    spaces = [f"rumpnet-a-{os.getpid()}", f"rumpnet-b-{os.getpid()}"]
    made = []
    try:
        for space in spaces:
            done = subprocess.run(["ip", "netns", "add", space], capture_output=True, text=True)
            if done.returncode:
                pytest.skip(f"cannot create a network namespace here: {done.stderr.strip()}")
            made.append(space)
        ip = ["ip", "link", "add", "veth-a", "netns", spaces[0], "type", "veth", "peer", "name", "veth-b",
              "netns", spaces[1]]
        subprocess.run(ip, check=True)
        for space, device, address in zip(spaces, ("veth-a", "veth-b"), ("192.0.2.1/24", "192.0.2.2/24")):
            subprocess.run(["ip", "netns", "exec", space, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
                           check=True)
            subprocess.run(["ip", "-n", space, "addr", "add", address, "dev", device], check=True)
            subprocess.run(["ip", "-n", space, "link", "set", device, "up"], check=True)
        yield spaces
    finally:
        for space in made:
            subprocess.run(["ip", "netns", "del", space])


@pytest.mark.timeout(60)
def test_tcpdump_capture_from_linux_replays_frame_for_frame(veth, workdir, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    capture, bus, out = workdir / "veth.pcap", str(workdir / "bus"), workdir / "out.pcap"
    tcpdump = subprocess.Popen(["ip", "netns", "exec", veth[0], "tcpdump", "-i", "veth-a", "-n", "-U",
                                "--immediate-mode", "-w", str(capture)], stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on veth-a" in tcpdump.stderr.readline()
        ping = subprocess.run(["ip", "netns", "exec", veth[0], "ping", "-c", "2", "-i", "0.2", "192.0.2.2"],
                              capture_output=True, timeout=30)
        assert ping.returncode == 0
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.communicate(timeout=10)
    captured = read_pcap(capture)
    assert len(captured) >= 6  # ARP request and reply, two echo requests and their replies
    assert run("pcapin", capture, bus).returncode == 0
    assert run("dumpbus", "-p", out, bus).returncode == 0
    assert read_pcap(out) == captured
    lines = run("dumpbus", bus).stdout
    assert "Request who-has 192.0.2.2 tell 192.0.2.1, length 28" in lines
    assert lines.count("192.0.2.1 > 192.0.2.2: ICMP echo request") == 2
    assert lines.count("192.0.2.2 > 192.0.2.1: ICMP echo reply") == 2


# -- bad input: one line, exit 1, the bus untouched -------------------------------------------------


def good_pcap(frames=None):
    buffer = io.BytesIO()
    writer = dpkt.pcap.Writer(buffer, snaplen=65535)
    for frame in frames or [arp_request(bytes([10, 0, 0, 2])), echo_request(b"\xff" * 6, b"\xff" * 4, 1)]:
        writer.writepkt(frame, ts=1_700_000_000)
    return buffer.getvalue()


def with_record(frame, length=None, snaplen=65535, linktype=1):
    """A one-packet pcap in this machine's byte order, every field chosen by the caller."""
    return struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype) + \
        struct.pack("=IIII", 1_700_000_000, 0, len(frame), len(frame) if length is None else length) + frame


FRAME = arp_request(bytes([10, 0, 0, 2]))
BAD_PCAPS = {
    "cut-in-file-header": (good_pcap()[:10], "not a pcap file"),
    "cut-in-record-header": (good_pcap()[:24 + 16 + len(FRAME) + 7], "truncated: packet 2 header"),
    "cut-in-frame": (good_pcap()[:-5], "truncated: packet 2 has"),
    "text": (b"this is not a capture\n" * 4, "not a pcap file"),
    "pcapng": (struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28),
               "pcapng"),
    "linux-cooked": (with_record(FRAME, linktype=113), "link type 113 (LINUX_SLL), not Ethernet"),
    "raw-ip": (with_record(FRAME[14:], linktype=101), "link type 101"),
    "oversized": (with_record(bytes(1515)), "packet 1 is 1515 bytes, more than the 1514"),
    "runt": (with_record(bytes(10)), "shorter than an Ethernet header"),
    "cut-by-snaplen": (with_record(FRAME[:30], length=len(FRAME), snaplen=30), "cut to 30 of 42 bytes"),
    "captured-more-than-sent": (with_record(FRAME, length=20), "corrupt: packet 1"),
    "empty": (b"", "not a pcap file (only 0 bytes"),
}


@pytest.mark.parametrize("content, message", BAD_PCAPS.values(), ids=BAD_PCAPS.keys())
@pytest.mark.parametrize("bus_exists", [True, False], ids=["bus", "no-bus"])
def test_bad_pcap_one_line_exit_1_bus_untouched(workdir, content, message, bus_exists):
    capture, bus = workdir / "bad.pcap", str(workdir / "bus")
    capture.write_bytes(content)
    if bus_exists:
        inject(bus, FRAME)
    before = digest(bus)
    done = run("pcapin", capture, bus)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"rumpnet pcapin: {capture}: ") and done.stderr.count("\n") == 1
    assert message in done.stderr
    assert digest(bus) == before


def test_missing_pcap(workdir):
    done = run("pcapin", workdir / "nothing.pcap", workdir / "bus")
    assert done.returncode == 1
    assert done.stderr == f"rumpnet pcapin: {workdir / 'nothing.pcap'}: No such file or directory\n"
    assert not (workdir / "bus").exists()


@pytest.mark.parametrize("content, message", [(os.urandom(1024 * 1024), "not a shmif bus"),
                                              (b"#!/bin/sh\n", "not a shmif bus"),
                                              (struct.pack("=IIQIIII", 0xCA11D054, 3, 0, 0, 0, 0, 0) + bytes(100),
                                               "truncated")], ids=["random-bytes", "script", "truncated-bus"])
def test_bad_bus_one_line_exit_1_untouched(workdir, content, message):
    capture, bus = workdir / "good.pcap", workdir / "bus"
    capture.write_bytes(good_pcap())
    bus.write_bytes(content)
    done = run("pcapin", capture, bus)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"rumpnet pcapin: {bus}") and message in done.stderr
    assert done.stderr.count("\n") == 1
    assert bus.read_bytes() == content


def test_usage_error():
    done = run("pcapin", "only-one-file")
    assert done.returncode == 1 and done.stderr.startswith("rumpnet pcapin: ") and done.stderr.count("\n") == 1


# -- the pcap reader and writer -------------------------------------------------------------------


@settings(max_examples=300)
@given(packets=st.lists(PACKET, max_size=8))
def test_written_pcap_reads_back_exactly(packets):
    buffer = io.BytesIO()
    writer = pcap.Writer(buffer)
    for sec, usec, frame in packets:
        writer.write(frame, sec, usec)
    data = buffer.getvalue()
    capture = pcap.parse(data)
    assert (capture.linktype, capture.snaplen) == (1, pcap.SNAPLEN)
    assert capture.packets == [pcap.Packet(sec, usec, frame, len(frame)) for sec, usec, frame in packets]
    assert [(round(ts * 1e6), frame) for ts, frame in dpkt.pcap.Reader(io.BytesIO(data))] == \
        [(sec * 1_000_000 + usec, frame) for sec, usec, frame in packets]


@settings(max_examples=300)
@given(packets=st.lists(PACKET, min_size=1, max_size=4), cut=st.integers(0, 10_000))
def test_a_cut_file_is_refused_unless_cut_between_packets(packets, cut):
    buffer = io.BytesIO()
    writer = pcap.Writer(buffer)
    for sec, usec, frame in packets:
        writer.write(frame, sec, usec)
    data = buffer.getvalue()
    cut %= len(data)
    boundaries = {24}
    for _, _, frame in packets:
        boundaries.add(max(boundaries) + 16 + len(frame))
    if cut in boundaries:
        assert len(pcap.parse(data[:cut]).packets) == sorted(boundaries).index(cut)
    else:
        with pytest.raises(pcap.PcapError):
            pcap.parse(data[:cut])


@settings(max_examples=2000)
@given(data=st.binary(max_size=200))
def test_any_bytes_are_read_or_refused(data):
    try:
        capture = pcap.parse(data)
    except pcap.PcapError as e:
        assert "\n" not in str(e)
    else:
        assert all(len(packet.frame) <= packet.length for packet in capture.packets)


@settings(max_examples=2000)
@given(head=st.sampled_from([struct.pack("<IHH", 0xA1B2C3D4, 2, 4), struct.pack(">IHH", 0xA1B2C3D4, 2, 4),
                             struct.pack("<IHH", 0xA1B23C4D, 2, 4)]), rest=st.binary(max_size=200))
def test_bytes_after_a_good_magic_are_read_or_refused(head, rest):
    try:
        pcap.parse(head + rest)
    except pcap.PcapError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("order, magic, fraction, usec", [(">", 0xA1B2C3D4, 123456, 123456),
                                                          ("<", 0xA1B23C4D, 123456789, 123456),
                                                          (">", 0xA1B23C4D, 999_999_999, 999_999)],
                         ids=["big-endian", "nanoseconds", "big-endian-nanoseconds"])
def test_other_byte_orders_and_nanoseconds(order, magic, fraction, usec):
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1) + \
        struct.pack(order + "IIII", 1_700_000_000, fraction, 14, 60) + bytes(14)
    assert pcap.parse(data) == pcap.Capture(1, 65535, [pcap.Packet(1_700_000_000, usec, bytes(14), 60)])
