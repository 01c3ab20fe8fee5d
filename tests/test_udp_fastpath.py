"""UDP's fast paths against the full path, a node with net.inet.udp.fastpath=0: for any batch of
frames, good or spoiled, a node that takes them through the fast path (udp_fastpath.py) ends with
the same counters, socket queues and answers, and only well-formed datagrams to an open port are
predicted; for any burst, sendmmsg or sendto through udp_output_burst leaves the same results,
counters and frames on the wire as the same datagrams sent one by one the full way.
"""

import errno
import struct

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rumpnet import SHUT_WR, SOCK_DGRAM, open_node
from rumpnet.net.offload import KEYWORDS
from rumpnet.netinet.checksum import in_cksum, pseudo_header_sum
from rumpnet.netinet.protosw import Protosw
from rumpnet.testing import frames_on

OURS, PEER, OTHER = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]), bytes([10, 0, 0, 3])
SUBNET_BROADCAST, LIMITED_BROADCAST = bytes([10, 0, 0, 255]), b"\xff" * 4
OUR_MAC = object()  # stands for the receiving node's own address, which differs between the two nodes


class Spec:
    """One frame's fields; build() makes its bytes for a node, with checksums right unless spoiled."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def build(self, mac):
        data = self.data
        length = 8 + len(data) if self.udp_length is None else self.udp_length
        udp = bytearray(struct.pack("!HHHH", self.sport, self.dport, length, 0) + data)
        if self.udp_sum == "right":
            pseudo = pseudo_header_sum(self.src, self.dst, 17, length)
            udp[6:8] = struct.pack("!H", in_cksum(bytes(udp[:length]), pseudo) or 0xFFFF)
        elif self.udp_sum != "zero":
            udp[6:8] = struct.pack("!H", self.udp_sum)
        header_len = (self.vhl & 0xF) * 4
        total = 20 + len(udp) + (header_len - 20 if header_len > 20 else 0) + self.total_delta
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", self.vhl, 0, total & 0xFFFF, 7, self.frag, 64, self.proto, 0,
                                   self.src, self.dst))
        ip += bytes(max(0, header_len - 20))  # options, as zeros (end of list)
        if self.ip_sum_right:
            ip[10:12] = struct.pack("!H", in_cksum(bytes(ip)))
        dst_mac = mac if self.dst_mac is OUR_MAC else self.dst_mac
        frame = dst_mac + b"\x02\0\0\0\0\x01" + struct.pack("!H", self.ethertype) + bytes(ip) + bytes(udp)
        return (frame + bytes(self.padding))[:self.cut]


GOOD = dict(dst_mac=OUR_MAC, ethertype=0x0800, vhl=0x45, total_delta=0, frag=0, proto=17, src=PEER, dst=OURS,
            udp_length=None, udp_sum="right", ip_sum_right=True, cut=None)
SPOILERS = [("dst_mac", b"\xff" * 6), ("dst_mac", b"\x01\0\x5e\0\0\x01"), ("dst_mac", b"\x02\0\0\0\0\x09"),
            ("ethertype", 0x0806), ("ethertype", 0x86DD), ("vhl", 0x46), ("vhl", 0x44), ("vhl", 0x55),
            ("total_delta", -1), ("total_delta", -9), ("total_delta", 1), ("total_delta", 40), ("total_delta", -30),
            ("frag", 0x4000), ("frag", 0x2000), ("frag", 0x0001), ("proto", 1), ("proto", 6), ("proto", 99),
            ("src", OTHER), ("src", bytes([224, 0, 0, 1])), ("src", LIMITED_BROADCAST), ("src", bytes(4)),
            ("dst", SUBNET_BROADCAST), ("dst", LIMITED_BROADCAST), ("dst", OTHER),
            ("udp_length", 0), ("udp_length", 7), ("udp_length", 8), ("udp_length", 9), ("udp_length", 30),
            ("udp_length", 80), ("udp_sum", "zero"), ("udp_sum", 0x1234), ("udp_sum", 0xFFFF),
            ("ip_sum_right", False), ("cut", 0), ("cut", 13), ("cut", 14), ("cut", 30), ("cut", 41), ("cut", 42),
            ("cut", 50)]


@st.composite
def specs(draw):
    """A well-formed datagram to one of the ports (open or not), with none, one or two fields spoiled."""
    fields = dict(GOOD, sport=draw(st.sampled_from([5000, 6000])), dport=draw(st.integers(9000, 9004)),
                  data=draw(st.binary(max_size=40)), padding=draw(st.binary(max_size=12)))
    fields.update(draw(st.lists(st.sampled_from(SPOILERS), max_size=2)))
    return Spec(**fields)


async def receiver(node, bus, fastpath=1):
    """Make node 10.0.0.2 with sockets of every kind of match: wildcard, bound to the address,
    connected to 10.0.0.1:5000, and one with room for a single small datagram."""
    node.sysctl.set("net.inet.udp.fastpath", fastpath)
    ifp = node.interface(node.create_shmif(bus))
    node.add_address(ifp.name, "10.0.0.2/24")
    sockets = [node.socket(SOCK_DGRAM) for _ in range(4)]
    await sockets[0].bind(("0.0.0.0", 9000))
    await sockets[1].bind(("10.0.0.2", 9001))
    await sockets[2].bind(("10.0.0.2", 9002))
    await sockets[2].connect(("10.0.0.1", 5000))
    sockets[3].setsockopt("SO_RCVBUF", 60)
    await sockets[3].bind(("0.0.0.0", 9003))
    return ifp, sockets


def state(node, ifp, sockets):
    """Everything input may change: counters (the fast path's own aside), queues, socket drops."""
    stats = node.stats.snapshot()
    predicted = stats["udp"].pop("predicted", 0)
    return predicted, (stats, vars(ifp.counters).copy(),
                       [(list(sock.rcv.records), sock.rcv.cc, sock.drops) for sock in sockets])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(specs(), min_size=1, max_size=12))
async def test_the_fast_path_leaves_what_the_full_path_leaves(tmp_path_factory, batch):
    workdir = tmp_path_factory.mktemp("fastpath")
    async with open_node() as fast, open_node() as full:
        fast_ifp, fast_sockets = await receiver(fast, str(workdir / "fast"))
        full_ifp, full_sockets = await receiver(full, str(workdir / "full"), fastpath=0)
        fast.if_input(fast_ifp, [spec.build(fast_ifp.mac) for spec in batch])
        full.if_input(full_ifp, [spec.build(full_ifp.mac) for spec in batch])
        predicted, fast_state = state(fast, fast_ifp, fast_sockets)
        not_predicted, full_state = state(full, full_ifp, full_sockets)
        assert fast_state == full_state
        assert not_predicted == 0
        event(f"datagrams predicted: {min(predicted, 3)}{'+' if predicted >= 3 else ''}")
        udp = full_state[0]["udp"]
        assert predicted <= udp.get("delivered", 0) + udp.get("full_socket", 0)


async def test_well_formed_datagrams_to_open_ports_are_predicted_and_the_rest_are_not(tmp_path):
    async with open_node() as node:
        ifp, sockets = await receiver(node, str(tmp_path / "bus"))
        good = dict(dst_mac=OUR_MAC, ethertype=0x0800, vhl=0x45, total_delta=0, frag=0x4000, proto=17, src=PEER,
                    dst=OURS, sport=5000, udp_length=None, udp_sum="right", ip_sum_right=True, padding=b"", cut=None)
        batch = [Spec(**good, dport=9000, data=b"one"),
                 Spec(**good, dport=9004, data=b"closed port"),  # port unreachable: the full path answers
                 Spec(**{**good, "udp_sum": "zero"}, dport=9001, data=b"no checksum"),
                 Spec(**{**good, "vhl": 0x46}, dport=9000, data=b"options"),
                 Spec(**good, dport=9002, data=b"connected"),
                 Spec(**{**good, "sport": 6000}, dport=9002, data=b"not the connected peer")]
        node.if_input(ifp, [spec.build(ifp.mac) for spec in batch])
        udp = node.stats.udp
        assert udp["predicted"] == 2
        assert (udp["input"], udp["delivered"], udp["no_port"], udp["no_checksum"]) == (6, 4, 2, 1)
        assert node.stats.icmp["output"] == 2
        assert [data for data, _ in sockets[0].rcv.records] == [b"one", b"options"]
        assert [data for data, _ in sockets[1].rcv.records] == [b"no checksum"]
        assert [data for data, _ in sockets[2].rcv.records] == [b"connected"]


def good_datagram(mac, dport=9000, data=b"datagram"):
    return Spec(**GOOD, sport=5000, dport=dport, data=data, padding=b"").build(mac)


async def test_with_rx_checksum_offload_the_full_path_marks_and_delivers(tmp_path):
    async with open_node(capenable=KEYWORDS["udp4csum-rx"] | KEYWORDS["ip4csum-rx"]) as node:
        ifp, sockets = await receiver(node, str(tmp_path / "bus"))
        node.if_input(ifp, [good_datagram(ifp.mac)])
        assert [data for data, _ in sockets[0].rcv.records] == [b"datagram"]
        assert node.stats.udp["delivered"] == 1 and node.stats.udp["predicted"] == 0


async def test_a_protocol_registered_in_udps_place_gets_the_datagrams(tmp_path):
    async with open_node() as node:
        ifp, sockets = await receiver(node, str(tmp_path / "bus"))
        seen = []
        node.protosw.unregister(17)
        node.protosw.register(17, Protosw("myudp", lambda node, ifp, header, packet, marks: seen.append(packet[28:])))
        node.if_input(ifp, [good_datagram(ifp.mac)])
        assert seen == [b"datagram"]
        assert not sockets[0].rcv.records and node.stats.udp["predicted"] == 0


# -- output: a sendmmsg burst against the same datagrams sent one by one ------------------------

PEER_MAC, GATEWAY_MAC = b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\xfe"
DESTINATIONS = ["10.0.0.2", "192.168.1.1", "10.0.0.3", "10.0.0.255", "10.0.0.1", "224.0.0.1"]


async def sender(node, bus, fastpath):
    """Make node 10.0.0.1 with 10.0.0.2 and the default gateway 10.0.0.254 in its ARP cache."""
    node.sysctl.set("net.inet.udp.fastpath", fastpath)
    ifp = node.interface(node.create_shmif(bus))
    node.add_address(ifp.name, "10.0.0.1/24")
    node.add_route("default", "10.0.0.254")
    node.arp.learn(ifp, bytes([10, 0, 0, 2]), PEER_MAC, True)
    node.arp.learn(ifp, bytes([10, 0, 0, 254]), GATEWAY_MAC, True)
    return ifp


def wire(bus, mac):
    """The frames on the bus, blanked where two nodes differ once the sums are checked: the sender's
    own address, each IPv4 identifier and header sum, and UDP's source port (an ephemeral one) and sum."""
    frames = []
    for frame in frames_on(bus):
        frame = bytearray(frame.replace(mac, b"\0" * 6))
        if frame[12:14] == b"\x08\x00":
            assert in_cksum(bytes(frame[14:34])) == 0
            frame[18:20] = frame[24:26] = b"\0\0"
            if frame[23] == 17:
                length = int.from_bytes(frame[38:40], "big")
                pseudo = pseudo_header_sum(frame[26:30], frame[30:34], 17, length)
                assert in_cksum(bytes(frame[34:34 + length]), pseudo) == 0
                frame[34:36] = frame[40:42] = b"\0\0"
        frames.append(bytes(frame))
    return frames


async def outcome(call):
    """What a call returned, or ("error", errno)."""
    try:
        return await call
    except OSError as error:
        return "error", error.errno


@pytest.mark.parametrize("trouble", [None, "pending error", "shut down", "address too", "closed"])
@pytest.mark.parametrize("destination", DESTINATIONS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.one_of(st.integers(0, 60), st.sampled_from([1472, 1473, 2000])), min_size=1, max_size=8),
       connected=st.booleans(), bound=st.booleans(), broadcast=st.booleans(), ttl=st.sampled_from([None, 1, 200]),
       burst=st.booleans())
async def test_a_burst_leaves_what_the_same_datagrams_sent_one_by_one_leave(tmp_path_factory, destination, trouble,
                                                                              sizes, connected, bound, broadcast, ttl,
                                                                              burst):
    """The fast node sends with sendmmsg (burst) or sendto, the full node with sendto, fast path off."""
    workdir = tmp_path_factory.mktemp("burst")
    datagrams = [bytes([n]) * size for n, size in enumerate(sizes)]
    results, predicted = [], []
    async with open_node() as fast, open_node() as full:
        for node, name in ((fast, "fast"), (full, "full")):
            ifp = await sender(node, str(workdir / name), fastpath=int(node is fast))
            sock = node.socket(SOCK_DGRAM)
            if bound:
                await sock.bind(("0.0.0.0", 4000))
            if broadcast:
                sock.setsockopt("SO_BROADCAST", 1)
            if ttl is not None:
                sock.setsockopt("IP_TTL", ttl)
            address = (destination, 9000)
            if connected:
                await outcome(sock.connect(address))
                if trouble != "address too":
                    address = None
            if trouble == "pending error":
                sock.notify(errno.ECONNREFUSED)  # as an ICMP port unreachable would
            elif trouble == "shut down":
                await outcome(sock.shutdown(SHUT_WR))  # ENOTCONN unless connected
            elif trouble == "closed":
                sock.close()
            if node is fast and burst:
                sent = await outcome(sock.sendmmsg(datagrams, address))
            else:  # sendmmsg's rules: the first datagram's error is raised, a later one ends the burst
                sent = 0
                for data in datagrams:
                    result = await outcome(sock.sendto(data, address) if address is not None else sock.send(data))
                    if result != len(data):
                        sent = sent or result
                        break
                    sent += 1
            stats = node.stats.snapshot()
            predicted.append(stats["udp"].pop("predicted_output", 0))
            results.append((sent, wire(str(workdir / name), ifp.mac), stats, vars(ifp.counters).copy(),
                            [route.describe() for route in node.routes.routes]))
    assert results[0] == results[1]
    assert predicted[1] == 0
    resolved = destination in ("10.0.0.2", "192.168.1.1")
    if resolved and trouble is None and (bound or connected) and sizes[0] <= 1472:
        assert predicted[0] > 0, "the fast path sent nothing where nothing stood in its way"
    if not resolved or trouble == "closed":
        assert predicted[0] == 0


async def test_with_the_fast_path_off_every_datagram_takes_the_layers(tmp_path):
    async with open_node() as node:
        ifp, sockets = await receiver(node, str(tmp_path / "bus"), fastpath=0)
        node.if_input(ifp, [good_datagram(ifp.mac)])
        assert [data for data, _ in sockets[0].rcv.records] == [b"datagram"]
        assert node.stats.udp["delivered"] == 1 and node.stats.udp["predicted"] == 0
        node.sysctl.set("net.inet.udp.fastpath", "1")
        node.if_input(ifp, [good_datagram(ifp.mac)])
        assert node.stats.udp["delivered"] == 2 and node.stats.udp["predicted"] == 1


@pytest.mark.parametrize("fastpath", [1, 0])
async def test_a_datagram_whose_sum_comes_out_zero_is_sent_with_all_ones(tmp_path, fastpath):
    """RFC 768: a computed sum of 0 is sent as 0xffff, since 0 in the field says "no checksum"."""
    src, dst, length = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 10
    initial = pseudo_header_sum(src, dst, 17, length) + 4000 + 9000 + length
    words = (word.to_bytes(2, "big") for word in range(1, 0x10000))
    data = next(word for word in words if in_cksum(word, initial) == 0)
    async with open_node() as node:
        ifp = await sender(node, str(tmp_path / "bus"), fastpath)
        sock = node.socket(SOCK_DGRAM)
        await sock.bind(("0.0.0.0", 4000))
        assert await sock.sendmmsg([data], ("10.0.0.2", 9000)) == 1
        assert node.stats.udp["predicted_output"] == fastpath
    frame = frames_on(str(tmp_path / "bus"))[-1]
    assert frame[34:42] == struct.pack("!HHHH", 4000, 9000, length, 0xFFFF) and frame[42:] == data
