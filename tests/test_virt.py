"""virt(4) on a real tap: opening it, its errors, what the node does and does not do to it, hostile frames.

The tap is made for the unprivileged user the node runs as; the node gets
its own /dev/net/tun in a private mount namespace (the machine's may be
0600), so nothing of the machine changes. Frames from the host's side are
sent with an AF_PACKET socket inside the tap's network namespace.
"""

import os
import subprocess
import sys
import time

import pytest

from rumpnet.scenario.hostside import HostTap
from rumpnet.testing import NodeProcess, can_make_taps

pytestmark = pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")


@pytest.fixture
def tap(user):
    host = HostTap(user).make()
    yield host
    host.close()


@pytest.fixture
def tun_nodes(workdir, user):
    started = []

    def make(name, tun=True, stack=None):
        node = NodeProcess(workdir / f"{name}.sock", user=user, tun=tun, stack=stack)
        started.append(node)
        return node

    yield make
    for node in started:
        node.stop()


def fails(node, *args):
    done = node.run("ifconfig", *args)
    assert done.returncode == 1, done
    assert len(done.stderr.splitlines()) == 1
    return done.stderr


def test_a_node_that_cannot_open_dev_net_tun_says_how_to_fix_it(tap, tun_nodes):
    if os.stat("/dev/net/tun").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/net/tun is open to everyone here")
    node = tun_nodes("a", tun=False)
    error = fails(node, "virt0", "create", "linkstr", tap.tap)
    assert "cannot open /dev/net/tun: Permission denied" in error and "chmod 0666 /dev/net/tun" in error
    assert node.run("ifconfig", "-l").stdout.strip() == ""  # the line's create is undone


def test_a_tap_not_made_for_the_user_names_the_command_that_makes_it(tun_nodes, user):
    node = tun_nodes("a")
    node.ifconfig("virt9876", "create")
    error = fails(node, "virt9876", "inet", "192.168.77.1/24")
    assert "cannot open tap9876: Operation not permitted" in error
    assert f"ip tuntap add tap9876 mode tap user {user}" in error
    assert "inet" not in node.ifconfig("virt9876")  # no address without a tap


def test_a_tap_in_use_is_busy_and_free_again_after_destroy(tap, tun_nodes):
    a, b = tun_nodes("a"), tun_nodes("b")
    a.ifconfig("virt0", "create", "linkstr", tap.tap)
    assert "another process has it open" in fails(b, "virt0", "create", "linkstr", tap.tap)
    a.ifconfig("virt0", "destroy")
    b.ifconfig("virt0", "create", "linkstr", tap.tap)
    assert f"linkstr: {tap.tap}" in b.ifconfig("virt0")


def test_mtu_from_the_tap_and_the_host_side_left_alone(tap, tun_nodes):
    subprocess.run(["ip", "link", "set", tap.tap, "mtu", "1400"], check=True)
    node = tun_nodes("a")
    node.ifconfig("virt0", "create", "linkstr", tap.tap, "inet", "192.168.77.1/24")
    shown = node.ifconfig("virt0")
    assert "mtu 1400" in shown.split("\n")[0] and "UP" in shown.split("\n")[0]
    host = subprocess.run(["ip", "-o", "link", "show", tap.tap], capture_output=True, text=True).stdout
    assert "UP" not in host.split(">")[0]  # the node never brings the host's side up
    mac = shown.split("address: ")[1].split()[0]
    assert mac.startswith("b2:a0:") and mac not in host  # the node's own address, not the tap's


def test_the_host_side_down_counts_output_errors_and_keeps_the_node(tap, tun_nodes):
    node = tun_nodes("a")
    node.ifconfig("virt0", "create", "linkstr", tap.tap, "inet", "192.168.77.1/24")
    node.run("ping", "-c", "1", "-w", "2", "192.168.77.2")  # ARP requests onto a tap nobody brought up
    assert "host's side of the tap is down" in node.run("netstat", "-s", "-p", "virt").stdout
    assert "0 frames not written: the host's" not in node.run("netstat", "-s", "-p", "virt").stdout
    assert node.is_alive()


def status_of(node, wanted):
    """virt0's ifconfig once its status line reads wanted (the node looks every LINK_POLL seconds)."""
    deadline = time.monotonic() + 10
    shown = node.ifconfig("virt0")
    while f"status: {wanted}" not in shown and time.monotonic() < deadline:
        time.sleep(0.1)
        shown = node.ifconfig("virt0")
    assert f"status: {wanted}" in shown, shown
    return shown


def test_the_link_state_follows_the_host_side_of_the_tap(tap, tun_nodes):
    node = tun_nodes("a")
    node.ifconfig("virt0", "create", "linkstr", tap.tap, "inet", "192.168.77.1/24")
    assert "RUNNING" not in status_of(node, "no carrier").split("\n")[0]  # nobody brought the host's side up
    tap.to_namespace()
    assert "RUNNING" in status_of(node, "active").split("\n")[0]
    assert tap.sh("ping", "-c", "1", "-W", "5", "192.168.77.1").returncode == 0

    tap.sh("ip", "link", "set", tap.tap, "down", check=True)
    assert "RUNNING" not in status_of(node, "no carrier").split("\n")[0]
    before = node.ifconfig("virt0").split("output: ")[1]
    assert node.run("ping", "-c", "1", "-w", "2", "192.168.77.2").returncode != 0
    assert node.ifconfig("virt0").split("output: ")[1] != before  # dropped, and counted as an output error
    assert tap.sh("ping", "-c", "1", "-W", "2", "192.168.77.1").returncode != 0

    tap.sh("ip", "link", "set", tap.tap, "up", check=True)
    assert "RUNNING" in status_of(node, "active").split("\n")[0]
    assert tap.sh("ping", "-c", "1", "-W", "5", "192.168.77.1").returncode == 0
    assert node.run("ping", "-c", "1", "-w", "5", "192.168.77.2").returncode == 0
    node.proc.terminate()
    log = node.proc.communicate(timeout=10)[1]
    assert "virt0: link state DOWN (was UP)" in log and "virt0: link state UP (was DOWN)" in log, log


# -- hostile frames from the host's side -------------------------------------------------------

SENDER = r"""
import os, random, socket, struct, sys
tap, mac = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((tap, 0))
us = bytes.fromhex("02aabbccddee")
router, host = bytes([192, 168, 77, 1]), bytes([192, 168, 77, 2])

def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF

def ip(payload, proto=1, hl=5, frag=0, options=b"", bad_sum=False, version=4, total=None):
    h = bytearray(struct.pack("!BBHHHBBH4s4s", version << 4 | hl, 0, total or 20 + len(options) + len(payload),
                              1, frag, 64, proto, 0, host, router) + options)
    if not bad_sum: h[10:12] = struct.pack("!H", csum(bytes(h)))
    return bytes(h) + payload

echo = b"\x08\0" + struct.pack("!H", csum(b"\x08\0\0\0\0\x07\0\x01")) + b"\0\x07\0\x01"
sent = 0
def send(frame):
    global sent
    try:
        s.send(frame); sent += 1
    except OSError:
        pass
for _ in range(20):
    send(b"\x02\0\0\0\0\x09" + us + b"\x08\0" + ip(echo))             # not for us
    send(mac + us[:4])                                                   # runts
    send(mac + us + b"\x08\0" + ip(echo, version=6))                    # malformed IPv4
    send(mac + us + b"\x08\0" + ip(echo, bad_sum=True))
    send(mac + us + b"\x08\0" + ip(echo, total=4000))
    send(mac + us + b"\x08\0" + ip(echo, hl=15)[:30])
    send(mac + us + b"\x08\0" + ip(echo, hl=6, options=b"\x01\x01\x01\x00"))  # IP options
    send(mac + us + b"\x08\0" + ip(echo, frag=0x2000))                 # fragments
    send(mac + us + b"\x08\0" + ip(echo, frag=0x0010))
    send(mac + us + b"\x08\0" + os.urandom(random.randrange(0, 200)))  # garbage
    send(mac + us + bytes(2) + os.urandom(40))
for size in (1600, 3000, 9000):                                          # giant frames (the host's MTU raised)
    send(mac + us + b"\x08\0" + os.urandom(size - 14))
for _ in range(2000):                                                    # an ARP flood from random sources
    smac = bytes([2]) + os.urandom(5)
    spa = bytes([192, 168, 77, random.randrange(3, 255)])
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x800, 6, 4, 1, smac, spa, bytes(6), router)
    send(b"\xff" * 6 + smac + b"\x08\x06" + arp)
print(sent)
"""


def test_hostile_frames_from_the_host_are_counted_and_the_bus_side_goes_on(tap, tun_nodes, workdir):
    router, a = tun_nodes("r", stack="router"), tun_nodes("a", tun=False)
    router.ifconfig("shmif0", "create", "linkstr", workdir / "bus", "inet", "10.0.0.1/24")
    router.ifconfig("virt0", "create", "linkstr", tap.tap, "inet", "192.168.77.1/24")
    a.ifconfig("shmif0", "create", "linkstr", workdir / "bus", "inet", "10.0.0.2/24")
    tap.to_namespace()
    tap.sh("ip", "link", "set", tap.tap, "mtu", "9000", check=True)  # after the node took 1500 from the tap
    mac = router.ifconfig("virt0").split("address: ")[1].split()[0].replace(":", "")
    done = tap.sh(sys.executable, "-c", SENDER, tap.tap, mac, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 2000
    assert router.is_alive()
    assert a.run("ping", "-c", "1", "-w", "5", "10.0.0.1").returncode == 0
    assert tap.sh("ping", "-c", "1", "-W", "5", "192.168.77.1").returncode == 0
    ip_stats = router.run("netstat", "-s", "-p", "ip").stdout
    for text in ("bad header checksums", "packets with a version other than 4", "fragments dropped"):
        line = next(line for line in ip_stats.splitlines() if text in line)
        assert int(line.split()[0]) > 0, line
    virt = router.run("netstat", "-s", "-p", "virt").stdout
    print(virt)
    assert "\t3 frames from the tap longer than its MTU allows (dropped)" in virt
    entries = router.run("arp", "-an").stdout.splitlines()
    assert len(entries) <= 1024 + 2  # net.inet.arp.max_entries bounds what a flood can add


async def test_the_python_api_creates_virt_as_rump_pub_virtif_create(tap):
    from rumpnet import open_node
    from rumpnet.net.ifnet import InterfaceError

    async with open_node() as node:
        assert node.create_virt(7, tap.tap) == "virt7"
        assert node.interfaces["virt7"].linkstr() == tap.tap
        with pytest.raises(InterfaceError, match="not a tap's name"):
            node.create_virt(9, "tap0/x")  # refused: nothing is left behind
        assert sorted(node.interfaces) == ["virt7"]
        node.destroy_interface("virt7")
