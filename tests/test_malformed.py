"""Malformed frames on the bus are counted and dropped; the node keeps answering pings."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rumpnet.netinet.checksum import in_cksum
from rumpnet.testing import inject, open_pair, ping_once

BROADCAST = b"\xff" * 6
SOURCE = b"\x02\x00\x00\x00\x00\x99"
A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def eth(ethertype, payload, dst=BROADCAST):
    return dst + SOURCE + struct.pack("!H", ethertype) + payload


def ipv4(payload, proto=1, *, version=4, ihl=5, total=None, frag=0, checksum=None):
    total = 20 + len(payload) if total is None else total
    header = bytearray(struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, total, 1, frag, 64, proto, 0, A, B))
    struct.pack_into("!H", header, 10, in_cksum(header) if checksum is None else checksum)
    return bytes(header) + payload


def icmp_echo(checksum_ok=True):
    message = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"x" * 8)
    struct.pack_into("!H", message, 2, in_cksum(message) ^ (0 if checksum_ok else 0x1111))
    return bytes(message)


def arp(hrd=1, op=1, length=28):
    return struct.pack("!HHBBH6s4s6s4s", hrd, 0x0800, 6, 4, op, SOURCE, A, b"\0" * 6, B)[:length]


CASES = [
    ("runt", b"\xff" * 10, ("shmif", "runt")),
    ("oversized", eth(0x0800, b"\0" * 2000), ("shmif", "oversized")),
    ("unknown-ethertype", eth(0x88B5, b"hello"), ("ether", "unknown_type")),
    ("arp-truncated", eth(0x0806, arp(length=20)), ("arp", "short")),
    ("arp-bad-hardware", eth(0x0806, arp(hrd=6)), ("arp", "bad_format")),
    ("arp-bad-op", eth(0x0806, arp(op=9)), ("arp", "bad_op")),
    ("ip-truncated", eth(0x0800, b"\x45\0\0"), ("ip", "too_short")),
    ("ip-version-6", eth(0x0800, ipv4(icmp_echo(), version=6)), ("ip", "bad_version")),
    ("ip-short-ihl", eth(0x0800, ipv4(icmp_echo(), ihl=3)), ("ip", "bad_header_length")),
    ("ip-bad-checksum", eth(0x0800, ipv4(icmp_echo(), checksum=0x1234)), ("ip", "bad_checksum")),
    ("ip-total-too-long", eth(0x0800, ipv4(icmp_echo(), total=400)), ("ip", "bad_length")),
    ("ip-fragment", eth(0x0800, ipv4(icmp_echo(), frag=0x2000)), ("ip", "fragment_dropped")),
    ("icmp-truncated", eth(0x0800, ipv4(b"\x08\0")), ("icmp", "too_short")),
    ("icmp-bad-checksum", eth(0x0800, ipv4(icmp_echo(checksum_ok=False))), ("icmp", "bad_checksum")),
]


@pytest.mark.parametrize("frame, counter", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hand_made_frame_is_counted_and_dropped(tmp_path, frame, counter):
    bus = str(tmp_path / "bus")
    async with open_pair(bus) as (a, b):
        assert await ping_once(a, "10.0.0.2")
        before = b.stats.snapshot()
        inject(bus, frame)
        assert await ping_once(a, "10.0.0.2")
        after = b.stats.snapshot()
        proto, key = counter
        assert after[proto].get(key, 0) == before[proto].get(key, 0) + 1


async def test_valid_echo_in_the_same_form_is_answered(tmp_path):
    """The builders above make good frames when nothing is spoiled: the cases fail for their one fault."""
    bus = str(tmp_path / "bus")
    async with open_pair(bus) as (a, b):
        assert await ping_once(a, "10.0.0.2")
        inject(bus, eth(0x0800, ipv4(icmp_echo())))
        assert await ping_once(a, "10.0.0.2")
        assert b.stats.icmp["echo_received"] == 3


ETHERTYPES = st.sampled_from([0x0800, 0x0806, 0x86DD, 0x1234])


@st.composite
def spoiled_frames(draw):
    """Frames that start plausibly (our ethertypes, IPv4/ARP-like headers) and then go wrong anywhere."""
    ethertype = draw(ETHERTYPES)
    if ethertype == 0x0800 and draw(st.booleans()):
        body = bytearray(ipv4(draw(st.binary(max_size=64)), proto=draw(st.sampled_from([1, 17, 6, 99]))))
        for _ in range(draw(st.integers(0, 4))):
            if body:
                body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
        body = bytes(body[:draw(st.integers(0, len(body)))])
    else:
        body = draw(st.binary(max_size=200))
    return eth(ethertype, body, dst=draw(st.sampled_from([BROADCAST, b"\x02" * 6])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(spoiled_frames() | st.binary(max_size=1600), min_size=1, max_size=40))
async def test_random_frames_never_stop_the_node(tmp_path_factory, frames):
    bus = str(tmp_path_factory.mktemp("fuzz") / "bus")
    async with open_pair(bus) as (a, b):
        inject(bus, *frames)
        assert await ping_once(a, "10.0.0.2")
        seen = b.stats.snapshot()
        assert seen["ether"]["input"] >= 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=spoiled_frames() | st.binary(max_size=1514))
async def test_ether_input_takes_any_bytes(tmp_path_factory, frame):
    """Straight into the stack, without the bus: many more shapes per second."""
    bus = str(tmp_path_factory.mktemp("direct") / "bus")
    async with open_pair(bus) as (a, b):
        ifp = b.interfaces["shmif0"]
        b.if_input(ifp, [frame])
        for_another = len(frame) >= 14 and not frame[0] & 1 and frame[:6] != ifp.mac
        assert b.stats.ether["input"] == (0 if for_another else 1)  # ether_input filters by address
        assert await ping_once(a, "10.0.0.2")
