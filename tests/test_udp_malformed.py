"""Bad UDP on the bus: wrong lengths, bad checksums and truncated headers are counted and dropped.

Frames are written onto the bus with rumpnet.testing.inject, as another host
would send them, and the receiving node must go on answering afterwards.
"""

import struct

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rumpnet import SOCK_DGRAM
from rumpnet.netinet.checksum import in_cksum
from rumpnet.net.offload import KEYWORDS
from rumpnet.testing import inject, open_pair, ping_once

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
PORT = 9000
DROPS = ("too_short", "bad_length", "bad_checksum")


def right_checksum(datagram, length):
    """RFC 768: over the pseudo-header and the first `length` bytes; 0 is sent as 0xffff."""
    pseudo = A + B + struct.pack("!BBH", 0, 17, length)
    return in_cksum(pseudo + datagram[:length]) or 0xFFFF


def udp(data, *, length=None, checksum="right", sport=5000):
    """A datagram from a to b's PORT; checksum is "right", "zero" or a number to store."""
    length = 8 + len(data) if length is None else length
    datagram = bytearray(struct.pack("!HHHH", sport, PORT, length, 0) + data)
    if checksum == "right":
        checksum = right_checksum(bytes(datagram), length)
    struct.pack_into("!H", datagram, 6, 0 if checksum == "zero" else checksum)
    return bytes(datagram)


def frame(dst_mac, ip_payload):
    """Ethernet and a correct IPv4 header around ip_payload, whatever it holds."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(ip_payload), 1, 0, 64, 17, 0, A, B))
    struct.pack_into("!H", header, 10, in_cksum(header))
    return dst_mac + b"\x02\0\0\0\0\x01" + b"\x08\x00" + bytes(header) + ip_payload


def expected(ip_payload):
    """What RFC 768 and BSD's udp_input make of ip_payload: (counter, delivered data or None)."""
    if len(ip_payload) < 8:
        return "too_short", None
    length, checksum = struct.unpack_from("!HH", ip_payload, 4)
    if length < 8 or length > len(ip_payload):
        return "bad_length", None
    pseudo = A + B + struct.pack("!BBH", 0, 17, length)
    if checksum and in_cksum(pseudo + ip_payload[:length]) != 0:
        return "bad_checksum", None
    return "delivered", ip_payload[8:length]


async def deliver_and_check(bus, a, b, server, ip_payload):
    """Inject one datagram, check b's counters and socket against expected(), and that b still answers."""
    counter, data = expected(ip_payload)
    before = dict(b.stats.udp)
    inject(bus, frame(b.interfaces["shmif0"].mac, ip_payload))
    with trio.fail_after(5):
        while b.stats.udp["input"] == before.get("input", 0):
            await trio.sleep(0.005)
    after = dict(b.stats.udp)
    changed = {key for key in after if after[key] != before.get(key, 0)} - {"input", "no_checksum", "predicted"}
    assert changed == {counter}
    assert after[counter] == before.get(counter, 0) + 1
    if data is None:
        assert not server.rcv.records
    else:
        assert await server.recv() == data
    assert await ping_once(a, "10.0.0.2")
    probe = a.socket(SOCK_DGRAM)
    await probe.sendto(b"still here", ("10.0.0.2", PORT))
    with trio.fail_after(5):
        assert await server.recvfrom() == (b"still here", ("10.0.0.1", probe.getsockname()[1]))
    probe.close()


@pytest.fixture
async def bench(tmp_path):
    bus = str(tmp_path / "bus")
    async with open_pair(bus) as (a, b):
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", PORT))
        assert await ping_once(a, "10.0.0.2")  # both ARP caches filled: the frames below are all there is
        yield bus, a, b, server


GOOD = b"datagram body"
CASES = [
    ("truncated-header", udp(GOOD)[:5], "too_short"),
    ("empty", b"", "too_short"),
    ("length-beyond-packet", udp(GOOD, length=8 + len(GOOD) + 10), "bad_length"),
    ("length-below-header", udp(GOOD, length=4), "bad_length"),
    ("bad-checksum", udp(GOOD, checksum=0x1234), "bad_checksum"),
    ("checksum-off-by-one", udp(GOOD, checksum=right_checksum(udp(GOOD), 8 + len(GOOD)) ^ 1), "bad_checksum"),
    ("zero-checksum", udp(GOOD, checksum="zero"), "delivered"),
    ("length-shorter-than-packet", udp(GOOD, length=8 + 4), "delivered"),
]


@pytest.mark.parametrize("ip_payload, counter", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hand_made_datagram(bench, ip_payload, counter):
    bus, a, b, server = bench
    assert expected(ip_payload)[0] == counter  # the oracle agrees with the case's name
    await deliver_and_check(bus, a, b, server, ip_payload)


async def test_zero_checksum_is_counted_as_such(bench):
    bus, a, b, server = bench
    await deliver_and_check(bus, a, b, server, udp(GOOD, checksum="zero"))
    assert b.stats.udp["no_checksum"] == 1


async def test_a_shorter_udp_length_trims_the_data(bench):
    """RFC 768: the length field counts; bytes after it in the IP packet are not data (BSD trims them)."""
    bus, a, b, server = bench
    await deliver_and_check(bus, a, b, server, udp(GOOD, length=8 + 4))
    assert b.stats.udp["delivered"] == 2  # the trimmed datagram and the probe


async def test_bad_checksum_is_dropped_with_receive_offload_too(bench):
    """With udp4csum the interface checks the sum and marks the packet; the drop is the same."""
    bus, a, b, server = bench
    b.set_capabilities("shmif0", enable=KEYWORDS["udp4csum"])
    await deliver_and_check(bus, a, b, server, udp(GOOD, checksum=0x1234))
    await deliver_and_check(bus, a, b, server, udp(GOOD))


@st.composite
def spoiled_datagrams(draw):
    """A datagram with its length field, checksum or size spoiled (or, now and then, left alone)."""
    data = draw(st.binary(max_size=64))
    length = draw(st.one_of(st.none(), st.integers(0, 200)))
    checksum = draw(st.one_of(st.just("right"), st.just("zero"), st.integers(1, 0xFFFF)))
    datagram = udp(data, length=length, checksum=checksum, sport=draw(st.integers(1, 65535)))
    cut = draw(st.one_of(st.none(), st.integers(0, len(datagram))))
    return datagram if cut is None else datagram[:cut]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ip_payload=spoiled_datagrams())
async def test_any_spoiled_datagram_is_counted_once_and_the_node_answers(tmp_path_factory, ip_payload):
    bus = str(tmp_path_factory.mktemp("udp") / "bus")
    async with open_pair(bus) as (a, b):
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", PORT))
        assert await ping_once(a, "10.0.0.2")
        await deliver_and_check(bus, a, b, server, ip_payload)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(datagrams=st.lists(spoiled_datagrams(), min_size=2, max_size=30))
async def test_a_burst_of_spoiled_datagrams_is_all_counted(tmp_path_factory, datagrams):
    bus = str(tmp_path_factory.mktemp("burst") / "bus")
    async with open_pair(bus) as (a, b):
        server = b.socket(SOCK_DGRAM)
        server.setsockopt("SO_RCVBUF", 1 << 20)
        await server.bind(("0.0.0.0", PORT))
        assert await ping_once(a, "10.0.0.2")
        mac = b.interfaces["shmif0"].mac
        inject(bus, *(frame(mac, d) for d in datagrams))
        with trio.fail_after(5):
            while b.stats.udp["input"] < len(datagrams):
                await trio.sleep(0.005)
        outcomes = [expected(d) for d in datagrams]
        for key in DROPS + ("delivered",):
            assert b.stats.udp[key] == sum(1 for counter, _ in outcomes if counter == key)
        assert [await server.recv() for _ in range(len(server.rcv.records))] == \
            [data for counter, data in outcomes if counter == "delivered"]
        assert await ping_once(a, "10.0.0.2")
