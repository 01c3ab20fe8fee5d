"""Time as a kernel service: callouts, and ARP, ICMP and ping on trio's MockClock; a bounded ARP table.

Under pytest-trio's `autojump_clock` the clock jumps to the next deadline as
soon as every task waits, so seconds of protocol time pass in milliseconds.
"""

import ipaddress
import random
import re
import time

import dpkt
import pytest
import trio

from rumpnet import SOCK_DGRAM, SOCK_RAW, open_node
from rumpnet.net.bus import Bus
from rumpnet.kern.callout import Timers
from rumpnet.tools.ping import ping
from rumpnet.testing import frames_on, open_pair
from test_control_hostile import assert_healthy


async def run_timers(nursery):
    timers = Timers()
    nursery.start_soon(timers.run)
    await trio.testing.wait_all_tasks_blocked()
    return timers


# -- the callout service ---------------------------------------------------------------------


async def test_callouts_run_in_deadline_order_and_get_now(autojump_clock, nursery):
    timers = await run_timers(nursery)
    start = trio.current_time()
    ran = []
    callouts = [timers.callout() for _ in range(3)]
    for callout, delay in zip(callouts, (3.0, 1.0, 2.0)):
        callout.reset(delay, lambda now, name: ran.append((name, now - start)), delay)
    assert all(c.pending for c in callouts)
    await trio.sleep(5)
    assert ran == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    assert not any(c.pending for c in callouts)


@pytest.mark.parametrize("first, second", [(5.0, 1.0), (1.0, 5.0)], ids=["sooner", "later"])
async def test_reset_replaces_the_deadline_and_function(autojump_clock, nursery, first, second):
    timers = await run_timers(nursery)
    start = trio.current_time()
    ran = []
    callout = timers.callout()
    callout.reset(first, lambda now: ran.append(("old", now - start)))
    callout.reset(second, lambda now: ran.append(("new", now - start)))
    await trio.sleep(10)
    assert ran == [("new", second)]


async def test_stop_cancels_a_pending_callout(autojump_clock, nursery):
    timers = await run_timers(nursery)
    ran = []
    kept, stopped = timers.callout(), timers.callout()
    kept.reset(2.0, lambda now: ran.append("kept"))
    stopped.reset(1.0, lambda now: ran.append("stopped"))
    assert stopped.stop() is True
    assert stopped.stop() is False
    await trio.sleep(3)
    assert ran == ["kept"]
    assert len(timers) == 0


async def test_a_callout_may_rearm_itself(autojump_clock, nursery):
    timers = await run_timers(nursery)
    ticks = []
    callout = timers.callout()

    def tick(now):
        ticks.append(now)
        if len(ticks) < 5:
            callout.reset(1.0, tick)

    callout.reset(1.0, tick)
    await trio.sleep(10)
    assert [b - a for a, b in zip(ticks, ticks[1:])] == [1.0] * 4


async def test_many_callouts_rearmed_often_each_run_once_and_the_heap_stays_bounded(autojump_clock, nursery):
    timers = await run_timers(nursery)
    rng = random.Random(9)
    ran = []
    callouts = [timers.callout() for _ in range(2000)]
    for _ in range(20):
        for i, callout in enumerate(callouts):
            callout.reset(rng.uniform(1.0, 100.0), lambda now, i: ran.append((now, i)), i)
        assert len(timers) == len(callouts)
        assert len(timers._heap) <= 2 * len(callouts) + 64  # stale entries are swept, not hoarded
    deadlines = {i: c.deadline for i, c in enumerate(callouts)}
    await trio.sleep(101)
    assert sorted(i for _, i in ran) == list(range(len(callouts)))
    assert [now for now, _ in ran] == sorted(now for now, _ in ran)
    assert all(now == deadlines[i] for now, i in ran)
    assert len(timers._heap) == 0


# -- ARP on callouts ---------------------------------------------------------------------------


async def test_arp_entry_expires_after_keep_seconds(autojump_clock, tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        a.sysctl.set("net.inet.arp.keep", 30)
        sock = a.socket(SOCK_RAW, 1)
        assert (await ping(sock, "10.0.0.2", count=1, quiet=True)).received == 1
        assert [row["address"] for row in a.arp.describe()] == ["10.0.0.2"]
        await trio.sleep(29)
        assert [row["expires"] for row in a.arp.describe()] == [1]
        await trio.sleep(2)
        assert a.arp.describe() == []
        assert a.stats.arp["timeouts"] == 1


async def test_arp_asks_once_a_second_five_times_then_the_host_is_down_for_20_seconds(autojump_clock, tmp_path):
    bus = str(tmp_path / "bus")
    async with open_node() as a:
        a.add_address(a.create_shmif(bus), "10.0.0.1/24")
        start = trio.current_time()
        sock = a.socket(SOCK_DGRAM)
        for _ in range(3):
            await sock.sendto(b"held", ("10.0.0.9", 9))
        await trio.sleep(0.5)
        assert a.stats.arp["requests_sent"] == 1
        await trio.sleep(4)  # 4.5 s: the requests of 1, 2, 3 and 4 s have gone
        assert a.stats.arp["requests_sent"] == 5
        assert a.stats.arp["hold_dropped"] == 0
        await trio.sleep(1)  # 5.5 s: given up
        assert a.stats.arp["hold_dropped"] == 3
        with pytest.raises(OSError, match="Host is down"):
            await sock.sendto(b"refused", ("10.0.0.9", 9))
        await trio.sleep(19)  # 24.5 s: still down
        assert a.arp.describe()[0]["mac"] is None
        await trio.sleep(1)  # 25.5 s: forgotten, and a send asks again
        assert a.arp.describe() == []
        await sock.sendto(b"again", ("10.0.0.9", 9))
        assert a.stats.arp["requests_sent"] == 6
        assert trio.current_time() - start == pytest.approx(25.5)
    requests = [frame for frame in frames_on(bus) if frame[12:14] == b"\x08\x06" and frame[21] == 1]
    assert len(requests) == 1 + 6  # the gratuitous ARP and six requests for 10.0.0.9


# -- the ICMP error rate limit -----------------------------------------------------------------


async def test_icmp_errors_are_limited_per_second_of_the_clock(autojump_clock, tmp_path):
    """Datagrams to a closed port of the node's own address: each would draw a port unreachable."""
    async with open_node() as a:
        a.add_address(a.create_shmif(str(tmp_path / "bus")), "10.0.0.1/24")
        a.sysctl.set("net.inet.icmp.errppslimit", 10)
        sock = a.socket(SOCK_DGRAM)
        for _ in range(30):
            await sock.sendto(b"x", ("10.0.0.1", 9))
        assert (a.stats.icmp["errors_sent"], a.stats.icmp["rate_limited"]) == (10, 20)
        await trio.sleep(0.9)
        await sock.sendto(b"x", ("10.0.0.1", 9))
        assert (a.stats.icmp["errors_sent"], a.stats.icmp["rate_limited"]) == (10, 21)
        await trio.sleep(0.1)
        for _ in range(30):
            await sock.sendto(b"x", ("10.0.0.1", 9))
        assert (a.stats.icmp["errors_sent"], a.stats.icmp["rate_limited"]) == (20, 41)


# -- ping's clock ------------------------------------------------------------------------------


async def test_ping_c3_i2_w5_takes_its_time_from_the_clock(autojump_clock, tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        lines = []
        start = trio.current_time()
        with trio.fail_after(6):
            stats = await ping(a.socket(SOCK_RAW, 1), "10.0.0.2", count=3, interval=2, deadline=5, out=lines.append)
        assert (stats.transmitted, stats.received) == (3, 3)
        assert 4.0 <= trio.current_time() - start < 5.0  # the third request left at 4 s
        assert stats.rtts == [0.0, 0.0, 0.0]  # the mock clock does not move while a reply is in flight
        assert lines[1:4] == [f"64 bytes from 10.0.0.2: icmp_seq={seq} ttl=255 time=0.000 ms" for seq in range(3)]


async def test_ping_without_replies_ends_at_its_deadline(autojump_clock, tmp_path):
    async with open_node() as a:
        a.add_address(a.create_shmif(str(tmp_path / "bus")), "10.0.0.1/24")
        lines = []
        start = trio.current_time()
        with trio.fail_after(6):
            stats = await ping(a.socket(SOCK_RAW, 1), "10.0.0.9", count=3, interval=2, deadline=5, out=lines.append)
        assert (stats.transmitted, stats.received) == (3, 0)
        assert trio.current_time() - start == pytest.approx(5.0)
        assert "3 packets transmitted, 0 packets received, 100.0% packet loss" in lines


async def test_ping_stamps_requests_with_its_clock(tmp_path):
    """The timestamp a request carries is the given clock's, in nanoseconds."""
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        await ping(a.socket(SOCK_RAW, 1), "10.0.0.2", count=1, quiet=True, clock=lambda: 1234.5)
    requests = [dpkt.ethernet.Ethernet(f).data.data for f in frames_on(str(tmp_path / "bus"))
                if f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 8]
    assert [int.from_bytes(r.data.data[:8], "big") for r in requests] == [1_234_500_000_000]


# -- a bounded ARP table -----------------------------------------------------------------------


def arp_flood(count, target, seed=5):
    """count ARP requests for target, each from a different made-up host."""
    rng = random.Random(seed)
    sources = rng.sample(range(1, 2**24 - 1), count)
    frames = []
    for n in sources:
        mac = bytes([0xB2, 0xA0]) + rng.randbytes(4)
        spa = ipaddress.IPv4Address((172 << 24) | n).packed  # never the node's own 10.0.0.0/24
        request = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REQUEST, sha=mac, spa=spa, tha=b"\0" * 6, tpa=target)
        frames.append(bytes(dpkt.ethernet.Ethernet(dst=b"\xff" * 6, src=mac, type=dpkt.ethernet.ETH_TYPE_ARP,
                                                   data=request)))
    return frames


def arp_counter(node, text):
    stats = node.run("netstat", "-s", "-p", "arp").stdout
    return int(re.search(rf"(\d+) {re.escape(text)}", stats).group(1))


def test_an_arp_flood_from_5000_sources_stays_within_max_entries(pair, bus):
    a, b = pair
    assert a.run("sysctl", "-w", "net.inet.arp.max_entries=256").returncode == 0
    frames = arp_flood(5000, bytes([10, 0, 0, 1]))
    with Bus(bus) as shared:
        for i in range(0, len(frames), 250):
            shared.send(frames[i:i + 250], 0x5EED)
    deadline = time.monotonic() + 60
    while arp_counter(a, "requests received") < 5000:
        assert time.monotonic() < deadline, "the node did not read the flood"
        time.sleep(0.2)
    assert len(a.run("arp", "-a").stdout.splitlines()) == 256
    assert arp_counter(a, "entries evicted to keep within net.inet.arp.max_entries") == 5000 - 256
    assert_healthy(a)
    assert b.run("ping", "-c", "1", "10.0.0.1").returncode == 0  # past its own 5,000 replies on the bus
    assert len(a.run("arp", "-a").stdout.splitlines()) <= 256
