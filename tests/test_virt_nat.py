"""The router's source translation (ip_nat.py) on the packets themselves: sums stay right, errors map back.

A node in this program with a virt interface that is never started (no tap
is opened): NatTable reads only its name, kind and address. Packets are
made and checked with dpkt, apart from the stack's own header code.
"""

import ipaddress

import dpkt
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from rumpnet import open_node
from rumpnet.net.ifnet import Interface, InterfaceAddress
from rumpnet.net.if_virt import VirtDriver
from rumpnet.netinet.checksum import in_cksum
from rumpnet.netinet.ip_nat import MAX_MAPPINGS, OUTSIDE_IDS, TIMEOUT

INSIDE, OUTSIDE, LINUX = "10.0.0.2", "192.168.77.1", "192.168.77.2"


def packed(text):
    return ipaddress.IPv4Address(text).packed


def with_nat(body):
    """Run body(node, virt0) in a router node with net.inet.ip.nat on."""
    async def main():
        async with open_node(stack="router") as node:
            node.sysctl.set("net.inet.ip.nat", 1)
            ifp = Interface("virt0", VirtDriver)
            ifp.addresses.append(InterfaceAddress(ipaddress.IPv4Address(OUTSIDE),
                                                  ipaddress.IPv4Network("192.168.77.0/24")))
            return body(node, ifp)
    return trio.run(main)


def ip_packet(src, dst, payload, proto):
    packet = dpkt.ip.IP(src=packed(src), dst=packed(dst), p=proto, ttl=64, data=payload)
    packet.len = len(packet)  # dpkt fills in the sums when bytes() is taken
    return bytearray(bytes(packet))


def udp_packet(src, dst, sport, dport, data, checksum=True):
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    datagram.ulen = len(datagram)
    raw = ip_packet(src, dst, datagram, dpkt.ip.IP_PROTO_UDP)
    if not checksum:
        raw[26:28] = b"\0\0"
    return raw


def sums_right(raw):
    """Whether dpkt, recomputing every sum, gets the bytes as they are (but the outer header's:
    ip_forward computes it after the TTL, right after the translation)."""
    raw = bytearray(raw)
    raw[10:12] = b"\0\0"
    raw[10:12] = in_cksum(raw[:20]).to_bytes(2, "big")
    parsed = dpkt.ip.IP(bytes(raw))
    if isinstance(parsed.data, dpkt.udp.UDP) and parsed.data.sum == 0:
        return True
    parsed.sum = 0
    parsed.data.sum = 0
    return bytes(parsed) == bytes(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=120), st.booleans())
def test_any_bytes_in_either_direction_never_raise(raw, outward):
    raw = bytearray(raw)
    raw[0] = 0x40 | (raw[0] & 0xF)

    def body(node, ifp):
        hlen = (raw[0] & 0xF) * 4
        if hlen < 20 or hlen > len(raw):
            return
        (node.nat.output if outward else node.nat.input)(ifp, raw, hlen)
    with_nat(body)


@settings(max_examples=100, deadline=None)
@given(sport=st.integers(1, 65535), dport=st.integers(1, 65535), data=st.binary(max_size=64),
       checksum=st.booleans())
def test_udp_out_and_back_keeps_every_sum_right(sport, dport, data, checksum):
    def body(node, ifp):
        out = udp_packet(INSIDE, LINUX, sport, dport, data, checksum)
        assert node.nat.output(ifp, out, 20)
        sent = dpkt.ip.IP(bytes(out))
        assert sent.src == packed(OUTSIDE) and sent.data.sport in OUTSIDE_IDS
        assert sums_right(out)
        back = udp_packet(LINUX, OUTSIDE, dport, sent.data.sport, b"re:" + data, checksum)
        assert node.nat.input(ifp, back, 20)
        got = dpkt.ip.IP(bytes(back))
        assert (got.dst, got.data.dport) == (packed(INSIDE), sport)
        assert sums_right(back)
    with_nat(body)


def tcp_packet(src, dst, sport, dport, data):
    segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1000, ack=2000, flags=dpkt.tcp.TH_ACK, data=data)
    return ip_packet(src, dst, segment, dpkt.ip.IP_PROTO_TCP)


@settings(max_examples=100, deadline=None)
@given(sport=st.integers(1, 65535), dport=st.integers(1, 65535), data=st.binary(max_size=64))
def test_tcp_out_and_back_keeps_every_sum_right(sport, dport, data):
    def body(node, ifp):
        out = tcp_packet(INSIDE, LINUX, sport, dport, data)
        assert node.nat.output(ifp, out, 20)
        sent = dpkt.ip.IP(bytes(out))
        assert sent.src == packed(OUTSIDE) and sent.data.sport in OUTSIDE_IDS and sent.data.data == data
        assert sums_right(out)
        back = tcp_packet(LINUX, OUTSIDE, dport, sent.data.sport, b"re:" + data)
        assert node.nat.input(ifp, back, 20)
        got = dpkt.ip.IP(bytes(back))
        assert (got.dst, got.data.dport) == (packed(INSIDE), sport)
        assert sums_right(back)
        assert node.nat.output(ifp, tcp_packet(INSIDE, LINUX, sport, dport, b""), 20)
        assert len(node.nat.outward) == 1  # the connection's next segment takes the same mapping
        stray = tcp_packet(LINUX, OUTSIDE, dport, sent.data.sport + 1, b"")
        assert not node.nat.input(ifp, stray, 20)  # no mapping: the router's own TCP answers it
    with_nat(body)


def test_a_quoted_tcp_segment_is_rewritten_for_the_sender_and_its_cut_sum_left_alone():
    def body(node, ifp):
        out = tcp_packet(INSIDE, LINUX, 5000, 80, b"GET /")
        assert node.nat.output(ifp, out, 20)
        quote = bytes(out[:28])  # the IP header and the first 8 bytes: the ports and the sequence number
        error = ip_packet(LINUX, OUTSIDE, dpkt.icmp.ICMP(type=3, code=1, data=dpkt.icmp.ICMP.Unreach(data=quote)),
                          dpkt.ip.IP_PROTO_ICMP)
        assert node.nat.input(ifp, error, 20)
        assert dpkt.ip.IP(bytes(error)).dst == packed(INSIDE) and sums_right(error)
        inner = bytes(error[28:])
        assert inner[12:16] == packed(INSIDE) and int.from_bytes(inner[20:22], "big") == 5000
        assert inner[24:28] == quote[24:28]
    with_nat(body)


def test_echo_is_mapped_by_id_and_the_reply_comes_back():
    def body(node, ifp):
        request = ip_packet(INSIDE, LINUX, dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=77, seq=1, data=b"x")),
                            dpkt.ip.IP_PROTO_ICMP)
        assert node.nat.output(ifp, request, 20)
        echo = dpkt.ip.IP(bytes(request)).data.data
        assert sums_right(request) and echo.id != 77
        reply = ip_packet(LINUX, OUTSIDE, dpkt.icmp.ICMP(type=0, data=dpkt.icmp.ICMP.Echo(id=echo.id, seq=1,
                                                                                         data=b"x")),
                          dpkt.ip.IP_PROTO_ICMP)
        assert node.nat.input(ifp, reply, 20)
        assert dpkt.ip.IP(bytes(reply)).data.data.id == 77 and sums_right(reply)
        other = ip_packet(LINUX, OUTSIDE, dpkt.icmp.ICMP(type=0, data=dpkt.icmp.ICMP.Echo(id=echo.id + 1, seq=1)),
                          dpkt.ip.IP_PROTO_ICMP)
        assert not node.nat.input(ifp, other, 20)  # no mapping: the router's own to deliver
    with_nat(body)


def test_a_port_unreachable_quoting_a_translated_datagram_is_rewritten_for_the_sender():
    def body(node, ifp):
        out = udp_packet(INSIDE, LINUX, 5000, 9, b"anyone?")
        assert node.nat.output(ifp, out, 20)
        quote = bytes(out[:28])
        error = ip_packet(LINUX, OUTSIDE, dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=quote)),
                          dpkt.ip.IP_PROTO_ICMP)
        assert node.nat.input(ifp, error, 20)
        parsed = dpkt.ip.IP(bytes(error))
        assert parsed.dst == packed(INSIDE) and sums_right(error)
        inner = bytes(error[28:])
        assert inner[12:16] == packed(INSIDE) and int.from_bytes(inner[20:22], "big") == 5000
        assert dpkt.ip.IP(inner + b"anyone?").sum == dpkt.ip.IP(bytes(udp_packet(INSIDE, LINUX, 5000, 9,
                                                                                   b"anyone?"))).sum
        assert node.stats.nat["errors_translated"] == 1
    with_nat(body)


def test_other_protocols_out_of_a_translating_interface_are_dropped_and_counted():
    def body(node, ifp):
        gre = ip_packet(INSIDE, LINUX, b"\0" * 8, 47)
        assert not node.nat.output(ifp, gre, 20)
        assert node.stats.nat["unsupported"] == 1
    with_nat(body)


def test_the_table_is_bounded():
    def body(node, ifp):
        for port in range(1, MAX_MAPPINGS + 2):
            node.nat.output(ifp, udp_packet(INSIDE, LINUX, port, 9, b""), 20)
        assert len(node.nat.outward) == MAX_MAPPINGS
        assert node.stats.nat["table_full"] == 1
    with_nat(body)


async def test_a_mapping_expires_when_unused(autojump_clock):
    async with open_node(stack="router") as node:
        node.sysctl.set("net.inet.ip.nat", 1)
        ifp = Interface("virt0", VirtDriver)
        ifp.addresses.append(InterfaceAddress(ipaddress.IPv4Address(OUTSIDE),
                                              ipaddress.IPv4Network("192.168.77.0/24")))
        assert node.nat.output(ifp, udp_packet(INSIDE, LINUX, 5000, 9, b""), 20)
        await trio.sleep(TIMEOUT[17] / 2)
        assert node.nat.output(ifp, udp_packet(INSIDE, LINUX, 5000, 9, b""), 20)  # used again: lives on
        await trio.sleep(TIMEOUT[17] * 0.75)
        assert len(node.nat.outward) == 1
        await trio.sleep(TIMEOUT[17])
        assert len(node.nat.outward) == 0 and node.stats.nat["expired"] == 1


@pytest.mark.parametrize("nat, forwarding", [(0, 1), (1, 0)])
def test_nothing_is_translated_unless_nat_and_forwarding_are_on(nat, forwarding):
    def body(node, ifp):
        node.sysctl.set("net.inet.ip.nat", nat)
        node.sysctl.set("net.inet.ip.forwarding", forwarding)
        assert not node.nat.translating(ifp)
    with_nat(body)
