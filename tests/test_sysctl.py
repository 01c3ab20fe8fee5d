"""sysctl: reading and setting tunables; broadcast echo follows net.inet.icmp.bmcastecho."""

import dpkt
import pytest

import rumpnet
from rumpnet.tools.ping import echo_request
from rumpnet.testing import frames_on


def test_read_and_set(nodes):
    a = nodes("a")
    assert a.run("sysctl", "net.inet.icmp.bmcastecho").stdout == "net.inet.icmp.bmcastecho = 0\n"
    done = a.run("sysctl", "-w", "net.inet.icmp.bmcastecho=1")
    assert done.returncode == 0 and done.stdout == "net.inet.icmp.bmcastecho: 0 -> 1\n"
    assert a.run("sysctl", "-n", "net.inet.icmp.bmcastecho").stdout == "1\n"
    listing = a.run("sysctl", "-a").stdout
    assert "net.inet.ip.ttl = 64" in listing and "net.inet.ip.forwarding = 0" in listing


@pytest.mark.parametrize("assignment, message", [
    ("net.inet.no.such=1", "no such variable"),
    ("net.inet.ip.ttl=0", "out of range"),
    ("net.inet.ip.ttl=many", "not a number"),
], ids=["unknown", "range", "not-number"])
def test_bad_settings_change_nothing(nodes, assignment, message):
    a = nodes("a")
    before = a.run("sysctl", "-a").stdout
    done = a.run("sysctl", "-w", assignment)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr
    assert a.run("sysctl", "-a").stdout == before


def test_broadcast_echo_follows_bmcastecho(pair):
    a, b = pair
    done = a.run("ping", "-c", "2", "-i", "0.2", "-w", "2", "10.0.0.255")
    assert done.returncode == 2
    assert "2 broadcast or multicast echo requests ignored" in b.run("netstat", "-s", "-p", "icmp").stdout
    b.run("sysctl", "-w", "net.inet.icmp.bmcastecho=1")
    done = a.run("ping", "-c", "2", "-i", "0.2", "-w", "3", "10.0.0.255")
    assert done.returncode == 0
    assert "64 bytes from 10.0.0.2: icmp_seq=0 ttl=255" in done.stdout


def test_broadcast_ping_hears_every_answering_node_the_pinger_included(pair):
    """The pinging node loops its own broadcast back (BSD's if_simloop): its reply comes
    first, the other node's counts as a duplicate, as NetBSD's ping counts it."""
    a, b = pair
    for node in (a, b):
        node.run("sysctl", "-w", "net.inet.icmp.bmcastecho=1")
    done = a.run("ping", "-w", "1.5", "-i", "0.5", "10.0.0.255")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[1].startswith("64 bytes from 10.0.0.1: icmp_seq=0 ttl=255 time=")
    assert "64 bytes from 10.0.0.2: icmp_seq=0 ttl=255 time=" in done.stdout
    mine = [line for line in lines if line.startswith("64 bytes from 10.0.0.1")]
    theirs = [line for line in lines if line.startswith("64 bytes from 10.0.0.2")]
    assert not any("DUP!" in line for line in mine) and all(line.endswith(" ms (DUP!)") for line in theirs)
    assert f"{len(mine)} packets received, +{len(theirs)} duplicates, 0.0% packet loss" in done.stdout


async def test_ip_ttl_sets_outgoing_ttl(pair, bus):
    """A socket without IP_TTL sends with net.inet.ip.ttl; echo replies go out with MAXTTL, as in NetBSD."""
    a, b = pair
    a.run("sysctl", "-w", "net.inet.ip.ttl=17")
    async with rumpnet.connect(a.url) as node:
        sock = await node.socket(rumpnet.SOCK_RAW, rumpnet.IPPROTO_ICMP)
        await sock.sendto(echo_request(1, 1, 8, 0.0), ("10.0.0.2", 0))
        await sock.recvfrom(timeout=2)
    ips = [dpkt.ethernet.Ethernet(f).data for f in frames_on(bus)]
    requests = [p for p in ips if isinstance(p, dpkt.ip.IP) and p.data.type == 8]
    replies = [p for p in ips if isinstance(p, dpkt.ip.IP) and p.data.type == 0]
    assert requests[-1].ttl == 17
    assert replies[-1].ttl == 255
