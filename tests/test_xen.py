"""xvif(4)/xennet: a dom0 node and guest nodes joined by vif pairs made with `rumpnet xl`.

Real node processes (unprivileged when the tests run as root) sharing one
XenStore directory; the diagnostics are read from dom0's standard error.
"""

import os
import re
import pwd
import signal
import subprocess
import time

import pytest
import trio

from rumpnet import SOCK_DGRAM
from rumpnet.client import connect

from rumpnet.kern.node import open_node
from rumpnet.net import xenring
from rumpnet.net.ifnet import SEND_QUEUE
from rumpnet.testing import NodeProcess, as_user, can_drop_privileges, run, rumpnet_command
from rumpnet.xen.store import XenStore
from rumpnet.xen.xenbus import XenBus

from conftest import UNPRIVILEGED, cpu_seconds

BACK = "/local/domain/0/backend/vif"


class Sandbox:
    """A XenStore directory and the nodes of its domains."""

    def __init__(self, workdir, user):
        self.workdir, self.user = workdir, user
        self.store = str(workdir / "xenstore")
        self.nodes = []

    def domain(self, domid):
        node = NodeProcess(self.workdir / f"dom{domid}.sock", user=self.user,
                           options=("--domid", domid, "--xenstore", self.store))
        node.log = ""
        os.set_blocking(node.proc.stderr.fileno(), False)
        self.nodes.append(node)
        return node

    def xen(self, *args):
        return run(*args, "--xenstore", self.store, user=self.user)

    def read(self, key):
        done = self.xen("xenstore-read", key)
        return done.stdout.strip() if done.returncode == 0 else None

    def stop(self):
        for node in self.nodes:
            node.stop()


@pytest.fixture
def xen(workdir, user):
    sandbox = Sandbox(workdir, user)
    yield sandbox
    sandbox.stop()


def wait_until(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def log_of(node):
    """What the node printed on standard error so far."""
    while True:
        try:
            data = os.read(node.proc.stderr.fileno(), 65536)
        except BlockingIOError:
            return node.log
        if not data:
            return node.log
        node.log += data.decode(errors="replace")


def interfaces(node):
    return node.run("ifconfig", "-l").stdout.split()


def attach(xen, domid, *settings):
    done = xen.xen("xl", "network-attach", domid, *settings)
    assert done.returncode == 0, done.stderr


def connected(xen, domid, handle=0):
    return xen.read(f"{BACK}/{domid}/{handle}/state") == "4" and \
        xen.read(f"/local/domain/{domid}/device/vif/{handle}/state") == "4"


def udp_flat_out(xen, sender, receiver, address):
    """A second of 64-byte datagrams from sender to receiver's perf -s, as fast as sender sends: (received, sent)."""
    serve = rumpnet_command("perf", "-s", "-u", "--server", receiver.url)
    server = subprocess.Popen(as_user(serve, xen.user) if xen.user else serve, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert "Server listening" in "".join(server.stdout.readline() for _ in range(2))
        done = sender.run("perf", "-c", address, "-u", "-l", "64", "-t", "1", "-b", "0", timeout=30)
    finally:
        server.terminate()
        server.wait()
        server.stdout.close()
    report = re.search(r" (\d+)/ *(\d+) \(", done.stdout)
    assert done.returncode == 0 and report, done.stdout + done.stderr
    lost, sent = map(int, report.groups())
    return sent - lost, sent


def test_two_guests_ping_dom0_each_over_its_own_vif_pair(xen):
    dom0, guest1, guest2 = xen.domain(0), xen.domain(1), xen.domain(2)
    attach(xen, 1, "mac=00:16:3e:12:34:56")
    attach(xen, 2, "mac=00:16:3e:ff:00:01")
    wait_until(lambda: connected(xen, 1) and connected(xen, 2), "both vifs Connected")
    assert sorted(interfaces(dom0)) == ["xvif1i0", "xvif2i0"]
    assert interfaces(guest1) == ["xennet0"] and interfaces(guest2) == ["xennet0"]
    shown = dom0.ifconfig("-a")
    assert "00:16:3e:13:34:56" in shown and "00:16:3e:00:00:01" in shown  # byte 3 + 1, 0xff wrapping, no carry
    assert "00:16:3e:12:34:56" in guest1.ifconfig("xennet0")
    dom0.ifconfig("xvif1i0", "inet", "10.0.1.1/24")
    dom0.ifconfig("xvif2i0", "inet", "10.0.2.1/24")
    guest1.ifconfig("xennet0", "inet", "10.0.1.2/24")
    guest2.ifconfig("xennet0", "inet", "10.0.2.2/24")
    for guest, dom0_address in ((guest1, "10.0.1.1"), (guest2, "10.0.2.1")):
        done = guest.run("ping", "-c", "2", "-w", "5", dom0_address)
        assert done.returncode == 0, done.stdout + done.stderr
    received, sent = udp_flat_out(xen, guest1, dom0, "10.0.1.1")
    assert 0 < received <= sent
    assert "link down" not in log_of(guest1) + log_of(dom0) and connected(xen, 1)
    lines = log_of(dom0).splitlines()
    assert "rumpnet: xvif1i0: Ethernet address 00:16:3e:13:34:56" in lines
    assert "rumpnet: xvif2i0: Ethernet address 00:16:3e:00:00:01" in lines

    done = xen.xen("xl", "network-detach", 1, 0)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    assert interfaces(dom0) == ["xvif2i0"] and interfaces(guest1) == []
    assert xen.read(f"{BACK}/1/0/state") is None and xen.read("/local/domain/1/device/vif/0/state") is None
    assert guest2.run("ping", "-c", "1", "-w", "5", "10.0.2.1").returncode == 0


@pytest.mark.parametrize("mac, line", [
    (None, "rumpnet: xvif1i0: can't read /local/domain/0/backend/vif/1/0/mac: 2"),
    ("00:16:3e:12:34", "rumpnet: xvif1i0: 00:16:3e:12:34 is not a valid mac address"),
    ("00:16:3e:zz:34:56", "rumpnet: xvif1i0: 00:16:3e:zz:34:56 is not a valid mac address"),
    ("00:16:3e:12:34:56", "rumpnet: xvif1i0: Ethernet address 00:16:3e:13:34:56"),
    ("00:16:3e:ff:ff:ff", "rumpnet: xvif1i0: Ethernet address 00:16:3e:00:ff:ff"),
], ids=["missing", "short", "not-hex", "good", "wraps"])
def test_backend_mac_diagnostics(xen, mac, line):
    dom0 = xen.domain(0)
    if mac is None:  # the toolstack's entries, but for the mac
        done = xen.xen("xenstore-write", f"{BACK}/1/0/frontend", "/local/domain/1/device/vif/0",
                       f"{BACK}/1/0/frontend-id", "1", f"{BACK}/1/0/handle", "0", f"{BACK}/1/0/state", "1")
        assert done.returncode == 0, done.stderr
    else:
        attach(xen, 1, f"mac={mac}")
    wait_until(lambda: line in log_of(dom0).splitlines(), repr(line))
    good = "Ethernet address" in line
    assert interfaces(dom0) == (["xvif1i0"] if good else [])
    assert xen.read(f"{BACK}/1/0/state") == ("2" if good else "1")  # InitWait, waiting for a guest
    assert sum("xvif1i0" in text for text in log_of(dom0).splitlines()) == 1
    done = xen.xen("xl", "network-detach", 1, 0)  # Closed at once, interface or none
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
    assert interfaces(dom0) == [] and xen.read(f"{BACK}/1/0/state") is None


def test_a_killed_guest_restarted_after_or_before_dom0_notices_reconnects(xen):
    """kill -9 and start again. First dom0 sees the guest go (backend Closed, xvif1i0 removed) before the
    new one starts; then three times the new one starts at once while dom0 is stopped (SIGSTOP), so that it
    cannot have noticed: the new guest finds the old one's Connected, must not take it as an answer, and
    waits in Initialising until dom0 tears the old connection down and answers with InitWait."""
    dom0, guest = xen.domain(0), xen.domain(1)
    store = XenStore(xen.store)  # read in the test's process: quicker than a command per key
    front, back = "/local/domain/1/device/vif/0", f"{BACK}/1/0"
    attach(xen, 1, "mac=00:16:3e:00:00:20")
    wait_until(lambda: store.get(f"{back}/state") == store.get(f"{front}/state") == "4", "Connected")
    for noticed in (True, False, False, False):
        before = store.get(f"{front}/event-channel")
        if noticed:
            guest.kill()
            wait_until(lambda: store.get(f"{back}/state") == "6", "backend Closed")
            wait_until(lambda: interfaces(dom0) == [], "xvif1i0 removed")
            guest.stop()
            xen.nodes.remove(guest)
            guest = xen.domain(1)
        else:
            os.killpg(dom0.proc.pid, signal.SIGSTOP)
            try:
                guest.kill()
                guest.stop()
                xen.nodes.remove(guest)
                guest = xen.domain(1)
                wait_until(lambda: interfaces(guest) == ["xennet0"], "xennet0 made")
                assert store.get(f"{back}/state") == "4"  # the old guest's, stale
                assert store.get(f"{front}/state") == "1"  # Initialising: no answer from dom0 yet
            finally:
                os.killpg(dom0.proc.pid, signal.SIGCONT)
        wait_until(lambda: store.get(f"{back}/state") == store.get(f"{front}/state") == "4"
                   and store.get(f"{front}/event-channel") != before, "Connected again")
        assert interfaces(dom0) == ["xvif1i0"] and interfaces(guest) == ["xennet0"]
        dom0.ifconfig("xvif1i0", "inet", "10.0.1.1/24")
        guest.ifconfig("xennet0", "inet", "10.0.1.2/24")
        done = guest.run("ping", "-c", "1", "-w", "5", "10.0.1.1")
        assert done.returncode == 0, done.stdout + done.stderr
    assert "link down" not in log_of(dom0)


def grant(xen, domid):
    channel = xen.read(f"/local/domain/{domid}/device/vif/0/event-channel")
    return os.path.join(xen.store, ".grant", str(domid), channel)


def kick_backend(where):
    fd = os.open(os.path.join(where, "to-back"), os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, b"!")
    os.close(fd)


@pytest.mark.parametrize("scribble, message", [
    (lambda ring: ring.__setitem__(slice(0, 4), (1000).to_bytes(4, "little")),
     "tx ring: producer index 1000 is 1000 slots ahead of consumer index 0 (the ring has 128)"),
    (lambda ring: (ring.__setitem__(slice(0, 4), (1).to_bytes(4, "little")),
                   ring.__setitem__(slice(64, 66), (9000).to_bytes(2, "little"))),
     "tx ring: slot 0 holds a frame of 9000 bytes (a frame is 14 to 1514)"),
], ids=["indices", "length"])
def test_corrupt_ring_takes_the_link_down_with_a_message(xen, scribble, message):
    dom0, guest = xen.domain(0), xen.domain(1)
    attach(xen, 1, "mac=00:16:3e:00:00:20")
    wait_until(lambda: connected(xen, 1), "Connected")
    where = grant(xen, 1)
    with open(os.path.join(where, "ring"), "r+b") as f:
        ring = bytearray(f.read(xenring.RING_BYTES))
        scribble(ring)
        f.seek(0)
        f.write(ring)
    kick_backend(where)
    line = f"rumpnet: xvif1i0: {message}; link down"
    wait_until(lambda: line in log_of(dom0).splitlines(), repr(line))
    wait_until(lambda: xen.read(f"{BACK}/1/0/state") == "6", "backend Closed")
    assert "RUNNING" not in dom0.ifconfig("xvif1i0")
    assert dom0.is_alive() and guest.is_alive()


@pytest.mark.parametrize("size", [1000, xenring.FILE_BYTES + 4096])
def test_ring_file_of_the_wrong_size_is_refused(xen, size):
    dom0 = xen.domain(0)
    attach(xen, 1, "mac=00:16:3e:00:00:30")
    wait_until(lambda: xen.read(f"{BACK}/1/0/state") == "2", "backend InitWait")
    where = os.path.join(xen.store, ".grant", "1", "7")  # a guest of our own making
    os.makedirs(where)
    with open(os.path.join(where, "ring"), "wb") as f:
        f.truncate(size)
    for fifo in ("to-back", "to-front"):
        os.mkfifo(os.path.join(where, fifo), 0o600)
    if can_drop_privileges():
        entry = pwd.getpwnam(UNPRIVILEGED)
        for path in (os.path.dirname(where), where, *(os.path.join(where, n) for n in os.listdir(where))):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    front = "/local/domain/1/device/vif/0"
    done = xen.xen("xenstore-write", f"{front}/tx-ring-ref", "14", f"{front}/rx-ring-ref", "15",
                   f"{front}/event-channel", "7", f"{front}/state", "3")
    assert done.returncode == 0, done.stderr
    line = f"rumpnet: xvif1i0: {where}/ring: {size} bytes; a ring pair is {xenring.FILE_BYTES}; link down"
    wait_until(lambda: line in log_of(dom0).splitlines(), repr(line))
    wait_until(lambda: xen.read(f"{BACK}/1/0/state") == "6", "backend Closed")
    assert dom0.is_alive()


def test_one_node_per_domain(xen):
    xen.domain(1)
    done = run("server", "-f", "--domid", "1", "--xenstore", xen.store, f"unix://{xen.workdir}/again.sock",
               user=xen.user, timeout=20)
    assert done.returncode == 1
    assert done.stderr == f"rumpnet server: domain 1 already has a node in the XenStore {xen.store}\n"


def test_an_xvif_destroyed_by_hand_closes_the_backend(xen):
    dom0, guest = xen.domain(0), xen.domain(1)
    attach(xen, 1, "mac=00:16:3e:00:00:40")
    wait_until(lambda: connected(xen, 1), "Connected")
    dom0.ifconfig("xvif1i0", "destroy")
    wait_until(lambda: xen.read(f"{BACK}/1/0/state") == "6", "backend Closed")
    assert dom0.is_alive() and interfaces(dom0) == []
    done = xen.xen("xl", "network-detach", 1, 0)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: interfaces(guest) == [], "xennet0 removed")


def test_dom0_bridges_two_guests_onto_a_bus(xen):
    """dom0's recipe: a bridge joining both xvifs and shmif0, so the guests share a bus with a third node."""
    bus = str(xen.workdir / "bus")
    dom0, guest1, guest2 = xen.domain(0), xen.domain(1), xen.domain(2)
    third = NodeProcess(xen.workdir / "third.sock", user=xen.user)
    xen.nodes.append(third)
    third.attach(bus, "10.0.0.3/24")
    attach(xen, 1, "mac=00:16:3e:00:01:01")
    attach(xen, 2, "mac=00:16:3e:00:02:01")
    wait_until(lambda: connected(xen, 1) and connected(xen, 2), "both vifs Connected")
    dom0.ifconfig("shmif0", "create", "linkstr", bus, "up")
    dom0.ifconfig("xvif1i0", "up")
    dom0.ifconfig("xvif2i0", "up")
    dom0.ifconfig("bridge0", "create")
    done = dom0.run("brconfig", "bridge0", "add", "xvif1i0", "add", "xvif2i0", "add", "shmif0", "up")
    assert done.returncode == 0, done.stderr
    guest1.ifconfig("xennet0", "inet", "10.0.0.1/24")
    guest2.ifconfig("xennet0", "inet", "10.0.0.2/24")
    for guest, peer in ((guest1, "10.0.0.3"), (guest2, "10.0.0.3"), (guest1, "10.0.0.2"), (guest2, "10.0.0.1")):
        done = guest.run("ping", "-c", "2", "-i", "0.2", "-w", "5", peer)
        assert done.returncode == 0, done.stdout + done.stderr
    shown = dom0.run("brconfig", "bridge0").stdout
    for member in ("xvif1i0", "xvif2i0", "shmif0"):
        assert f"\t\t{member} flags=3<LEARNING,DISCOVER>\n" in shown
    learned = dict(re.findall(r"^\t\t([0-9a-f:]{17}) (\S+) \d+ flags=0<>$", shown, re.M))
    third_mac = re.search(r"address: (\S+)", third.ifconfig("shmif0")).group(1)
    assert learned == {"00:16:3e:00:01:01": "xvif1i0", "00:16:3e:00:02:01": "xvif2i0", third_mac: "shmif0"}


async def test_a_guest_waits_for_the_toolstack_to_finish_its_entry(tmp_path, caplog):
    """Until xl writes the frontend's state (its last key) the guest does nothing: no mac to complain of yet,
    and no Initialised of its own for xl's Initialising to overwrite."""
    store = XenStore(str(tmp_path / "xs"))
    store.ensure()
    front = "/local/domain/1/device/vif/0"
    async with open_node(domid=1) as node:
        bus = XenBus(node, store, 1)
        try:
            store.write(f"{front}/backend", f"{BACK}/1/0")
            store.write(f"{front}/backend-id", "0")
            bus.settle()
            assert node.interfaces == {} and store.ls(front) == ["backend", "backend-id"]
            store.write(f"{front}/mac", "00:16:3e:00:00:60")
            store.write(f"{front}/handle", "0")
            bus.settle()
            assert node.interfaces == {} and store.get(f"{front}/state") is None
            store.write(f"{front}/state", "1")
            bus.settle()
            assert list(node.interfaces) == ["xennet0"] and store.read(f"{front}/state") == "1"
            store.write(f"{BACK}/1/0/state", "2")  # the backend's InitWait: now the rings are offered
            bus.settle()
            assert store.read(f"{front}/state") == "3" and store.get(f"{front}/event-channel") is not None
        finally:
            bus.close()
    assert "can't read" not in caplog.text


async def sequence_received(sock, count):
    """The sequence numbers of the first count datagrams sock receives, fewer if none comes for 5 s."""
    got = []
    while len(got) < count:
        try:
            data = await sock.recv(timeout=5.0)
        except OSError:
            break
        got.append(int.from_bytes(data, "big"))
    return got


async def test_a_full_ring_queues_frames_until_the_peer_takes_some_and_a_stuck_peer_bounds_the_queue(xen):
    """Each way, frames beyond the 128 slots wait in the send queue while the peer takes nothing (its
    process stopped) and all arrive, in order, once it runs again; beyond the queue's 256 they are
    dropped and counted, and the sender neither spins nor stops answering."""
    dom0, guest = xen.domain(0), xen.domain(1)
    attach(xen, 1, "mac=00:16:3e:00:00:50")
    wait_until(lambda: connected(xen, 1), "Connected")
    dom0.ifconfig("xvif1i0", "inet", "10.0.1.1/24")
    guest.ifconfig("xennet0", "inet", "10.0.1.2/24")
    async with connect(dom0.url) as back, connect(guest.url) as front:
        socks = {}
        for name, node in (("back", back), ("front", front)):
            socks[name] = await node.socket(SOCK_DGRAM)
            await socks[name].bind(("0.0.0.0", 7000))
        for sending, receiving, address in (("front", "back", "10.0.1.1"), ("back", "front", "10.0.1.2")):
            await socks[sending].sendto(b"ARP first", (address, 7000))  # both ARP caches filled
            assert await socks[receiving].recv(timeout=10) == b"ARP first"

        os.killpg(dom0.proc.pid, signal.SIGSTOP)  # guest -> dom0: 300, more than the ring, fewer than it and the queue
        try:
            for seq in range(300):
                await socks["front"].sendto(seq.to_bytes(4, "big"), ("10.0.1.1", 7000))
        finally:
            os.killpg(dom0.proc.pid, signal.SIGCONT)
        with trio.fail_after(30):
            assert await sequence_received(socks["back"], 300) == list(range(300))

        os.killpg(guest.proc.pid, signal.SIGSTOP)  # dom0 -> guest: 116 more than the ring and the queue
        try:
            for seq in range(128 + SEND_QUEUE + 116):
                await socks["back"].sendto(seq.to_bytes(4, "big"), ("10.0.1.2", 7000))
            before = cpu_seconds(dom0)
            await trio.sleep(1)
            assert cpu_seconds(dom0) - before < 0.5, "the sender spins on a full ring"
            dropped = dom0.run("netstat", "-s", "-p", "xvif")
            output = dom0.ifconfig("xvif1i0")
        finally:
            os.killpg(guest.proc.pid, signal.SIGCONT)
        assert dropped.returncode == 0 and "\t116 frames dropped: the transmit ring and the send queue full" in dropped.stdout
        assert re.search(r"output: \d+ packets, \d+ bytes, \d+ multicasts, 116 errors", output), output
        with trio.fail_after(30):
            assert await sequence_received(socks["front"], 128 + SEND_QUEUE) == list(range(128 + SEND_QUEUE))
        with pytest.raises(OSError):  # and no more: the rest were dropped
            await socks["front"].recv(timeout=0.5)
    assert dom0.is_alive() and guest.is_alive()
