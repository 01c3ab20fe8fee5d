"""Checksum offload on shmif: the interface does the sums the stack leaves to it.

With TX offload the stack leaves a checksum zero and the interface fills it
in before the frame reaches the bus; with RX offload the interface checks it
and marks the packet. Whatever the setting, the bus carries the same bytes.
Checksums here are checked with dpkt's in_cksum, not the stack's own.
"""

import struct

import dpkt
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from rumpnet import SHUT_WR, SOCK_DGRAM, SOCK_STREAM, open_node
from rumpnet.net import offload
from rumpnet.testing import frames_on, inject, ping_once, run

ALL, TX, RX = 0x7FF80, 0x6AA80, 0x15500  # the man page's values
SUMS = offload.M_CSUM_IPv4 | offload.M_CSUM_UDPv4 | offload.M_CSUM_TCPv4  # every sum the stack can leave to the interface
A_IP, B_IP = "10.0.0.1", "10.0.0.2"
CLIENT_PORT, SERVER_PORT, TCP_PORT = 40000, 7777, 7000
FAKE_MAC = b"\x02\x00\x00\x00\x00\x99"
FAKE_IP = bytes([10, 0, 0, 9])
UDP_SUM_AT = 14 + 20 + 6  # in a frame whose IP header has no options
TCP_SUM_AT = 14 + 20 + 16

# -- building frames independently of the stack ---------------------------------------------


def ip_packet(payload, proto, *, src=FAKE_IP, dst=bytes([10, 0, 0, 2]), options=b""):
    """An IPv4 packet built by dpkt, its header checksum right (dpkt fills a zero sum in)."""
    return bytes(dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=1, opts=options,
                            hl=5 + len(options) // 4, data=payload))


def transport_sum(src, dst, proto, body, at):
    """The checksum a UDP datagram or TCP segment should carry (at: where it lies), by dpkt."""
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(body))
    return dpkt.in_cksum(pseudo + body[:at] + b"\0\0" + body[at + 2:])


def tcp_sum(src, dst, segment):
    return transport_sum(src, dst, 6, segment, 16)


def udp_sum(src, dst, datagram):
    """The checksum a UDP datagram should carry (0xffff for a computed zero), by dpkt."""
    return transport_sum(src, dst, 17, datagram, 6) or 0xFFFF


def udp_frame(data, *, sport=CLIENT_PORT, dport=SERVER_PORT, checksum=None, trailer=b"", dst_mac, options=b""):
    """Ethernet + IPv4 + UDP to node B; the right checksum unless one is given; trailer is inside IP, after UDP."""
    datagram = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    dst = bytes([10, 0, 0, 2])
    value = udp_sum(FAKE_IP, dst, datagram) if checksum is None else checksum
    datagram = datagram[:6] + struct.pack("!H", value) + datagram[8:]
    return dst_mac + FAKE_MAC + b"\x08\x00" + ip_packet(datagram + trailer, 17, dst=dst, options=options)


def sums_are_right(frame):
    """Every checksum in an IPv4 frame is right (IP header, ICMP, UDP, TCP)."""
    eth = dpkt.ethernet.Ethernet(frame)
    if eth.type != 0x0800:
        return True
    raw = frame[14:]
    hlen = (raw[0] & 0xF) * 4
    total = struct.unpack("!H", raw[2:4])[0]
    if dpkt.in_cksum(raw[:hlen]) != 0:
        return False
    body = raw[hlen:total]
    if raw[9] == 1:
        return dpkt.in_cksum(body) == 0
    if raw[9] == 17:
        return body[6:8] == struct.pack("!H", udp_sum(raw[12:16], raw[16:20], body))
    if raw[9] == 6:
        return body[16:18] == struct.pack("!H", tcp_sum(raw[12:16], raw[16:20], body))
    return True


def tcp_frame(data, *, flags=0x18, seq=1000, ack=1, checksum=None, dst_mac, options=b""):
    """Ethernet + IPv4 + TCP to node B's TCP_PORT, built by dpkt; the right checksum unless one is given."""
    segment = bytearray(bytes(dpkt.tcp.TCP(sport=CLIENT_PORT, dport=TCP_PORT, seq=seq, ack=ack, flags=flags,
                                           win=8192, off=5 + len(options) // 4, opts=options, data=data)))
    dst = bytes([10, 0, 0, 2])
    struct.pack_into("!H", segment, 16, tcp_sum(FAKE_IP, dst, segment) if checksum is None else checksum)
    return dst_mac + FAKE_MAC + b"\x08\x00" + ip_packet(bytes(segment), 6, dst=dst)


# -- the same exchange with any offload setting ------------------------------------------------


async def frames_reach(bus, count):
    """Wait until the bus holds count frames."""
    with trio.fail_after(5):
        while len(frames_on(bus)) < count:
            await trio.sleep(0.01)


async def tcp_exchange(bus, a, b):
    """A connects to B, a line each way, and both close.

    Each step waits for the frames of the one before (a delayed ACK among
    them), and a long least RTO keeps retransmissions out however slow the
    machine, so that the frames come the same way in every run.
    """
    for node in (a, b):
        node.sysctl.set("net.inet.tcp.rto_min", "5000")
    start = len(frames_on(bus))
    listener, client = b.socket(SOCK_STREAM), a.socket(SOCK_STREAM)
    await listener.bind(("0.0.0.0", TCP_PORT))
    await listener.listen(1)
    await client.bind(("0.0.0.0", CLIENT_PORT))  # not an ephemeral port: the same in every run
    await client.connect((B_IP, TCP_PORT))
    server, _ = await listener.accept()
    await frames_reach(bus, start + 3)  # SYN, SYN-ACK, ACK
    await client.send(b"hello, tcp")
    assert await server.recv(100) == b"hello, tcp"
    await frames_reach(bus, start + 5)  # the data, B's delayed ACK
    await server.send(b"echo: hello, tcp")
    assert await client.recv(100) == b"echo: hello, tcp"
    await frames_reach(bus, start + 7)
    await client.shutdown(SHUT_WR)
    assert await server.recv(100) == b""
    await frames_reach(bus, start + 9)  # A's FIN, B's ACK
    server.close()
    assert await client.recv(100) == b""
    await frames_reach(bus, start + 11)  # B's FIN, A's ACK
    for sock in (client, listener):
        sock.close()


def watch_tcp(node):
    """Record, without changing, what node's TCP and its shmif leave to each other: the M_CSUM_*
    flags and the checksum field of each TCP frame handed down, the marks of each segment handed up."""
    handed_down, marks_up = [], []
    ifp, entry = node.interfaces["shmif0"], node.protosw.get(6)
    output = ifp.output

    def recording_output(frame, csum_flags=0):
        if frame[12:14] == b"\x08\x00" and frame[23] == 6:
            handed_down.append((csum_flags, frame[TCP_SUM_AT:TCP_SUM_AT + 2]))
        output(frame, csum_flags)

    def recording_input(node, ifp, header, packet, marks):
        marks_up.append(marks)
        entry.input(node, ifp, header, packet, marks)

    ifp.output = recording_output
    node.protosw.unregister(6)
    node.protosw.register(6, entry._replace(input=recording_input))
    return handed_down, marks_up


def assert_tcp_offload_as_enabled(bits, handed_down, marks_up):
    """With TCP's TX bit every segment goes down unsummed, flagged; without it summed, unflagged.
    With the RX bit every segment comes up checked by the interface; without it unchecked."""
    assert handed_down and marks_up
    if bits & offload.IFCAP_CSUM_TCPv4_Tx:
        assert all(flags & offload.M_CSUM_TCPv4 and field == b"\0\0" for flags, field in handed_down)
    else:
        assert not any(flags & offload.M_CSUM_TCPv4 for flags, _ in handed_down)
    l4 = offload.CSUM_L4_CHECKED | offload.CSUM_L4_BAD
    expected = offload.CSUM_L4_CHECKED if bits & offload.IFCAP_CSUM_TCPv4_Rx else 0
    assert all(marks & l4 == expected for marks in marks_up)


async def exchange(bus, a_bits, b_bits):
    """Two pings, a UDP round trip and a TCP connection between nodes whose shmif has these
    if_capenable bits; the bus frames."""
    async with open_node(capenable=a_bits) as a, open_node(capenable=b_bits) as b:
        a.add_address(a.create_shmif(bus), f"{A_IP}/24")
        b.add_address(b.create_shmif(bus), f"{B_IP}/24")
        assert (a.interfaces["shmif0"].capenable, b.interfaces["shmif0"].capenable) == (a_bits, b_bits)
        watched = [(a_bits, watch_tcp(a)), (b_bits, watch_tcp(b))]
        with trio.fail_after(5):  # A reads B's announcement first, so that ARP goes the same way every run
            while not a.stats.arp.get("input"):
                await trio.sleep(0.01)
        assert await ping_once(a, B_IP)
        assert await ping_once(a, B_IP)
        server, client = b.socket(SOCK_DGRAM), a.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        await client.bind(("0.0.0.0", CLIENT_PORT))
        await client.sendto(b"hello, offload", (B_IP, SERVER_PORT))
        data, source = await server.recvfrom(timeout=5)
        await server.sendto(b"echo: " + data, source)
        assert await client.recv(timeout=5) == b"echo: hello, offload"
        await tcp_exchange(bus, a, b)
        for bits, (handed_down, marks_up) in watched:
            assert_tcp_offload_as_enabled(bits, handed_down, marks_up)
        macs = {a.interfaces["shmif0"].mac: b"\xaa" * 6, b.interfaces["shmif0"].mac: b"\xbb" * 6}
        for node in (a, b):
            assert node.stats.ip.get("bad_checksum", 0) == node.stats.udp.get("bad_checksum", 0) == 0
            assert node.stats.tcp.get("bad_checksum", 0) == 0
    return frames_on(bus), macs


def normalised(frames, macs):
    """The frames with what differs between runs made constant: MACs, IP ids, the ping's timestamp,
    TCP's sequence numbers (counted from each side's SYN).

    The checksums those fields feed are computed again (by dpkt), so a frame
    whose sums were right stays right; UDP's sum covers none of them and is
    kept as it was on the bus.
    """
    isn = {}
    return [_normalised(frame, macs, isn) for frame in frames]


def _normalised(frame, macs, isn):
    eth = dpkt.ethernet.Ethernet(frame)
    eth.src, eth.dst = macs.get(eth.src, eth.src), macs.get(eth.dst, eth.dst)
    if isinstance(eth.data, dpkt.arp.ARP):
        eth.data.sha, eth.data.tha = macs.get(eth.data.sha, eth.data.sha), macs.get(eth.data.tha, eth.data.tha)
    elif isinstance(eth.data, dpkt.ip.IP):
        ip = eth.data
        ip.id, ip.sum = 0, 0
        if isinstance(ip.data, dpkt.icmp.ICMP):
            echo = ip.data.data
            echo.data = b"\0" * 8 + echo.data[8:]
            ip.data.sum = 0
        elif isinstance(ip.data, dpkt.tcp.TCP):
            tcp = ip.data
            if tcp.flags & dpkt.tcp.TH_SYN:
                isn[ip.src] = tcp.seq
            tcp.seq = (tcp.seq - isn[ip.src]) % 2**32
            if tcp.flags & dpkt.tcp.TH_ACK:
                tcp.ack = (tcp.ack - isn[ip.dst]) % 2**32
            tcp.sum = 0
    return bytes(eth)


CONFIGS = [("all", ALL, ALL), ("tx-only", TX, TX), ("rx-only", RX, RX), ("tx-to-rx", TX, RX),
           ("ip4csum-only", 0x300, 0x300), ("tcp4csum-only", 0xC00, 0xC00)]


@pytest.mark.parametrize("a_bits, b_bits", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
async def test_bus_frames_are_the_same_with_offload_as_without(tmp_path, a_bits, b_bits):
    plain, plain_macs = await exchange(str(tmp_path / "plain"), 0, 0)
    offloaded, offloaded_macs = await exchange(str(tmp_path / "offloaded"), a_bits, b_bits)
    assert len(plain) == len(offloaded) == 21  # 2 announcements, ARP, 2 pings, UDP there and back, 11 of TCP
    assert all(sums_are_right(frame) for frame in plain + offloaded)
    assert normalised(offloaded, offloaded_macs) == normalised(plain, plain_macs)


async def test_capenable_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RUMP_SHMIF_CAPENABLE", "0x6aa80")
    async with open_node() as node:
        name = node.create_shmif(str(tmp_path / "bus"))
        assert node.interfaces[name].capenable == TX


@pytest.mark.parametrize("value, complaint", [("0x1", "bits shmif does not offer"), ("lots", "not a number"),
                                              ("-1", "out of range")])
def test_bad_capenable_is_refused_by_name(workdir, monkeypatch, value, complaint):
    monkeypatch.setenv("RUMP_SHMIF_CAPENABLE", value)
    done = run("server", f"unix://{workdir}/node.sock")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "RUMP_SHMIF_CAPENABLE" in done.stderr and complaint in done.stderr
    assert not (workdir / "node.sock").exists()


# -- RX: a bad checksum is dropped and counted, whoever checks it ---------------------------------


SPOILT = {"udp-checksum": (UDP_SUM_AT, "udp"), "ip-header-checksum": (14 + 10, "ip")}


@pytest.mark.parametrize("bits", [0, RX, ALL], ids=["stack-checks", "interface-checks", "all-offload"])
@pytest.mark.parametrize("at, proto", SPOILT.values(), ids=SPOILT.keys())
async def test_wrong_checksum_is_dropped_and_counted(tmp_path, bits, at, proto):
    bus = str(tmp_path / "bus")
    async with open_node(capenable=bits) as b:
        b.add_address(b.create_shmif(bus), f"{B_IP}/24")
        mac = b.interfaces["shmif0"].mac
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        bad = bytearray(udp_frame(b"spoilt", dst_mac=mac))
        bad[at] ^= 0x01
        inject(bus, bytes(bad), udp_frame(b"fine", dst_mac=mac))
        assert await server.recv(timeout=5) == b"fine"
        assert getattr(b.stats, proto)["bad_checksum"] == 1
        assert b.stats.udp["delivered"] == 1
        assert not server.rcv.records


@pytest.mark.parametrize("bits", [0, RX, ALL], ids=["stack-checks", "interface-checks", "all-offload"])
async def test_tcp_segment_with_a_wrong_checksum_is_dropped_and_counted(tmp_path, bits):
    bus = str(tmp_path / "bus")
    async with open_node(capenable=bits) as b:
        b.add_address(b.create_shmif(bus), f"{B_IP}/24")
        _, marks_up = watch_tcp(b)
        listener = b.socket(SOCK_STREAM)
        await listener.bind(("0.0.0.0", TCP_PORT))
        await listener.listen(1)
        mac = b.interfaces["shmif0"].mac
        bad = bytearray(tcp_frame(b"", flags=dpkt.tcp.TH_SYN, dst_mac=mac))
        bad[14 + 20 + 4] ^= 0x01  # the sequence number
        inject(bus, bytes(bad), tcp_frame(b"", flags=dpkt.tcp.TH_SYN, dst_mac=mac))
        with trio.fail_after(5):  # the good SYN after it is answered (its SYN-ACK waits for ARP)
            while not b.stats.tcp.get("syncache_added"):
                await trio.sleep(0.01)
        assert b.stats.tcp["bad_checksum"] == 1 and b.stats.tcp["syncache_added"] == 1
        checked, bad_mark = offload.CSUM_L4_CHECKED, offload.CSUM_L4_BAD
        by_interface = [checked | bad_mark, checked] if bits & offload.IFCAP_CSUM_TCPv4_Rx else [0, 0]
        assert [marks & (checked | bad_mark) for marks in marks_up] == by_interface


async def test_udp_shorter_than_its_ip_packet_is_accepted_with_rx_offload(tmp_path):
    """UDP's checksum covers the UDP length, not whatever else the IP packet carries after it."""
    bus = str(tmp_path / "bus")
    async with open_node(capenable=RX) as b:
        b.add_address(b.create_shmif(bus), f"{B_IP}/24")
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        inject(bus, udp_frame(b"short", dst_mac=b.interfaces["shmif0"].mac, trailer=b"padding"))
        assert await server.recv(timeout=5) == b"short"
        assert b.stats.udp.get("bad_checksum", 0) == 0


async def test_a_datagram_to_the_node_itself_is_not_counted_as_sent_without_a_checksum(tmp_path):
    """With TX offload the stack leaves the UDP sum to the interface; a datagram that loops
    back (to an own address, or a broadcast's copy) never reaches it, and counts as checked."""
    async with open_node(capenable=TX) as a:
        a.add_address(a.create_shmif(str(tmp_path / "bus")), f"{A_IP}/24")
        server, client = a.socket(SOCK_DGRAM), a.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        client.setsockopt("SO_BROADCAST", 1)
        await client.sendto(b"me", (A_IP, SERVER_PORT))
        await client.sendto(b"all", ("10.0.0.255", SERVER_PORT))
        assert [await server.recv(timeout=5) for _ in range(2)] == [b"me", b"all"]
        assert a.stats.udp["no_checksum"] == 0


async def test_a_datagram_held_for_arp_keeps_the_sums_it_was_sent_with(tmp_path):
    """The stack tells the interface, packet by packet, which sums it left: switching
    TX offload off while a packet waits for ARP must not send it with zero sums."""
    bus = str(tmp_path / "bus")
    async with open_node(capenable=TX) as a, open_node() as b:
        a.add_address(a.create_shmif(bus), f"{A_IP}/24")
        b.add_address(b.create_shmif(bus), f"{B_IP}/24")
        server, client = b.socket(SOCK_DGRAM), a.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        await client.sendto(b"held", (B_IP, SERVER_PORT))  # no ARP entry yet: held
        a.set_capabilities("shmif0", disable=TX)
        assert await server.recv(timeout=5) == b"held"
        assert b.stats.ip.get("bad_checksum", 0) == 0
        assert all(sums_are_right(frame) for frame in frames_on(bus))


async def test_a_router_forwards_a_datagram_without_a_checksum_as_it_came(tmp_path):
    """TX offload sums what the router's own stack sends, never what it forwards:
    a datagram sent without a UDP checksum (RFC 768 allows it) leaves with none."""
    near, far = str(tmp_path / "near"), str(tmp_path / "far")
    async with open_node(stack="router", capenable=ALL) as router, open_node() as b:
        router.add_address(router.create_shmif(near), "10.0.0.254/24")
        router.add_address(router.create_shmif(far), "10.0.1.254/24")
        b.add_address(b.create_shmif(far), "10.0.1.1/24")
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", SERVER_PORT))
        datagram = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, 8 + 5, 0) + b"no ck"
        packet = ip_packet(datagram, 17, dst=bytes([10, 0, 1, 1]))
        inject(near, router.interfaces["shmif0"].mac + FAKE_MAC + b"\x08\x00" + packet)
        assert await server.recv(timeout=5) == b"no ck"
        assert router.stats.ip["forwarded"] == 1
        forwarded = [f for f in frames_on(far) if f[12:14] == b"\x08\x00" and f[23] == 17]
        assert len(forwarded) == 1
        assert forwarded[0][14 + 20:] == datagram  # the UDP checksum still zero
        assert dpkt.in_cksum(forwarded[0][14:34]) == 0  # the IP header's sum right after the TTL's decrement


# -- the interface's own work, frame by frame ------------------------------------------------------

DATA = st.binary(max_size=300)
OPTIONS = st.sampled_from([b"", b"\x01\x01\x01\x00", b"\x94\x04\x00\x00\x01\x01\x01\x00"])
PORTS = st.integers(0, 65535)


def zero_sums(frame, hlen):
    """What the stack hands an interface with full TX offload: IP and UDP checksums left zero."""
    out = bytearray(frame)
    out[24:26] = b"\0\0"
    out[14 + hlen + 6:14 + hlen + 8] = b"\0\0"
    return bytes(out)


@settings(max_examples=200)
@given(data=DATA, options=OPTIONS, sport=PORTS, dport=PORTS, trailer=st.binary(max_size=8))
def test_tx_offload_fills_in_the_sums_software_would(data, options, sport, dport, trailer):
    right = udp_frame(data, sport=sport, dport=dport, dst_mac=b"\xbb" * 6, options=options, trailer=trailer)
    hlen = 20 + len(options)
    assert offload.finish_tx(zero_sums(right, hlen), SUMS) == right
    assert offload.finish_tx(right, SUMS) == right  # summing again gives the same sums
    assert offload.finish_tx(zero_sums(right, hlen), 0) == zero_sums(right, hlen)  # nothing asked: left alone
    ip_only = offload.finish_tx(zero_sums(right, hlen), offload.M_CSUM_IPv4)
    assert ip_only == right[:UDP_SUM_AT + len(options)] + b"\0\0" + right[UDP_SUM_AT + len(options) + 2:]


@settings(max_examples=200)
@given(data=DATA, options=OPTIONS, trailer=st.binary(max_size=8), flip=st.integers(0, 10_000))
def test_rx_offload_marks_checked_and_bad(data, options, trailer, flip):
    right = udp_frame(data, dst_mac=b"\xbb" * 6, options=options, trailer=trailer)
    good = offload.CSUM_IP_CHECKED | offload.CSUM_L4_CHECKED
    assert offload.check_rx(right, RX) == good
    assert offload.check_rx(right, 0) == 0
    udp_at = 14 + 20 + len(options)
    covered = [udp_at + i for i in range(4)] + [udp_at + 8 + i for i in range(len(data))]  # ports, data
    spoilt = bytearray(right)
    spoilt[covered[flip % len(covered)]] ^= 0x01
    assert offload.check_rx(bytes(spoilt), RX) == good | offload.CSUM_L4_BAD
    header = bytearray(right)
    header[14 + 8] ^= 0x01  # the TTL
    assert offload.check_rx(bytes(header), RX) & offload.CSUM_IP_BAD


def test_rx_offload_leaves_unchecked_what_it_cannot_check():
    frame = udp_frame(b"x", dst_mac=b"\xbb" * 6)
    no_sum = bytearray(frame)
    no_sum[UDP_SUM_AT:UDP_SUM_AT + 2] = b"\0\0"
    assert offload.check_rx(bytes(no_sum), RX) == offload.CSUM_IP_CHECKED  # UDP without a checksum
    fragment = bytearray(frame)
    struct.pack_into("!H", fragment, 20, 0x2000)
    struct.pack_into("!H", fragment, 24, 0)
    struct.pack_into("!H", fragment, 24, dpkt.in_cksum(bytes(fragment[14:34])))
    assert offload.check_rx(bytes(fragment), RX) == offload.CSUM_IP_CHECKED  # no transport header to sum
    long_udp = bytearray(frame)
    struct.pack_into("!H", long_udp, 38, 200)  # a UDP length past the IP packet: for the stack to count
    assert offload.check_rx(bytes(long_udp), RX) == offload.CSUM_IP_CHECKED
    assert offload.finish_tx(zero_sums(bytes(long_udp), 20), SUMS)[UDP_SUM_AT:UDP_SUM_AT + 2] == b"\0\0"
    short_tcp = b"\xbb" * 6 + FAKE_MAC + b"\x08\x00" + ip_packet(bytes(18), 6)  # no room for a TCP header
    assert offload.check_rx(short_tcp, RX) == offload.CSUM_IP_CHECKED
    assert offload.finish_tx(short_tcp, SUMS) == short_tcp


@settings(max_examples=200)
@given(data=DATA, options=st.sampled_from([b"", b"\x02\x04\x05\xb4", b"\x01\x03\x03\x07"]),
       flags=st.integers(0, 0x3F), flip=st.integers(0, 10_000))
def test_tcp_sums_are_filled_in_and_checked_as_software_would(data, options, flags, flip):
    right = tcp_frame(data, flags=flags, dst_mac=b"\xbb" * 6, options=options)
    blank = right[:TCP_SUM_AT] + b"\0\0" + right[TCP_SUM_AT + 2:]
    assert offload.finish_tx(blank, offload.M_CSUM_TCPv4) == right
    assert offload.finish_tx(right, offload.M_CSUM_TCPv4) == right
    assert offload.finish_tx(blank, offload.M_CSUM_IPv4 | offload.M_CSUM_UDPv4) == blank  # not TCP's flag
    good = offload.CSUM_IP_CHECKED | offload.CSUM_L4_CHECKED
    assert offload.check_rx(right, RX) == good
    assert offload.check_rx(right, offload.IFCAP_CSUM_IPv4_Rx | offload.IFCAP_CSUM_UDPv4_Rx) == offload.CSUM_IP_CHECKED
    spoilt = bytearray(right)
    spoilt[14 + 20 + flip % (len(right) - 14 - 20)] ^= 0x01  # any byte of the segment, its sum among them
    assert offload.check_rx(bytes(spoilt), RX) == good | offload.CSUM_L4_BAD


@settings(max_examples=500)
@given(frame=st.binary(max_size=120), bits=st.sampled_from([ALL, TX, RX]),
       flags=st.sampled_from([offload.M_CSUM_IPv4, offload.M_CSUM_UDPv4, SUMS]))
def test_offload_takes_any_bytes(frame, bits, flags):
    marks = offload.check_rx(frame, bits)
    assert marks & ~(offload.CSUM_IP_CHECKED | offload.CSUM_IP_BAD | offload.CSUM_L4_CHECKED | offload.CSUM_L4_BAD) == 0
    assert len(offload.finish_tx(frame, flags)) == len(frame)


@settings(max_examples=300)
@given(body=st.binary(max_size=80), total=st.integers(0, 120), proto=st.sampled_from([6, 17]))
def test_offload_takes_any_transport_behind_a_sane_ip_header(body, total, proto):
    """An IPv4 header that checks out, with any IP length, before any UDP or TCP bytes."""
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, proto, 0, FAKE_IP, FAKE_IP))
    struct.pack_into("!H", header, 10, dpkt.in_cksum(bytes(header)))
    frame = b"\xbb" * 6 + FAKE_MAC + b"\x08\x00" + bytes(header) + body
    marks = offload.check_rx(frame, RX)
    assert marks & offload.CSUM_IP_BAD == 0
    sent = offload.finish_tx(frame, SUMS)
    assert len(sent) == len(frame) and sent[:34] == frame[:34]
    if marks & offload.CSUM_L4_CHECKED:  # what the interface could check, it can also sum, and alike
        assert offload.check_rx(sent, RX) & offload.CSUM_L4_BAD == 0


# -- what ifconfig shows -----------------------------------------------------------------------------

SHMIF_CAPS = ("capabilities=0x7ff80<TSO4,IP4CSUM_Rx,IP4CSUM_Tx,TCP4CSUM_Rx,TCP4CSUM_Tx,UDP4CSUM_Rx,"
              "UDP4CSUM_Tx,TCP6CSUM_Rx,TCP6CSUM_Tx,UDP6CSUM_Rx,UDP6CSUM_Tx,TSO6>")


def capability_lines(node):
    return [line.strip() for line in node.ifconfig("shmif0").splitlines()
            if line.strip().startswith(("capabilities=", "enabled="))]


def test_ifconfig_shows_and_sets_capabilities(nodes, bus):
    node = nodes("a")
    node.attach(bus, "10.0.0.1/24")
    assert capability_lines(node) == [SHMIF_CAPS, "enabled=0"]
    node.ifconfig("shmif0", "ip4csum", "udp4csum-tx")
    assert capability_lines(node) == [SHMIF_CAPS, "enabled=0x2300<IP4CSUM_Rx,IP4CSUM_Tx,UDP4CSUM_Tx>"]
    node.ifconfig("shmif0", "-ip4csum", "tso4", "tcp4csum-rx")
    assert capability_lines(node) == [SHMIF_CAPS, "enabled=0x2480<TSO4,TCP4CSUM_Rx,UDP4CSUM_Tx>"]
    done = node.run("ifconfig", "shmif0", "ip6csum")
    assert done.returncode == 1 and "unknown keyword" in done.stderr


def test_node_started_with_capenable_shows_it(nodes, bus, monkeypatch):
    monkeypatch.setenv("RUMP_SHMIF_CAPENABLE", "0x15500")
    node = nodes("a")
    node.attach(bus, "10.0.0.1/24")
    assert capability_lines(node)[1] == "enabled=0x15500<IP4CSUM_Rx,TCP4CSUM_Rx,UDP4CSUM_Rx,TCP6CSUM_Rx,UDP6CSUM_Rx>"
