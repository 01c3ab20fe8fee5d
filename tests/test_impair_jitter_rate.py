"""Jitter and a rate limit on an interface, their counters in netstat -s, and the loss and delay acceptance."""

from pathlib import Path
import re

import pytest
import trio

from rumpnet import SOCK_DGRAM, Impairment
from rumpnet.cli.common import Usage
from rumpnet.cli.ifconfig import parse_impairment
from rumpnet.scenario import load
from rumpnet.testing import ping_once
from test_counters import netstat_s
from test_link_drivers import queue_driver, queue_pair  # noqa: F401 (a fixture and its helper)

SCENARIOS = Path(__file__).parent.parent / "scenarios"


async def test_jitter_spreads_the_delay_both_ways(queue_driver, autojump_clock):  # noqa: F811
    async with queue_pair() as (a, b):
        assert await ping_once(a, "10.0.0.2")
        a.set_impairment("tq0", Impairment(delay=1.0, jitter=0.5, seed=3))
        times = []
        for _ in range(20):
            start = trio.current_time()
            assert await ping_once(a, "10.0.0.2", timeout=5)
            times.append(trio.current_time() - start)
        assert all(0.5 <= t <= 1.5 for t in times)
        assert max(times) - min(times) > 0.5  # not one fixed delay
        assert a.stats.snapshot()["impair"]["delayed"] == 20


async def test_rate_limit_serialises_a_burst(queue_driver, autojump_clock):  # noqa: F811
    async with queue_pair() as (a, b):
        assert await ping_once(a, "10.0.0.2")
        server = b.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", 9000))
        client = a.socket(SOCK_DGRAM)
        a.set_impairment("tq0", Impairment(rate=8000))  # 1000 bytes a second
        start = trio.current_time()
        for _ in range(10):
            await client.sendto(bytes(100), ("10.0.0.2", 9000))  # frames of 142 bytes
        arrivals = []
        for _ in range(10):
            await server.recvfrom(2048, timeout=10)
            arrivals.append(trio.current_time() - start)
        assert arrivals[0] == pytest.approx(0.142, abs=0.01)
        assert arrivals[-1] == pytest.approx(1.42, abs=0.01)
        assert a.stats.snapshot()["impair"]["rate_limited"] == 9


def test_ifconfig_takes_jitter_and_rate():
    words = "delay 20ms jitter 5ms rate 1mbit loss 1%".split()
    assert parse_impairment(words, 0) == ({"delay": 0.02, "jitter": 0.005, "rate": 10 ** 6, "loss": 0.01}, 7)
    assert Impairment(delay=0.02, jitter=0.005, rate=1500 * 1000).describe() == \
        "delay 20ms jitter 5ms rate 1500kbit seed 0"
    for bad, message in [("rate 1mbps", "is not a rate"), ("rate 0bit", "rate: "), ("jitter 11s", "jitter: ")]:
        with pytest.raises(Usage, match=message):
            parse_impairment(bad.split(), 0)


def test_ifconfig_shows_and_netstat_counts(pair):
    a, b = pair
    a.ifconfig("shmif0", "impair", "delay", "20ms", "jitter", "5ms", "rate", "1mbit")
    assert "\timpair: delay 20ms jitter 5ms rate 1mbit seed 0\n" in a.ifconfig("shmif0")
    assert a.run("ping", "-c", "2", "-i", "0.2", "10.0.0.2").returncode == 0
    counted = netstat_s(a, "-p", "impair")["impair"]
    assert counted["delayed"] >= 2 and counted["dropped"] == 0
    a.ifconfig("shmif0", "impair", "none")
    assert netstat_s(a, "-p", "impair")["impair"]["delayed"] == counted["delayed"]  # kept after it ended


def round_trips(run, count=10):
    done = run.run("a", f"ping -c {count} -i 0.05 10.0.0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    return [float(t) for t in re.findall(r"time=([0-9.]+) ms", done.stdout)]


def test_loss_and_delay_as_a_user_sees_them(tmp_path):
    """loss 20% on 200 pings loses about a fifth; delay 50ms adds 50 ms ± 10%; impair none restores."""
    scenario = load(SCENARIOS / "impairments.toml")
    scenario.rundir = tmp_path / "run"
    with scenario as run:
        done = run.run("a", "ping -q -c 200 -i 0.01 -w 20 10.0.0.2")
        received = int(re.search(r"200 packets transmitted, (\d+) packets received", done.stdout).group(1))
        assert 200 - 3 * 6 <= received + 40 <= 200 + 3 * 6  # 40 expected lost, three standard deviations
        run.run("a", "ifconfig shmif0 impair none")
        before = min(round_trips(run))  # the least of each: a loaded machine only ever adds time
        run.run("a", "ifconfig shmif0 impair delay 50ms")
        grown = min(round_trips(run)) - before
        assert 45 <= grown <= 55
        run.run("a", "ifconfig shmif0 impair none")
        assert min(round_trips(run)) < before + 25
        assert any(frame.type == 0x0806 for frame in run.frames("lan"))  # ARP, as dpkt reads it
