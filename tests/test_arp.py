"""ARP: the cache after a ping, deletion, expiry and gratuitous ARP on an address change."""

import re
import time

import dpkt

from rumpnet.testing import frames_on


def mac_of(node):
    return re.search(r"address: ([0-9a-f:]+)", node.ifconfig("shmif0")).group(1)


def arp_packets(bus):
    out = []
    for frame in frames_on(bus):
        eth = dpkt.ethernet.Ethernet(frame)
        if isinstance(eth.data, dpkt.arp.ARP):
            out.append(eth.data)
    return out


def test_cache_after_ping_and_delete(pair):
    a, b = pair
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    listing = a.run("arp", "-a").stdout
    assert f"? (10.0.0.2) at {mac_of(b)} on shmif0" in listing.splitlines()
    assert f"? (10.0.0.1) at {mac_of(a)} on shmif0" in b.run("arp", "-a").stdout.splitlines()
    assert a.run("arp", "-d", "10.0.0.2").returncode == 0
    assert "10.0.0.2" not in a.run("arp", "-a").stdout
    done = a.run("arp", "-d", "10.0.0.2")
    assert done.returncode == 1 and "no entry" in done.stderr


def test_request_and_reply_on_the_wire(pair, bus):
    a, b = pair
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    packets = arp_packets(bus)
    who_has = [p for p in packets if p.op == 1 and p.tpa == bytes([10, 0, 0, 2]) and p.spa == bytes([10, 0, 0, 1])]
    is_at = [p for p in packets if p.op == 2 and p.spa == bytes([10, 0, 0, 2])]
    assert who_has and is_at
    assert is_at[0].sha.hex(":") == mac_of(b)
    assert is_at[0].tha.hex(":") == mac_of(a)


def test_gratuitous_arp_on_address_change(pair, bus):
    a, b = pair
    b.ifconfig("shmif0", "inet", "10.0.0.22/24")
    announcements = [p for p in arp_packets(bus) if p.op == 1 and p.spa == p.tpa == bytes([10, 0, 0, 22])]
    assert len(announcements) == 1
    assert announcements[0].sha.hex(":") == mac_of(b)
    assert a.run("ping", "-c", "1", "10.0.0.22").returncode == 0


def test_entries_expire(pair):
    a, _ = pair
    assert a.run("sysctl", "-w", "net.inet.arp.keep=1").returncode == 0
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    time.sleep(2.5)
    assert "10.0.0.2" not in a.run("arp", "-a").stdout
    assert "1 entries timed out" in a.run("netstat", "-s", "-p", "arp").stdout


def test_unanswered_request_shows_incomplete(pair):
    a, _ = pair
    a.run("ping", "-c", "1", "-w", "1", "10.0.0.9")
    assert "? (10.0.0.9) at (incomplete) on shmif0" in a.run("arp", "-a").stdout
