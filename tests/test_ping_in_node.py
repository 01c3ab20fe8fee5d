"""The ping a node runs for a client (ping_start, ping_output, ping_stop): what `rumpnet ping` uses.

The node times every echo itself and keeps the lines until the client
collects them; a client that reads late, never reads or goes away costs the
node a bounded list and stops its ping.
"""

import errno
import os
import subprocess

import pytest
import trio

from rumpnet import connect
from rumpnet.kern import control
from rumpnet.testing import open_pair, rumpnet_command
from rumpnet.tools import noderun


async def _served(node, workdir):
    path = str(workdir / "a.sock")
    await node.nursery.start(control.serve, node, path)
    return f"unix://{path}"


async def _collect(remote, fd):
    lines = []
    while True:
        output = await remote.call("ping_output", fd=fd)
        lines += [text for text, _ in output["lines"]]
        if output["done"]:
            return lines, output["received"]


async def test_lines_wait_for_a_client_that_reads_late(workdir):
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            fd = await remote.call("ping_start", host="10.0.0.2", ident=7, count=3, interval=0.05)
            await trio.sleep(1.0)  # the node pings meanwhile; nothing is collected
            lines, received = await _collect(remote, fd)
    assert lines[0] == "PING 10.0.0.2 (10.0.0.2): 56 data bytes"
    assert [line.split(" time=")[0] for line in lines[1:4]] == [
        f"64 bytes from 10.0.0.2: icmp_seq={seq} ttl=255" for seq in range(3)]
    assert "3 packets transmitted, 3 packets received, 0.0% packet loss" in lines
    assert received == 3


async def test_stop_ends_the_ping_with_its_statistics(workdir):
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            fd = await remote.call("ping_start", host="10.0.0.2", ident=7, interval=0.05)
            await trio.sleep(0.3)
            await remote.call("ping_stop", fd=fd)
            lines, received = await _collect(remote, fd)
            with pytest.raises(OSError) as gone:
                await remote.call("ping_output", fd=fd)
    assert received > 0 and "----10.0.0.2 PING Statistics----" in lines
    assert gone.value.errno == errno.EBADF


async def test_a_client_that_goes_away_stops_its_ping(workdir):
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            await remote.call("ping_start", host="10.0.0.2", ident=7, interval=0.02)
            await trio.sleep(0.2)
        await trio.sleep(0.2)
        sent = a.stats.snapshot()["ip"]["output"]
        await trio.sleep(0.3)
        assert a.stats.snapshot()["ip"]["output"] == sent
        assert not a.raw_sockets


async def test_unread_lines_are_bounded(workdir, monkeypatch):
    monkeypatch.setattr(noderun, "MAX_UNCOLLECTED", 5)
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            fd = await remote.call("ping_start", host="10.0.0.2", ident=7, interval=0.01)
            with trio.fail_after(10):
                while a.raw_sockets:  # the ping's socket closes when the ping ends
                    await trio.sleep(0.05)
            lines, received = await _collect(remote, fd)
    assert len(lines) <= 5 + 1 + 4  # the bound, the line beyond it, and the statistics
    assert lines[-2].endswith("packet loss") or lines[-1].endswith("packet loss")


@pytest.mark.parametrize("options, word", [
    ({"host": "host.example"}, "IPv4"), ({"interval": 0.0}, "interval"), ({"size": 1473}, "size"),
    ({"ttl": 0}, "ttl"), ({"ident": 70000}, "ident"), ({"count": -1}, "count"), ({"deadline": 0.0}, "deadline"),
], ids=["host", "interval", "size", "ttl", "ident", "count", "deadline"])
async def test_options_out_of_range_are_refused(workdir, options, word):
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            with pytest.raises(OSError) as refused:
                await remote.call("ping_start", **{"host": "10.0.0.2", "ident": 7, **options})
        assert not a.raw_sockets
    assert refused.value.errno == errno.EINVAL and word in refused.value.strerror


async def test_pings_per_connection_are_bounded(workdir):
    async with open_pair(str(workdir / "bus")) as (a, b):
        async with connect(await _served(a, workdir)) as remote:
            for _ in range(control.MAX_RUNS):
                await remote.call("ping_start", host="10.0.0.2", ident=7, interval=1.0)
            with pytest.raises(OSError) as refused:
                await remote.call("ping_start", host="10.0.0.2", ident=7, interval=1.0)
    assert refused.value.errno == errno.EAGAIN


def test_two_commands_on_one_node_keep_their_replies_apart(pair):
    a, _ = pair
    env = dict(os.environ, RUMP_SERVER=a.url)
    procs = [subprocess.Popen(rumpnet_command("ping", "-c", "5", "-i", "0.1", "10.0.0.2"), stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    for out in outs:
        assert "5 packets transmitted, 5 packets received, 0.0% packet loss" in out
        assert "DUP" not in out
