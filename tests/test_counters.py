"""Counters a student reads: netstat -i, netstat -s and ifconfig -v, checked against the bus itself.

Every frame a node sends or receives is on the bus file, so the packet and
byte counts can be worked out from the frames alone (read with dpkt) and
compared with what the commands print.
"""

import re
import time

import dpkt
import pytest

from rumpnet.kern.counters import DESCRIPTIONS
from rumpnet.testing import frames_on, inject

FAKE = b"\x02\x00\x00\x00\x00\x99"
FAKE_IP = bytes([10, 0, 0, 9])
B_IP = bytes([10, 0, 0, 2])
BROADCAST = b"\xff" * 6


def mac_of(node):
    text = next(line.split()[1] for line in node.ifconfig("shmif0").splitlines() if "address:" in line)
    return bytes.fromhex(text.replace(":", ""))


def netstat_s(node, *args):
    """`netstat -s` as {protocol: {counter: value}}, the counters named as rumpnet.kern.counters names them."""
    done = node.run("netstat", "-s", *args)
    assert done.returncode == 0, done.stderr
    names = {proto: {text: key for key, text in rows} for proto, rows in DESCRIPTIONS.items()}
    counters, proto = {}, None
    for line in done.stdout.splitlines():
        if not line.startswith("\t"):
            proto = line.rstrip(":")
            counters[proto] = {}
            continue
        value, text = line.strip().split(" ", 1)
        counters[proto][names[proto][text]] = int(value)
    return counters


def link_counts(frames, mac):
    """What a node with this MAC has sent and received, worked out from the frames on the bus.

    A node reads from where the bus was when it joined, and its first frame
    (its ARP announcement) follows at once: earlier frames it never saw.
    """
    frames = frames[[f[6:12] for f in frames].index(mac):]
    sent = [f for f in frames if f[6:12] == mac]
    received = [f for f in frames if f[6:12] != mac and (f[:6] == mac or f[0] & 1)]
    return {"opackets": len(sent), "obytes": sum(map(len, sent)), "omcasts": sum(f[0] & 1 for f in sent),
            "ipackets": len(received), "ibytes": sum(map(len, received)),
            "imcasts": sum(f[0] & 1 for f in received)}


def eventually(check, timeout=10):
    """Ask check() again until it holds (its value is returned); fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "the node did not count it in time"
        time.sleep(0.05)
    return result


@pytest.fixture
def pinged(pair, bus):
    a, b = pair
    assert a.run("ping", "-c", "2", "-i", "0.2", "10.0.0.2").returncode == 0
    return a, b, bus


# -- netstat -s ----------------------------------------------------------------------------------


def test_netstat_s_lists_every_counter_and_drop_reason(pair):
    a, _ = pair
    shown = netstat_s(a)
    assert list(shown) == list(DESCRIPTIONS)
    for proto, rows in DESCRIPTIONS.items():
        assert list(shown[proto]) == [key for key, _ in rows], proto
    assert list(netstat_s(a, "-p", "udp")) == ["udp"]


def test_netstat_s_counts_a_ping_exchange(pinged):
    a, b, bus = pinged
    frames = frames_on(bus)
    icmp_types = [dpkt.ethernet.Ethernet(f).ip.icmp.type for f in frames if f[12:14] == b"\x08\x00"]
    assert icmp_types == [8, 0, 8, 0]
    at_b, on_bus = netstat_s(b), link_counts(frames, mac_of(b))
    assert (at_b["ether"]["input"], at_b["ether"]["output"]) == (on_bus["ipackets"], on_bus["opackets"])
    assert at_b["icmp"]["echo_received"] == at_b["icmp"]["echo_reply_sent"] == 2
    assert at_b["ip"]["delivered"] == 2 and at_b["arp"]["replies_sent"] == 1
    at_a = netstat_s(a)
    assert at_a["ether"]["input"] == link_counts(frames, mac_of(a))["ipackets"]
    assert at_a["arp"]["requests_sent"] == 1 and at_a["arp"]["replies_received"] == 1
    assert at_a["ip"]["output"] == 2 and at_a["ip"]["delivered"] == 2
    assert all(value == 0 for proto in ("ip", "icmp", "udp") for key, value in at_a[proto].items()
               if "bad" in key or "short" in key)


def ipv4(payload, proto, *, src=FAKE_IP, dst=B_IP):
    return bytes(dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=1, data=payload))


def udp(dport, data=b"data", checksum="right", src=FAKE_IP, dst=B_IP):
    """An IPv4 packet with a UDP datagram whose checksum is "right", "none" (zero) or "bad"."""
    datagram = dpkt.udp.UDP(sport=40000, dport=dport, ulen=8 + len(data), data=data)
    raw = bytearray(bytes(dpkt.ip.IP(src=src, dst=dst, p=17, ttl=64, id=1, data=datagram)))  # dpkt sums it
    if checksum == "none":
        raw[26:28] = b"\0\0"
    elif checksum == "bad":
        raw[27] ^= 0x01
    return bytes(raw)


def arp(op, sha, spa, tpa):
    return bytes(dpkt.arp.ARP(op=op, sha=sha, spa=spa, tha=b"\0" * 6, tpa=tpa))


# (frame maker taking B's MAC, the counters it must raise by one)
DROPS = {
    "arp-from-our-own-address": (lambda mac: mac + mac + b"\x08\x06" + arp(1, mac, FAKE_IP, B_IP),
                                 [("arp", "own_source")]),
    "arp-claiming-our-address": (lambda mac: BROADCAST + FAKE + b"\x08\x06" + arp(1, FAKE, B_IP, FAKE_IP),
                                 [("arp", "dup_address")]),
    "arp-for-another-host": (lambda mac: BROADCAST + FAKE + b"\x08\x06" + arp(1, FAKE, FAKE_IP, bytes([10, 0, 0, 7])),
                             [("arp", "not_for_us")]),
    "ip-from-multicast": (lambda mac: mac + FAKE + b"\x08\x00" + udp(7777, src=bytes([224, 0, 0, 1])),
                          [("ip", "bad_source")]),
    "ip-not-for-us": (lambda mac: mac + FAKE + b"\x08\x00" + udp(7777, dst=bytes([10, 0, 0, 7])),
                      [("ip", "not_for_us")]),
    "ip-unknown-protocol": (lambda mac: mac + FAKE + b"\x08\x00" + ipv4(b"abcd", 99),
                            [("ip", "unknown_protocol"), ("icmp", "errors_sent")]),
    "udp-closed-port": (lambda mac: mac + FAKE + b"\x08\x00" + udp(7777),
                        [("udp", "no_port"), ("icmp", "errors_sent")]),
    "udp-broadcast-closed-port": (lambda mac: BROADCAST + FAKE + b"\x08\x00" + udp(7777, dst=bytes([10, 0, 0, 255])),
                                  [("udp", "no_port_broadcast")]),
    "udp-without-checksum": (lambda mac: mac + FAKE + b"\x08\x00" + udp(7777, checksum="none"),
                             [("udp", "no_checksum"), ("udp", "no_port")]),
    "udp-bad-checksum": (lambda mac: mac + FAKE + b"\x08\x00" + udp(7777, checksum="bad"),
                         [("udp", "bad_checksum")]),
    "unknown-ethertype": (lambda mac: mac + FAKE + b"\x88\xb5" + bytes(46), [("ether", "unknown_type")]),
}


@pytest.mark.parametrize("make, raised", DROPS.values(), ids=DROPS.keys())
def test_netstat_s_counts_each_drop_reason(nodes, bus, make, raised):
    b = nodes("b")
    b.attach(bus, "10.0.0.2/24")
    before = netstat_s(b)
    inject(bus, make(mac_of(b)))

    def counted():
        now = netstat_s(b)
        return now if all(now[p][k] > before[p][k] for p, k in raised) else None

    after = eventually(counted)
    assert [after[p][k] - before[p][k] for p, k in raised] == [1] * len(raised)
    assert after["ether"]["input"] == before["ether"]["input"] + 1


def test_icmp_errors_are_rate_limited_as_errppslimit_says(nodes, bus):
    """A burst to closed ports draws at most net.inet.icmp.errppslimit errors a second (NetBSD's
    ppsratecheck); the rest are counted, and -1 lifts the limit."""
    b = nodes("b")
    b.attach(bus, "10.0.0.2/24")
    assert b.run("sysctl", "-n", "net.inet.icmp.errppslimit").stdout == "100\n"
    assert b.run("sysctl", "-w", "net.inet.icmp.errppslimit=10").returncode == 0
    mac = mac_of(b)
    burst = [mac + FAKE + b"\x08\x00" + udp(7000 + i) for i in range(30)]
    inject(bus, *burst)
    after = eventually(lambda: (now := netstat_s(b))["udp"]["no_port"] == 30 and now)
    assert (after["icmp"]["errors_sent"], after["icmp"]["rate_limited"]) == (10, 20)
    assert b.run("sysctl", "-w", "net.inet.icmp.errppslimit=-1").returncode == 0
    inject(bus, *burst)
    after = eventually(lambda: (now := netstat_s(b))["udp"]["no_port"] == 60 and now)
    assert (after["icmp"]["errors_sent"], after["icmp"]["rate_limited"]) == (40, 20)


async def test_bus_events_of_every_interface_add_up(tmp_path):
    """The shmif counters are the node's: a lap seen on one bus is not forgotten when
    another interface, on a bus that was never lapped, reads its next frame."""
    import trio

    from rumpnet import open_node
    from rumpnet.net.bus import BUS_SIZE

    lapped, quiet = str(tmp_path / "lapped"), str(tmp_path / "quiet")
    async with open_node(stack="router") as node:
        node.add_address(node.create_shmif(lapped), "10.0.0.254/24")
        node.add_address(node.create_shmif(quiet), "10.0.1.254/24")
        await trio.sleep(0.1)
        frame = BROADCAST + FAKE + b"\x88\xb5" + bytes(1500)
        inject(lapped, *[frame] * (2 * BUS_SIZE // len(frame)))  # twice round the ring before the node reads
        with trio.fail_after(5):
            while not node.stats.driver("shmif").get("bus_laps", 0):
                await trio.sleep(0.01)
        laps = node.stats.driver("shmif").get("bus_laps", 0)
        seen = node.interfaces["shmif1"].counters.ipackets
        inject(quiet, frame)
        with trio.fail_after(5):
            while node.interfaces["shmif1"].counters.ipackets == seen:
                await trio.sleep(0.01)
        assert node.stats.driver("shmif").get("bus_laps", 0) == laps


# -- netstat -i and ifconfig -v --------------------------------------------------------------------

COLUMNS = ["Name", "Mtu", "Network", "Address", "Ipkts", "Ierrs", "Opkts", "Oerrs", "Colls"]


def netstat_i(node):
    done = node.run("netstat", "-i")
    assert done.returncode == 0
    header, *rows = done.stdout.splitlines()
    assert header.split() == COLUMNS
    return [dict(zip(COLUMNS, row.split())) for row in rows]


def test_netstat_i_counts_the_frames_on_the_bus(pinged):
    a, b, bus = pinged
    inject(bus, BROADCAST + FAKE + b"\x08\x00" + bytes(1600))  # longer than a shmif frame: an input error
    eventually(lambda: all(netstat_i(node)[0]["Ierrs"] == "1" for node in (a, b)))
    for node in (a, b):
        mac = mac_of(node)
        counts = link_counts([f for f in frames_on(bus) if len(f) <= 1514], mac)
        link, inet = netstat_i(node)
        assert (link["Name"], link["Mtu"], link["Network"], link["Address"]) == \
            ("shmif0", "1500", "<Link>", mac.hex(":"))
        assert (inet["Network"], inet["Address"]) == ("10.0.0.0/24", "10.0.0.1" if node is a else "10.0.0.2")
        assert int(link["Ipkts"]) == counts["ipackets"] and int(link["Opkts"]) == counts["opackets"]
        assert (link["Ierrs"], link["Oerrs"]) == ("1", "0")
        assert [inet[c] for c in COLUMNS[4:]] == [link[c] for c in COLUMNS[4:]]


def test_ifconfig_v_counts_packets_and_bytes(pinged):
    a, b, bus = pinged
    inject(bus, mac_of(b) + FAKE + b"\x88\xb5" + bytes(46))  # an unknown ethertype: dropped at the queue
    eventually(lambda: "0 errors, 1 drops" in b.ifconfig("shmif0"))
    for node in (a, b):
        c = link_counts(frames_on(bus), mac_of(node))
        text = node.run("ifconfig", "-v", "shmif0").stdout
        drops = 1 if node is b else 0
        assert f"\tinput: {c['ipackets']} packets, {c['ibytes']} bytes, {c['imcasts']} multicasts, " \
               f"0 errors, {drops} drops" in text
        assert f"\toutput: {c['opackets']} packets, {c['obytes']} bytes, {c['omcasts']} multicasts, " \
               "0 errors" in text
        assert "\tkind: shmif" in text
        assert "kind:" not in node.ifconfig("shmif0")
        assert re.search(r"^\tcapabilities=0x7ff80<", text, re.M) and re.search(r"^\tenabled=0$", text, re.M)
    assert "\tkind: shmif" in a.run("ifconfig", "-a", "-v").stdout


def test_oversized_and_runt_records_are_counted_by_the_driver(nodes, bus):
    b = nodes("b")
    b.attach(bus, "10.0.0.2/24")
    mac = mac_of(b)
    inject(bus, mac + FAKE + b"\x08\x00" + bytes(1501), b"\xff" * 10)
    shmif = eventually(lambda: (shown := netstat_s(b, "-p", "shmif")["shmif"])["runt"] and shown)
    assert (shmif["oversized"], shmif["runt"]) == (1, 1)
    assert netstat_s(b, "-p", "ether")["ether"]["input"] == 0  # the driver stopped both before Ethernet
