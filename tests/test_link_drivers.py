"""The link-driver contract: a driver written here carries ping and UDP, and the pcap tap and the fault
injector wrap it and shmif (real bus, real node processes) alike; the interface naming rules."""

import errno
from contextlib import asynccontextmanager
import logging
import os

import dpkt
import pytest
import trio

from rumpnet import SOCK_DGRAM, Driver, Impairment, InterfaceError, open_node, register_driver, unregister_driver
from rumpnet.net.if_bridge import BridgeDriver
from rumpnet.net.if_clone import lookup
from rumpnet.net.if_shmif import ShmifDriver
from rumpnet.net.if_virt import VirtDriver
from rumpnet.testing import ping_once
from test_counters import netstat_s

WIRES = {}  # linkstr -> the drivers attached to that wire


class QueueDriver(Driver):
    """Two in-memory queues: what one end transmits, the other receives, in the same batches."""

    kind = "tq"
    needs_linkstr = True

    def __init__(self, ifp):
        super().__init__(ifp)
        self.wire = None
        self.scope = trio.CancelScope()
        self.send_end, self.receive_end = trio.open_memory_channel(64)

    def attach(self, linkstr):
        self.wire = linkstr
        WIRES.setdefault(linkstr, []).append(self)

    def linkstr(self):
        return self.wire

    def start(self, nursery, input):
        self.scope = trio.CancelScope()
        nursery.start_soon(self._receive, input)

    async def _receive(self, input):
        with self.scope:
            async for frames in self.receive_end:
                input(frames)

    def transmit(self, frames):
        for peer in WIRES[self.wire]:
            if peer is not self:
                try:
                    peer.send_end.send_nowait(list(frames))
                except trio.WouldBlock:
                    self.ifp.counters.oerrors += len(frames)
                    return
        self.ifp.counters.count_output(frames)

    def stop(self):
        self.scope.cancel()

    def detach(self):
        self.stop()
        if self.wire is not None:
            WIRES[self.wire].remove(self)


@pytest.fixture
def queue_driver():
    register_driver(QueueDriver)
    yield
    unregister_driver("tq")
    WIRES.clear()


@asynccontextmanager
async def queue_pair():
    """Two nodes in this program joined by the queue driver, through the public contract only."""
    async with open_node() as a, open_node() as b:
        for node, address in ((a, "10.0.0.1/24"), (b, "10.0.0.2/24")):
            node.create_interface("tq0")
            node.set_linkstr("tq0", "wire")
            node.add_address("tq0", address)
        yield a, b


def echo_frames(path, icmp_type):
    """The ICMP messages of a type in a pcap file, read back with dpkt."""
    with open(path, "rb") as f:
        frames = [dpkt.ethernet.Ethernet(data) for _, data in dpkt.pcap.Reader(f)]
    return [e for e in frames if isinstance(e.data, dpkt.ip.IP) and isinstance(e.data.data, dpkt.icmp.ICMP)
            and e.data.data.type == icmp_type]


async def test_a_driver_of_the_tests_carries_ping_and_udp(queue_driver):
    async with queue_pair() as (a, b):
        assert a.interfaces["tq0"].kind == "tq"
        assert await ping_once(a, "10.0.0.2")
        with b.socket(SOCK_DGRAM) as server, a.socket(SOCK_DGRAM) as client:
            await server.bind(("0.0.0.0", 9000))
            await client.sendto(b"over the queues", ("10.0.0.2", 9000))
            data, (host, _) = await server.recvfrom(100)
        assert (data, host) == (b"over the queues", "10.0.0.1")
        assert a.interfaces["tq0"].counters.opackets >= 3  # ARP request, echo request, datagram


async def test_pcap_tap_on_the_test_driver_records_both_ways(queue_driver, tmp_path):
    capture = tmp_path / "a.pcap"
    async with queue_pair() as (a, b):
        a.set_pcap("tq0", str(capture))
        assert a.interfaces["tq0"].describe()["pcap"] == str(capture)
        for _ in range(3):
            assert await ping_once(a, "10.0.0.2")
        a.set_pcap("tq0", None)
        assert "pcap" not in a.interfaces["tq0"].describe()
    assert len(echo_frames(capture, dpkt.icmp.ICMP_ECHO)) == 3
    assert len(echo_frames(capture, dpkt.icmp.ICMP_ECHOREPLY)) == 3


async def test_loss_drops_all_and_none_restores(queue_driver):
    async with queue_pair() as (a, b):
        assert await ping_once(a, "10.0.0.2")
        a.set_impairment("tq0", Impairment(loss=1.0))
        assert not await ping_once(a, "10.0.0.2", timeout=0.5)
        assert b.stats.icmp["echo_received"] == 1
        a.set_impairment("tq0", None)
        assert await ping_once(a, "10.0.0.2")


async def test_duplicate_doubles_every_frame(queue_driver, tmp_path):
    capture = tmp_path / "dup.pcap"
    async with queue_pair() as (a, b):
        assert await ping_once(a, "10.0.0.2")
        a.set_pcap("tq0", str(capture))
        a.set_impairment("tq0", Impairment(duplicate=1.0))
        for _ in range(2):
            assert await ping_once(a, "10.0.0.2")
        await trio.sleep(0.1)  # the duplicates' replies
        a.set_pcap("tq0", None)
    assert len(echo_frames(capture, dpkt.icmp.ICMP_ECHO)) == 4
    assert b.stats.icmp["echo_received"] == 1 + 4


async def test_delay_holds_frames_on_trio_time(queue_driver, autojump_clock):
    async with queue_pair() as (a, b):
        assert await ping_once(a, "10.0.0.2")
        a.set_impairment("tq0", Impairment(delay=1.5))
        start = trio.current_time()
        assert await ping_once(a, "10.0.0.2", timeout=5)
        assert 1.5 <= trio.current_time() - start < 2.0


def test_impairments_are_checked():
    with pytest.raises(ValueError, match="loss 2 is not a probability"):
        Impairment(loss=2)
    with pytest.raises(ValueError, match="delay 11 is not a time"):
        Impairment(delay=11)
    assert Impairment(loss=0.05, delay=0.02).describe() == "loss 5% delay 20ms seed 0"


# -- shmif, real bus, real node processes ----------------------------------------------------------

def test_pcap_and_impair_from_ifconfig_on_shmif(pair, workdir):
    a, b = pair
    capture = workdir / "a.pcap"
    a.ifconfig("shmif0", "pcap", str(capture))
    assert a.run("ping", "-c", "2", "-i", "0.2", "10.0.0.2").returncode == 0
    shown = a.ifconfig("shmif0")
    assert f"\tpcap: {capture}\n" in shown
    a.ifconfig("shmif0", "-pcap")
    assert len(echo_frames(capture, dpkt.icmp.ICMP_ECHO)) == 2
    assert len(echo_frames(capture, dpkt.icmp.ICMP_ECHOREPLY)) == 2

    a.ifconfig("shmif0", "impair", "loss", "100%")
    assert "\timpair: loss 100% seed 0\n" in a.ifconfig("shmif0")
    assert a.run("ping", "-c", "2", "-i", "0.2", "-w", "1", "10.0.0.2").returncode == 2
    assert netstat_s(b, "-p", "icmp")["icmp"]["echo_received"] == 2

    a.ifconfig("shmif0", "impair", "corrupt", "100%", "seed", "1")
    assert a.run("ping", "-c", "3", "-i", "0.2", "-w", "1", "10.0.0.2").returncode == 2
    counted = netstat_s(b)
    bad_sums = counted["ip"]["bad_checksum"] + counted["icmp"]["bad_checksum"]
    others = sum(counted["ip"][name] for name in ("bad_version", "bad_header_length", "bad_length"))
    assert bad_sums >= 1 and bad_sums + others == 3
    assert counted["icmp"]["echo_received"] == 2

    a.ifconfig("shmif0", "impair", "none")
    assert "impair" not in a.ifconfig("shmif0")
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0


# -- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, outcome", [
    ("shmif0", ShmifDriver), ("shmif9999", ShmifDriver),
    ("shmif01", "not a shmif name"), ("shmif10000", "not a shmif name"), ("shmif", "not a shmif name"),
    ("shmif-1", "not a shmif name"), ("SHMIF0", "no such driver"),
    ("virt0", VirtDriver), ("xennet3", "no xennet driver in this node"),
    ("bridge0", BridgeDriver), ("bridge01", "not a bridge name"), ("xvif1i0", "no xvif driver in this node"),
    ("xvif0i9999", "no xvif driver in this node"),
    ("xvif1", "not a xvif name (xvifXiY"), ("xvif01i0", "not a xvif name"), ("xvif1i", "not a xvif name"),
    ("virt00", "not a virt name"), ("frob0", "no such driver"), ("", "no such driver"), ("0", "no such driver"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_interface_names(name, outcome):
    if isinstance(outcome, str):
        with pytest.raises(InterfaceError, match=outcome.replace("(", r"\(")) as caught:
            lookup(name)
        assert caught.value.errno in (errno.EINVAL, errno.ENXIO)
    else:
        assert lookup(name) is outcome


def test_a_registered_driver_gets_its_names(queue_driver):
    assert lookup("tq3") is QueueDriver
    with pytest.raises(InterfaceError, match="not a tq name"):
        lookup("tq03")


async def test_capenable_from_the_environment_is_shmifs_only(queue_driver, tmp_path):
    async with open_node(capenable=0x7FF80) as node:
        assert node.create_interface("tq0").capenable == 0
        assert node.interface(node.create_shmif(str(tmp_path / "bus"))).capenable == 0x7FF80


async def test_shmif_reports_through_logging(tmp_path, caplog):
    """A node in a program says what befell its bus through logging: the problem at WARNING, the news at INFO."""
    bus = str(tmp_path / "bus")
    caplog.set_level(logging.INFO, logger="rumpnet")
    async with open_node() as node:
        node.add_address(node.create_shmif(bus), "10.0.0.1/24")
        whole = open(bus, "rb").read()
        os.truncate(bus, 0)
        assert not await ping_once(node, "10.0.0.2", timeout=0.2)
        with open(bus, "r+b") as f:
            f.write(whole)
        assert not await ping_once(node, "10.0.0.2", timeout=0.2)
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        ("rumpnet.net.if_shmif", logging.WARNING,
         f"shmif0: {bus}: bus file shrank to 0 bytes; not using it until it is a shmif bus again"),
        ("rumpnet.net.if_shmif", logging.INFO, f"shmif0: {bus}: a shmif bus again; using it"),
    ]
