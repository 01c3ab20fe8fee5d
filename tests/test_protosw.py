"""The protocol switch: a protocol registered from outside the stack gets its packets and its
ICMP errors; packets to the node itself go through the input queue; unknown numbers are counted.
"""

import errno

import dpkt
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rumpnet
from rumpnet import SOCK_RAW
from rumpnet.netinet.ip import ip_output
from rumpnet.net.loopback import IFQ_MAXLEN
from rumpnet.netinet.protosw import Protosw
from rumpnet.testing import NodeProcess, open_pair, ping_once

TOY = 253  # RFC 3692's number for experiments


class Toy:
    """A protocol of the tests: it keeps what it gets, and answers "count N" with "count N-1"
    (to the sender) until N is 0, or "fan N" with two "fan N-1"."""

    def __init__(self):
        self.received = []
        self.notices = []
        self.depth = self.deepest = 0
        self.send_errors = []

    def input(self, node, ifp, header, packet, marks):
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        try:
            payload = packet[header.hlen:]
            self.received.append((header.src, header.dst, payload))
            word, _, number = payload.partition(b" ")
            if word in (b"count", b"fan") and int(number) > 0:
                for _ in range(1 if word == b"count" else 2):
                    try:
                        ip_output(node, TOY, header.dst, header.src, b"%s %d" % (word, int(number) - 1))
                    except OSError as e:
                        self.send_errors.append(e.errno)
        finally:
            self.depth -= 1

    def ctlinput(self, node, notice):
        self.notices.append(notice)

    def entry(self):
        return Protosw("toy", self.input, self.ctlinput)


async def wait_until(condition, timeout=5):
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def test_a_registered_protocol_receives_its_packets(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        toy = Toy()
        b.protosw.register(TOY, toy.entry())
        sock = a.socket(SOCK_RAW, TOY)
        await sock.sendto(b"hello", ("10.0.0.2", 0))
        await wait_until(lambda: toy.received)
        assert toy.received == [(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), b"hello")]
        assert b.stats.ip["unknown_protocol"] == 0 and b.stats.icmp["errors_sent"] == 0


def test_a_node_without_the_protocol_answers_unreachable_and_counts_it(workdir, user):
    """The peer is a node process; the protocol's ctlinput hears its ICMP error, quote and all."""
    bus = str(workdir / "bus")
    peer = NodeProcess(workdir / "b.sock", user=user)
    try:
        peer.attach(bus, "10.0.0.2/24")
        toy = trio.run(_send_and_collect_errors, bus, "10.0.0.1/24", "10.0.0.2", None)
        netstat = peer.run("netstat", "-s").stdout
    finally:
        peer.stop()
    notice, = toy.notices
    assert (notice.icmp_type, notice.code, notice.error) == (3, 2, errno.ENOPROTOOPT)
    assert (notice.header.proto, notice.header.src, notice.header.dst) == (TOY, bytes([10, 0, 0, 1]),
                                                                            bytes([10, 0, 0, 2]))
    assert notice.quote[notice.header.hlen:notice.header.hlen + 8] == b"knock kn"
    assert "1 packets for an unknown protocol" in netstat


def test_a_router_answers_time_exceeded_to_the_protocol(workdir, user):
    bus1, bus2 = str(workdir / "bus1"), str(workdir / "bus2")
    router = NodeProcess(workdir / "r.sock", user=user, stack="router")
    try:
        router.attach(bus1, "10.0.1.1/24")
        router.attach(bus2, "10.0.2.1/24", ifname="shmif1")
        toy = trio.run(_send_and_collect_errors, bus1, "10.0.1.2/24", "10.0.2.9", "10.0.1.1")
    finally:
        router.stop()
    notice, = toy.notices
    assert (notice.icmp_type, notice.code, notice.error) == (11, 0, 0)
    assert notice.header.dst == bytes([10, 0, 2, 9]) and notice.header.proto == TOY


async def _send_and_collect_errors(bus, address, destination, gateway):
    """One toy packet from an in-process node (TTL 1), then the notices its protocol hears."""
    async with rumpnet.open_node() as node:
        node.add_address(node.create_shmif(bus), address)
        if gateway:
            node.add_route("default", gateway)
        toy = Toy()
        node.protosw.register(TOY, toy.entry())
        sock = node.socket(SOCK_RAW, TOY)
        sock.setsockopt("IP_TTL", 1)
        await sock.sendto(b"knock knock", (destination, 0))
        await wait_until(lambda: toy.notices)
        await trio.sleep(0.1)  # and no second one
        return toy


async def test_a_packet_to_self_waits_in_the_queue_and_never_recurses(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, _b):
        toy = Toy()
        a.protosw.register(TOY, toy.entry())
        sock = a.socket(SOCK_RAW, TOY)
        await sock.sendto(b"count 20", ("10.0.0.1", 0))
        assert [payload for _, _, payload in toy.received] == [b"count %d" % n for n in range(20, -1, -1)]
        assert toy.deepest == 1
        assert a.stats.ip["delivered"] == 21


async def test_a_protocol_that_keeps_answering_itself_lets_others_run(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, _b):
        toy = Toy()
        a.protosw.register(TOY, toy.entry())
        sock = a.socket(SOCK_RAW, TOY)
        await sock.sendto(b"count 2000", ("10.0.0.1", 0))
        assert len(toy.received) == IFQ_MAXLEN  # one drain's worth; the rest after a checkpoint
        assert await ping_once(a, "10.0.0.1")
        await wait_until(lambda: len(toy.received) == 2001, timeout=30)
        assert toy.deepest == 1


async def test_the_queue_to_self_is_bounded_and_counts_its_drops(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, _b):
        toy = Toy()
        a.protosw.register(TOY, toy.entry())
        sock = a.socket(SOCK_RAW, TOY)
        await sock.sendto(b"fan 12", ("10.0.0.1", 0))
        await wait_until(lambda: not a.ipintrq.queue, timeout=30)
        assert a.stats.ip["loopback_dropped"] == len(toy.send_errors) > 0
        assert set(toy.send_errors) == {errno.ENOBUFS}
        assert await ping_once(a, "10.0.0.1")


async def test_register_refuses_taken_and_impossible_numbers():
    async with rumpnet.open_node() as node:
        entry = Toy().entry()
        with pytest.raises(ValueError, match="protocol 17 is already udp"):
            node.protosw.register(17, entry)
        for number in (0, 255, 256, -1, "253", True):
            with pytest.raises(ValueError, match="is not 1 to 254"):
                node.protosw.register(number, entry)
        with pytest.raises(TypeError, match="is not a Protosw"):
            node.protosw.register(TOY, Toy())
        node.protosw.register(TOY, entry)
        node.protosw.unregister(TOY)
        with pytest.raises(ValueError, match="not registered"):
            node.protosw.unregister(TOY)


async def test_an_unregistered_protocol_is_unknown_again(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        toy = Toy()
        b.protosw.register(TOY, toy.entry())
        b.protosw.unregister(TOY)
        errors = a.socket(SOCK_RAW, rumpnet.IPPROTO_ICMP)
        await a.socket(SOCK_RAW, TOY).sendto(b"anyone?", ("10.0.0.2", 0))
        with trio.fail_after(5):
            reply, _ = await errors.recvfrom()
        assert reply[20:22] == b"\x03\x02"  # protocol unreachable
        assert not toy.received and b.stats.ip["unknown_protocol"] == 1


def icmp_error_frame(dst_mac, icmp_type, code, quote):
    icmp = dpkt.icmp.ICMP(type=icmp_type, code=code, data=b"\0\0\0\0" + quote)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 9]), dst=bytes([10, 0, 0, 2]), p=1, ttl=64, data=icmp)
    return bytes(dpkt.ethernet.Ethernet(dst=dst_mac, src=b"\x02" * 6, type=0x0800, data=ip))


def quoted_toy_packet(hl, body):
    return bytes(dpkt.ip.IP(src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 9]), p=TOY, hl=hl, data=body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(icmp_type=st.sampled_from([3, 11, 12]), code=st.integers(0, 255),
       quote=st.builds(quoted_toy_packet, st.integers(0, 15), st.binary(max_size=40)).flatmap(
           lambda packet: st.integers(0, len(packet)).map(lambda cut: packet[:cut])) | st.binary(max_size=60))
async def test_ctlinput_sees_only_whole_quotes(tmp_path_factory, icmp_type, code, quote):
    async with open_pair(str(tmp_path_factory.mktemp("quote") / "bus")) as (_a, b):
        toy = Toy()
        b.protosw.register(TOY, toy.entry())
        ifp = b.interfaces["shmif0"]
        b.if_input(ifp, [icmp_error_frame(ifp.mac, icmp_type, code, quote)])
        hlen = (quote[0] & 0xF) * 4 if quote else 0
        whole = len(quote) >= 20 and quote[0] >> 4 == 4 and hlen >= 20 and len(quote) >= hlen + 8
        if whole and quote[9] == TOY:
            notice, = toy.notices
            assert notice.quote == quote and notice.header.hlen == hlen
        else:
            assert not toy.notices
        assert b.stats.icmp["bad_quote"] == (0 if whole else 1)


@pytest.mark.parametrize("icmp_type, code, expected", [
    (3, 3, errno.ECONNREFUSED), (3, 1, errno.EHOSTUNREACH), (12, 0, errno.ENOPROTOOPT), (11, 0, None),
], ids=["port-unreachable", "host-unreachable", "parameter-problem", "time-exceeded"])
async def test_udp_ctlinput_gives_the_connected_socket_its_error(tmp_path, icmp_type, code, expected):
    bus = str(tmp_path / "bus")
    async with open_pair(bus) as (a, b):
        sock = b.socket(rumpnet.SOCK_DGRAM)
        await sock.connect(("10.0.0.9", 7))
        sock_port = sock.getsockname()[1]
        udp = dpkt.udp.UDP(sport=sock_port, dport=7, data=b"ping")
        udp.ulen = len(bytes(udp))
        quote = bytes(dpkt.ip.IP(src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 9]), p=17, data=udp))
        ifp = b.interfaces["shmif0"]
        b.if_input(ifp, [icmp_error_frame(ifp.mac, icmp_type, code, quote)])
        if expected is None:
            with pytest.raises(OSError) as raised:
                await sock.recvfrom(timeout=0.1)
            assert raised.value.errno == errno.EAGAIN
        else:
            with pytest.raises(OSError) as raised:
                await sock.send(b"again")
            assert raised.value.errno == expected
