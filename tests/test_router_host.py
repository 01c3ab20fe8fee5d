"""The router to the host: a node on a bus reaches Linux behind a tap through a router node, and back.

    node a 10.0.0.2 --bus-- 10.0.0.1 router 192.168.77.1 (virt0) --tap-- 192.168.77.2 Linux (a namespace)

Every node runs unprivileged; the router gets its own /dev/net/tun and a tap
made for its user. The Linux side is the kernel's own ping, sockets and tcpdump.
"""

import subprocess
import sys
import time

import pytest

from rumpnet.scenario.hostside import HostTap
from rumpnet.testing import NodeProcess, can_make_taps

pytestmark = pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")

LINUX = "192.168.77.2"
UDP_PEER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7777))
s.settimeout(20)
data, peer = s.recvfrom(2048)
s.sendto(b"linux got " + data, peer)
print(peer[0], flush=True)
"""


class Net:
    def __init__(self, workdir, user, nat=False):
        self.host = HostTap(user).make()
        self.nodes = []
        try:
            self.router = self._node(workdir / "r.sock", user, "router", tun=True)
            self.a = self._node(workdir / "a.sock", user)
            self.router.ifconfig("shmif0", "create", "linkstr", workdir / "bus", "inet", "10.0.0.1/24")
            self.router.ifconfig("virt0", "create", "linkstr", self.host.tap, "inet", "192.168.77.1/24")
            if nat:
                assert self.router.run("sysctl", "-w", "net.inet.ip.nat=1").returncode == 0
            self.a.ifconfig("shmif0", "create", "linkstr", workdir / "bus", "inet", "10.0.0.2/24")
            assert self.a.run("route", "add", "default", "10.0.0.1").returncode == 0
            self.host.to_namespace()
            if not nat:
                self.host.sh("ip", "route", "add", "10.0.0.0/8", "via", "192.168.77.1", check=True)
        except BaseException:
            self.close()
            raise

    def _node(self, path, user, stack=None, tun=False):
        node = NodeProcess(path, user=user, stack=stack, tun=tun)
        self.nodes.append(node)
        return node

    def close(self):
        for node in self.nodes:
            node.stop()
        self.host.close()


@pytest.fixture
def net(workdir, user):
    made = Net(workdir, user)
    yield made
    made.close()


@pytest.fixture
def nat_net(workdir, user):
    made = Net(workdir, user, nat=True)
    yield made
    made.close()


def stat(node, proto, text):
    """The figure netstat -s prints before text in the block of proto."""
    for line in node.run("netstat", "-s", "-p", proto).stdout.splitlines():
        if line.strip().endswith(text):
            return int(line.split()[0])
    return 0


def udp_exchange(net):
    """A Python socket in the namespace and `rumpnet nc -u` in node a trade one datagram each way."""
    peer = subprocess.Popen(["ip", "netns", "exec", net.host.netns, sys.executable, "-c", UDP_PEER],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)  # the peer binds before the first datagram (a lost one only makes the test fail)
        done = net.a.run("nc", "-u", "-w", "3", LINUX, "7777", input="hello\n", timeout=30)
        out, err = peer.communicate(timeout=30)
    finally:
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    return done.stdout, out.strip()


def test_linux_ping_reaches_the_node_behind_the_router(net):
    done = net.host.sh("ping", "-c", "2", "-W", "5", "10.0.0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 received" in done.stdout


def test_linux_udp_and_rumpnet_nc_exchange_datagrams_both_ways(net):
    reply, peer = udp_exchange(net)
    assert reply == "linux got hello\n"
    assert peer == "10.0.0.2"  # no translation: Linux sees the node itself


def test_linux_ping_with_ttl_1_gets_time_exceeded_from_the_router(net):
    done = net.host.sh("ping", "-c", "1", "-t", "1", "-W", "3", "10.0.0.2")
    assert done.returncode != 0
    assert "192.168.77.1" in done.stdout and "Time to live exceeded" in done.stdout


def test_an_address_on_no_route_gives_destination_net_unreachable(net):
    done = net.host.sh("ping", "-c", "1", "-W", "3", "10.9.9.9")
    assert done.returncode != 0
    assert "Destination Net Unreachable" in done.stdout


def test_an_icmp_error_from_linux_reaches_the_sending_node(net):
    done = net.a.run("nc", "-u", "-w", "3", LINUX, "9", input="anyone?\n", timeout=30)
    assert "Connection refused" in done.stderr
    assert stat(net.a, "icmp", "destination unreachable received") >= 1


@pytest.mark.parametrize("nat", [False, True], ids=["routed", "translated"])
def test_traceroute_from_the_node_lists_the_router_then_linux(workdir, user, nat):
    made = Net(workdir, user, nat=nat)
    try:
        done = made.a.run("traceroute", "-n", "-q", "1", "-w", "3", LINUX, timeout=60)
    finally:
        made.close()
    assert done.returncode == 0, done.stderr
    hops = [line.split()[:2] for line in done.stdout.splitlines()]
    assert hops == [["1", "10.0.0.1"], ["2", LINUX]], done.stdout


def test_the_tap_going_away_takes_only_virt0_down(net):
    net.host.close()  # the namespace goes, and the tap with it
    deadline = time.monotonic() + 10
    while "RUNNING" in net.router.ifconfig("virt0").split("\n")[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "RUNNING" not in net.router.ifconfig("virt0").split("\n")[0]
    assert "RUNNING" in net.router.ifconfig("shmif0").split("\n")[0]
    assert net.a.run("ping", "-c", "1", "-w", "5", "10.0.0.1").returncode == 0
    done = net.a.run("ping", "-c", "1", "-w", "3", LINUX)
    assert done.returncode != 0


def test_with_nat_ping_and_udp_work_with_no_route_on_the_host(nat_net):
    assert "10.0.0.0" not in nat_net.host.sh("ip", "route").stdout
    capture = subprocess.Popen(["ip", "netns", "exec", nat_net.host.netns, "tcpdump", "-i", nat_net.host.tap,
                                "-n", "-l", "-c", "6", "ip"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        time.sleep(1.0)  # tcpdump listens before the first packet (a miss only fails the test)
        done = nat_net.a.run("ping", "-c", "2", "-i", "0.2", "-w", "5", LINUX)
        assert done.returncode == 0, done.stdout + done.stderr
        reply, peer = udp_exchange(nat_net)
        assert reply == "linux got hello\n"
        assert peer == "192.168.77.1"  # Linux sees only the router's address
        seen, _ = capture.communicate(timeout=20)
    finally:
        if capture.poll() is None:
            capture.kill()
            capture.wait()
    lines = [line for line in seen.splitlines() if " IP " in line]
    assert len(lines) == 6
    assert all("10.0.0." not in line for line in lines), seen
    assert stat(nat_net.router, "nat", "translated on the way out") >= 3


def test_with_nat_an_icmp_error_is_translated_back_to_the_sender(nat_net):
    done = nat_net.a.run("nc", "-u", "-w", "3", LINUX, "9", input="anyone?\n", timeout=30)
    assert "Connection refused" in done.stderr
    assert stat(nat_net.router, "nat", "quoted header rewritten)") == 1


def test_two_routers_three_buses_and_the_tap_until_a_route_is_deleted(workdir, user):
    """a --bus1-- r1 --bus2-- r2 --bus3-- b, and r2 --tap-- Linux: static routes carry traffic end to end;
    once r2 forgets the way back to bus 1, replies to a become net unreachable errors from r2."""
    host = HostTap(user).make()
    nodes = []

    def node(name, stack=None, tun=False):
        made = NodeProcess(workdir / f"{name}.sock", user=user, stack=stack, tun=tun)
        nodes.append(made)
        return made

    try:
        a, b, r1, r2 = node("a"), node("b"), node("r1", "router"), node("r2", "router", tun=True)
        a.ifconfig("shmif0", "create", "linkstr", workdir / "bus1", "inet", "10.0.1.2/24")
        r1.ifconfig("shmif0", "create", "linkstr", workdir / "bus1", "inet", "10.0.1.1/24")
        r1.ifconfig("shmif1", "create", "linkstr", workdir / "bus2", "inet", "10.0.2.1/24")
        r2.ifconfig("shmif0", "create", "linkstr", workdir / "bus2", "inet", "10.0.2.2/24")
        r2.ifconfig("shmif1", "create", "linkstr", workdir / "bus3", "inet", "10.0.3.1/24")
        r2.ifconfig("virt0", "create", "linkstr", host.tap, "inet", "192.168.77.1/24")
        b.ifconfig("shmif0", "create", "linkstr", workdir / "bus3", "inet", "10.0.3.2/24")
        for who, args in ((a, ("default", "10.0.1.1")), (r1, ("default", "10.0.2.2")),
                          (r2, ("10.0.1.0/24", "10.0.2.1")), (b, ("default", "10.0.3.1"))):
            assert who.run("route", "add", *args).returncode == 0
        host.to_namespace()
        host.sh("ip", "route", "add", "10.0.0.0/8", "via", "192.168.77.1", check=True)
        done = a.run("ping", "-c", "1", "-w", "5", "10.0.3.2")
        assert done.returncode == 0 and "ttl=253" in done.stdout, done.stdout  # bus 1 to bus 3: two routers
        done = host.sh("ping", "-c", "1", "-W", "5", "10.0.1.2")
        assert done.returncode == 0 and "ttl=253" in done.stdout, done.stdout  # two routers took one each
        assert a.run("ping", "-c", "1", "-w", "5", LINUX).returncode == 0
        assert r2.run("route", "delete", "10.0.1.0/24").returncode == 0
        done = host.sh("ping", "-c", "1", "-W", "3", "10.0.1.2")
        assert "From 192.168.77.1" in done.stdout and "Destination Net Unreachable" in done.stdout, done.stdout
        done = b.run("ping", "-c", "1", "-w", "3", "10.0.1.2")
        assert done.returncode != 0
        assert "10.0.3.1" in done.stdout and "Destination Net Unreachable" in done.stdout, done.stdout
        assert a.run("ping", "-c", "1", "-w", "3", "10.0.3.2").returncode != 0  # the replies meet the same hole
        assert stat(r2, "ip", "packets with no route (dropped)") >= 3
    finally:
        for made in nodes:
            made.stop()
        host.close()
