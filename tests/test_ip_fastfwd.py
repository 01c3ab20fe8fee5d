"""The router's fast path against its full path, a router with net.inet.ip.fastforwarding=0: for any
batch of frames, good or spoiled, a router that forwards them through ip_fastfwd.py ends with the
same counters, route use counts and ARP entries, and leaves the same frames on both of its buses,
as one that takes every frame through ether_input, ip_input and ip_forward; and only well-formed
packets with a resolved next hop are fast forwarded.
"""

import struct

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rumpnet import open_node
from rumpnet.netinet.arp import arp_packet
from rumpnet.netinet.checksum import in_cksum
from rumpnet.testing import frames_on

INSIDE, OUTSIDE = bytes([10, 0, 1, 1]), bytes([10, 0, 2, 1])  # the router's addresses
HOST, NEIGHBOUR = bytes([10, 0, 1, 5]), bytes([10, 0, 1, 9])  # on the inside bus
PEER, BEYOND, UNANSWERED = bytes([10, 0, 2, 2]), bytes([192, 168, 5, 7]), bytes([172, 16, 0, 1])
HOST_MAC, NEIGHBOUR_MAC, NEIGHBOUR_OLD_MAC = b"\x02\0\0\0\0\x05", b"\x02\0\0\0\0\x09", b"\x02\0\0\0\0\x08"
PEER_MAC, GATEWAY_MAC = b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\xfe"
OUR_MAC = object()  # stands for the router's inside address, which differs between the two routers


class Spec:
    """One frame's fields; build() makes its bytes for a router, the header sum right unless spoiled."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def build(self, mac):
        dst_mac = mac if self.dst_mac is OUR_MAC else self.dst_mac
        if self.arp_reply:  # NEIGHBOUR with a new Ethernet address, learnt in the batch
            return dst_mac + NEIGHBOUR_MAC + b"\x08\x06" + arp_packet(2, NEIGHBOUR_MAC, NEIGHBOUR, mac, INSIDE)
        header_len = (self.vhl & 0xF) * 4
        total = header_len + len(self.data) + self.total_delta
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", self.vhl, 0, total & 0xFFFF, 7, self.frag, self.ttl, self.proto, 0,
                                   self.src, self.dst))
        ip += bytes(max(0, header_len - 20))  # options, as zeros (end of list)
        if self.ip_sum == "right":
            ip[10:12] = struct.pack("!H", in_cksum(bytes(ip)))
        elif self.ip_sum == "all ones":  # a right sum in its other form, where in_cksum gives 0
            ip[10:12] = b"\xff\xff" if in_cksum(bytes(ip)) == 0 else struct.pack("!H", in_cksum(bytes(ip)))
        else:
            ip[10:12] = struct.pack("!H", self.ip_sum)
        frame = dst_mac + HOST_MAC + struct.pack("!H", self.ethertype) + bytes(ip) + self.data
        return (frame + bytes(self.padding))[:self.cut]


GOOD = dict(dst_mac=OUR_MAC, ethertype=0x0800, vhl=0x45, total_delta=0, frag=0, ttl=64, proto=17, src=HOST,
            ip_sum="right", cut=None, arp_reply=False)
DESTINATIONS = [PEER, BEYOND, UNANSWERED, NEIGHBOUR, bytes([8, 8, 8, 8]), INSIDE, OUTSIDE,
                bytes([10, 0, 1, 255]), bytes([10, 0, 2, 255]), b"\xff" * 4, bytes([224, 0, 0, 9])]
SPOILERS = [("dst_mac", b"\xff" * 6), ("dst_mac", b"\x01\0\x5e\0\0\x09"), ("dst_mac", b"\x02\0\0\0\0\x77"),
            ("ethertype", 0x86DD), ("vhl", 0x46), ("vhl", 0x44), ("vhl", 0x55), ("total_delta", -1),
            ("total_delta", -30), ("total_delta", 1), ("total_delta", 40), ("frag", 0x4000), ("frag", 0x2001),
            ("ttl", 0), ("ttl", 1), ("ttl", 2), ("ttl", 255), ("proto", 1), ("proto", 6), ("src", OUTSIDE),
            ("src", bytes([224, 0, 0, 1])), ("src", b"\xff" * 4), ("src", bytes(4)), ("ip_sum", "all ones"),
            ("ip_sum", 0x1234), ("ip_sum", 0), ("cut", 0), ("cut", 13), ("cut", 20), ("cut", 33), ("cut", 34),
            ("cut", 40), ("arp_reply", True)]


@st.composite
def specs(draw):
    """A packet from the inside host to one of the destinations (more often one with a resolved next
    hop), with none, one or two fields spoiled."""
    dst = draw(st.one_of(st.sampled_from([PEER, BEYOND, NEIGHBOUR]), st.sampled_from(DESTINATIONS)))
    fields = dict(GOOD, dst=dst, data=draw(st.binary(max_size=60)), padding=draw(st.binary(max_size=12)))
    fields.update(draw(st.lists(st.sampled_from(SPOILERS), max_size=2)))
    return Spec(**fields)


async def router(node, workdir, name, fastforwarding, mtu, default_route=False):
    """Make a router between an inside bus (10.0.1.1) and an outside one (10.0.2.1), with NEIGHBOUR, PEER
    and the gateway to 192.168.5.0/24 (and by default_route to everywhere else) in its ARP cache,
    and a gateway to 172.16/16 that never answers."""
    node.sysctl.set("net.inet.ip.forwarding", 1)
    node.sysctl.set("net.inet.ip.fastforwarding", fastforwarding)
    inside = node.interface(node.create_shmif(str(workdir / f"{name}-inside")))
    outside = node.interface(node.create_shmif(str(workdir / f"{name}-outside")))
    node.add_address(inside.name, "10.0.1.1/24")
    node.add_address(outside.name, "10.0.2.1/24")
    node.add_route("192.168.5.0/24", "10.0.2.254")
    node.add_route("172.16.0.0/16", "10.0.2.253")
    node.arp.learn(outside, PEER, PEER_MAC, True)
    node.arp.learn(outside, bytes([10, 0, 2, 254]), GATEWAY_MAC, True)
    node.arp.learn(inside, NEIGHBOUR, NEIGHBOUR_OLD_MAC, True)
    if default_route:
        node.add_route("default", "10.0.2.254")
    outside.mtu = mtu  # as a link with a smaller MTU than shmif's would have
    return inside, outside


def wire(bus, router_macs):
    """The frames on a bus, the router's own addresses blanked (they differ between the two routers),
    and so are the identifier and header sum of the packets the router itself made (its ICMP errors,
    its ARP requests), once the sum is checked: each router counts identifiers from its own start."""
    frames = []
    for frame in frames_on(bus):
        for mac in router_macs:
            frame = frame.replace(mac, b"\0" * 6)
        frame = bytearray(frame)
        if frame[12:14] == b"\x08\x00" and frame[26:30] in (INSIDE, OUTSIDE):
            assert in_cksum(bytes(frame[14:34])) == 0
            frame[18:20] = frame[24:26] = b"\0\0"
        frames.append(bytes(frame))
    return frames


def state(node, interfaces, workdir, name):
    """Everything a batch may change: counters (the fast path's own aside), routes' use, ARP entries, wires."""
    stats = node.stats.snapshot()
    fast = stats["ip"].pop("fastforward", 0)
    macs = [ifp.mac for ifp in interfaces]
    arp = sorted((key, entry.mac, len(entry.hold)) for key, entry in node.arp.entries.items())
    return fast, (stats, [vars(ifp.counters).copy() for ifp in interfaces],
                  [route.describe() for route in node.routes.routes], arp,
                  [wire(str(workdir / f"{name}-{side}"), macs) for side in ("inside", "outside")])


def one(dst, data=b"x", **spoiled):
    return Spec(**{**GOOD, "dst": dst, "data": data, "padding": b"", **spoiled})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(specs(), min_size=1, max_size=12), mtu=st.sampled_from([1500, 30]),
       default_route=st.booleans())
@example(batch=[one(PEER), one(PEER, ttl=1), one(PEER, ttl=0), one(PEER)], mtu=1500, default_route=False)
@example(batch=[one(PEER), one(BEYOND, data=bytes(20))], mtu=30, default_route=False)  # too big for the link
@example(batch=[one(NEIGHBOUR), one(NEIGHBOUR, arp_reply=True), one(NEIGHBOUR)], mtu=1500, default_route=False)
@example(batch=[one(bytes([8, 8, 8, 8])), one(b"\xff" * 4), one(bytes([10, 0, 1, 255]))], mtu=1500,
         default_route=True)
async def test_the_fast_path_leaves_what_the_full_path_leaves(tmp_path_factory, batch, mtu, default_route):
    workdir = tmp_path_factory.mktemp("fastfwd")
    async with open_node() as fast, open_node() as full:
        fast_ifps = await router(fast, workdir, "fast", 1, mtu, default_route)
        full_ifps = await router(full, workdir, "full", 0, mtu, default_route)
        fast.if_input(fast_ifps[0], [spec.build(fast_ifps[0].mac) for spec in batch])
        full.if_input(full_ifps[0], [spec.build(full_ifps[0].mac) for spec in batch])
        fast_forwarded, fast_state = state(fast, fast_ifps, workdir, "fast")
        not_fast, full_state = state(full, full_ifps, workdir, "full")
        assert fast_state == full_state
        assert not_fast == 0
        event(f"packets fast forwarded: {min(fast_forwarded, 3)}{'+' if fast_forwarded >= 3 else ''}")
        assert fast_forwarded <= full_state[0]["ip"].get("forwarded", 0)


def packet(mac, dst, data, **spoiled):
    return one(dst, data, **spoiled).build(mac)


async def test_resolved_well_formed_packets_are_fast_forwarded_and_the_rest_are_not(tmp_path):
    async with open_node() as node:
        inside, outside = await router(node, tmp_path, "r", 1, 1500)
        node.if_input(inside, [packet(inside.mac, PEER, b"one"),
                               packet(inside.mac, BEYOND, b"two"),
                               packet(inside.mac, UNANSWERED, b"no ARP answer yet"),  # an ARP request, held
                               packet(inside.mac, PEER, b"time to live ran out", ttl=1),  # time exceeded
                               packet(inside.mac, PEER, b"options", vhl=0x46),  # forwarded the full way
                               packet(inside.mac, PEER, b"three")])
        assert node.stats.ip["fastforward"] == 3
        assert (node.stats.ip["forwarded"], node.stats.ip["ttl_exceeded"]) == (5, 1)  # the held one too
        assert node.stats.arp["requests_sent"] == 2  # the gateway to 172.16/16, and HOST for the ICMP error
        out = [frame for frame in frames_on(str(tmp_path / "r-outside")) if frame[12:14] == b"\x08\x00"]
        header_len = [(frame[14] & 0xF) * 4 for frame in out]
        assert [(frame[:6], frame[6:12], frame[22], frame[14 + hlen:14 + int.from_bytes(frame[16:18], "big")])
                for frame, hlen in zip(out, header_len)] == [
            (PEER_MAC, outside.mac, 63, b"one"), (GATEWAY_MAC, outside.mac, 63, b"two"),
            (PEER_MAC, outside.mac, 63, b"options"), (PEER_MAC, outside.mac, 63, b"three")]
        assert all(in_cksum(frame[14:34]) == 0 for frame in out)
        assert [route.describe()["use"] for route in node.routes.routes if route.gateway] == [1, 1]


async def test_with_fast_forwarding_off_every_packet_takes_the_layers(tmp_path):
    async with open_node() as node:
        inside, _ = await router(node, tmp_path, "r", 0, 1500)
        node.if_input(inside, [packet(inside.mac, PEER, b"one")])
        assert (node.stats.ip["forwarded"], node.stats.ip["fastforward"]) == (1, 0)
        node.sysctl.set("net.inet.ip.fastforwarding", "1")
        node.if_input(inside, [packet(inside.mac, PEER, b"two")])
        assert (node.stats.ip["forwarded"], node.stats.ip["fastforward"]) == (2, 1)


async def test_a_host_does_not_forward_what_is_not_for_it(tmp_path):
    async with open_node() as node:
        inside, _ = await router(node, tmp_path, "r", 1, 1500)
        node.sysctl.set("net.inet.ip.forwarding", "0")
        node.if_input(inside, [packet(inside.mac, PEER, b"one")])
        assert (node.stats.ip["forwarded"], node.stats.ip["fastforward"], node.stats.ip["not_for_us"]) == (0, 0, 1)
