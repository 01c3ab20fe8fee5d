"""`rumpnet perf` in TCP mode and rumpnet.tools.perf_tcp: bulk throughput, intervals and retransmissions."""

import errno
import re
import signal
import types

import pytest
import trio

from rumpnet import Impairment, connect
from rumpnet.testing import open_pair, run
from rumpnet.tools import perf, perf_tcp

from test_nc import one_line_error, read_until, wait_bound

LINE = r"^\[  1\] +([\d.]+)- *([\d.]+) sec +([\d.]+) (\w+) +[\d.]+ \w+/sec"
INTERVAL = re.compile(LINE + r" +(\d+)$", re.M)
SENDER = re.compile(LINE + r" +(\d+)  sender$", re.M)
RECEIVER = re.compile(LINE + r" +receiver$", re.M)
UNITS = {"Bytes": 1, "KBytes": 1 << 10, "MBytes": 1 << 20, "GBytes": 1 << 30}


def amount(number, unit):
    return float(number) * UNITS[unit]


def test_tcp_perf_between_two_node_processes(pair, background):
    a, b = pair
    receiver = background(a, "perf", "-s")
    wait_bound(a, perf.DEFAULT_PORT)
    sender = background(b, "perf", "-c", "10.0.0.1", "-t", "3", "-i", "1")
    printed = _read_to_first_interval(sender)
    assert sender.poll() is None  # the first interval is printed as it ends, not with the summary
    rest, errors = sender.communicate(timeout=30)
    assert sender.returncode == 0, errors
    printed += rest.decode()
    assert "Client connecting to 10.0.0.1, TCP port 5001" in printed
    intervals = INTERVAL.findall(printed)
    assert len(intervals) == 3  # a 3 s test in one-second intervals
    assert [float(start) for start, *_ in intervals] == sorted(float(start) for start, *_ in intervals)
    start, end, number, unit, retransmits = SENDER.search(printed).groups()
    sent = amount(number, unit)
    assert sent > 0 and int(retransmits) >= sum(int(i[4]) for i in intervals)
    assert sum(amount(i[2], i[3]) for i in intervals) == pytest.approx(sent, rel=0.02)
    _, _, number, unit = RECEIVER.search(printed).groups()
    assert amount(number, unit) == pytest.approx(sent, rel=0.01)  # every byte sent arrived
    heard = read_until(receiver.stdout, b"/sec\n").decode()
    assert "Server listening on TCP port 5001" in heard and "connected with 10.0.0.2 port" in heard
    assert f"{number} {unit}" in heard
    _interrupt_gives_the_summary(background, b)
    trio.run(_calls_on_a_bad_descriptor_fail, b.url)
    trio.run(_lengths_beyond_what_a_write_takes_are_refused, b.url)
    receiver.terminate()
    receiver.wait(timeout=10)
    assert f".{perf.DEFAULT_PORT} " not in a.run("netstat", "-an").stdout  # the receiver went with its command
    refused = b.run("perf", "-c", "10.0.0.1", "-t", "1", timeout=30)
    assert refused.returncode == 1
    assert refused.stderr == "rumpnet perf: 10.0.0.1 port 5001: Connection refused\n"


def _read_to_first_interval(proc):
    """What proc has written when its first interval line comes; a summary line with it means none came live."""
    printed = read_until(proc.stdout, b"/sec ").decode()
    assert INTERVAL.search(printed) and not SENDER.search(printed), printed
    return printed


def _interrupt_gives_the_summary(background, node):
    """The connection's line comes when it is made, as iperf's; Ctrl-C then stops a long test early:
    the interval under way, both summary lines, and exit 130."""
    sender = background(node, "perf", "-c", "10.0.0.1", "-t", "60", "-i", "20")
    printed = read_until(sender.stdout, b"Retr\n").decode()
    assert "connected with 10.0.0.1 port 5001" in printed
    sender.send_signal(signal.SIGINT)  # setpriv executes the command: this pid is it
    rest, errors = sender.communicate(timeout=30)
    printed += rest.decode()
    assert sender.returncode == 130, errors
    start, end, number, unit, _ = SENDER.search(printed).groups()
    assert float(end) < 20  # stopped within its first interval: the line did not wait for that interval's end
    sent = amount(number, unit)
    intervals = INTERVAL.findall(printed)
    assert len(intervals) == 1 and amount(intervals[0][2], intervals[0][3]) == pytest.approx(sent, rel=0.02)
    _, _, number, unit = RECEIVER.search(printed).groups()
    assert amount(number, unit) == pytest.approx(sent, rel=0.01)  # the summary covers what was sent


async def _calls_on_a_bad_descriptor_fail(url):
    async with connect(url) as node:
        ping = await node.call("ping_start", host="10.0.0.1", ident=7, count=1)
        for call in ("perf_tcp_output", "perf_tcp_stop"):
            for fd in (99, ping):  # nothing there; a ping, not a sender
                with pytest.raises(OSError) as bad:
                    await node.call(call, fd=fd)
                assert bad.value.errno == errno.EBADF, (call, fd)


async def _lengths_beyond_what_a_write_takes_are_refused(url):
    """A sender's buffer is made at once in the node: a huge length must be refused, not allocated."""
    async with connect(url) as node:
        for call, errno_expected in (("perf_tcp_start", errno.EINVAL), ("perf_client", errno.EMSGSIZE)):
            with pytest.raises(OSError) as bad:
                await node.call(call, host="10.0.0.1", length=2**40, duration=1.0)
            assert bad.value.errno == errno_expected, call
        assert await node.call("if_list")  # the node is alive


@pytest.mark.parametrize("args, message", [
    (["-c", "10.0.0.1", "-b", "10M"], "-b: TCP sends as fast as the window allows"),
    (["-c", "10.0.0.1", "-u", "-i", "1"], "-i: interval reports are for TCP"),
    (["-c", "10.0.0.1", "-i", "0"], "invalid"),
], ids=["rate-for-tcp", "interval-for-udp", "zero-interval"])
def test_bad_tcp_command_lines(args, message):
    one_line_error(run("perf", *args, server=""), "perf", message)  # refused before any node is asked


async def test_losses_show_as_the_senders_retransmissions(tmp_path, monkeypatch):
    scopes = []  # the sender's deadlines: one an interval, however many writes it makes
    counted = {**vars(trio), "move_on_at": lambda deadline: scopes.append(deadline) or trio.move_on_at(deadline)}
    monkeypatch.setattr(perf_tcp, "trio", types.SimpleNamespace(**counted))  # the sender's trio, not the stack's
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        b.set_impairment("shmif0", Impairment(loss=0.05, seed=7))  # the sender's frames
        server = await perf_tcp.start_server(a)
        report = await perf_tcp.run_client(b, "10.0.0.1", length=10000, duration=0.5, interval=0.25)
        assert len(scopes) == len(report.intervals) >= 1
        assert report.bytes > 0 and report.server.bytes == report.bytes  # intact despite the loss
        assert report.retransmits >= sum(i.retransmits for i in report.intervals) > 0  # the total: till the last ACK
        assert report.retransmits == b.stats.tcp["retransmitted"]
        assert sum(i.bytes for i in report.intervals) == report.bytes
        with trio.fail_after(5):
            assert await server.reports.receive() == report.server
        server.sock.close()
