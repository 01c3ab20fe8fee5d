"""`rumpnet perf` and rumpnet.tools.perf: iperf-style UDP figures between two nodes, sender and receiver in the nodes."""

import json
import re

import pytest
import trio

from rumpnet import SOCK_DGRAM
from rumpnet.tools import perf
from rumpnet.cli.common import Usage
from rumpnet.cli.perf import format_bits, format_bytes, parse_rate
from rumpnet.testing import open_pair

from test_nc import one_line_error, read_until, wait_bound

SENT = re.compile(r"^\[  1\] Sent (\d+) datagrams \((\d+) datagrams/sec\)$", re.M)
RESULT = re.compile(r"^\[ +1\] +0\.0- *[\d.]+ sec +[\d.]+ \w+ +[\d.]+ \w+/sec +([\d.]+) ms +(\d+)/ *(\d+) "
                    r"\(([\d.e+-]+)%\) +(\d+) datagrams/sec$", re.M)


def test_perf_between_two_node_processes(pair, background):
    a, b = pair
    receiver = background(a, "perf", "-s", "-u")
    wait_bound(a, perf.DEFAULT_PORT)
    done = b.run("perf", "-c", "10.0.0.1", "-u", "-t", "1", "-l", "64", "-b", "2M", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Client connecting to 10.0.0.1, UDP port 5001" in done.stdout
    sent = int(SENT.search(done.stdout).group(1))
    jitter, lost, total, percent, per_second = RESULT.search(done.stdout).groups()
    assert int(total) == sent > 0
    assert 0 <= int(lost) < sent  # datagrams received > 0
    assert 0 <= float(percent) <= 100 and float(jitter) >= 0 and int(per_second) > 0
    printed = read_until(receiver.stdout, b"datagrams/sec\n").decode()
    assert "Server listening on UDP port 5001" in printed
    assert f"{lost}/{int(total):5d}" in printed
    receiver.terminate()
    receiver.wait(timeout=10)
    assert f".{perf.DEFAULT_PORT} " not in a.run("netstat", "-an").stdout  # the receiver went with its command


def test_perf_without_a_receiver_is_refused(pair):
    a, b = pair
    done = b.run("perf", "-c", "10.0.0.1", "-u", "-t", "1", timeout=30)
    assert done.returncode == 1
    assert done.stderr == "rumpnet perf: 10.0.0.1 port 5001: Connection refused\n"
    assert "Sent" not in done.stdout  # the probe found the closed port before the test began


@pytest.mark.parametrize("args, message", [
    (["-u"], "give either -s"),
    (["-s", "-c", "10.0.0.1", "-u"], "give either -s"),
    (["-c", "host.example", "-u"], "not an IPv4 address"),
    (["-c", "10.0.0.1", "-u", "-l", "8"], "-l 8: a UDP datagram's payload is 12 to 65507 bytes"),
    (["-c", "10.0.0.1", "-u", "-b", "fast"], "not a rate"),
    (["-c", "10.0.0.1", "-u", "-t", "0"], "invalid"),
    (["-s", "-u", "-p", "0"], "invalid"),
], ids=["neither", "both", "name", "short-length", "bad-rate", "no-time", "port-zero"])
def test_bad_command_lines(pair, args, message):
    a, _ = pair
    one_line_error(a.run("perf", *args), "perf", message)


async def test_the_python_api_measures_in_one_program(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await perf.start_server(a)
        report = await perf.run_client(b, "10.0.0.1", length=200, duration=0.5, bits_per_second=1e6)
        assert report.sent > 0 and report.bytes == 200 * report.sent
        assert report.local[0] == "10.0.0.2" and report.remote == ("10.0.0.1", perf.DEFAULT_PORT)
        got = report.server
        assert got.total == report.sent and 0 < got.received <= got.total
        assert got.lost == got.total - got.received and 0 <= got.loss_percent <= 100
        assert got.bytes == 200 * got.received and got.jitter >= 0 and got.duration > 0
        with trio.fail_after(1):
            assert await server.reports.receive() == got
        server.sock.close()


async def test_a_small_receive_buffer_shows_as_loss(tmp_path):
    """At a rate the bus carries easily, what the receiver's queue drops is what the report calls lost."""
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        await perf.start_server(a, rcvbuf=1100)  # one 1000-byte datagram: every burst overflows it
        report = await perf.run_client(b, "10.0.0.1", length=1000, duration=0.5, bits_per_second=4000 * 1000 * 8)
        assert a.stats.driver("shmif").get("bus_laps", 0) == 0
        assert 0 < report.server.lost <= a.stats.udp["full_socket"]  # (a dropped closing datagram is sent again)


async def test_order_loss_and_the_count_sent_as_iperf_keeps_them(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await perf.start_server(a)
        sock = b.socket(SOCK_DGRAM)
        await sock.connect(("10.0.0.1", perf.DEFAULT_PORT))
        for seq in (0, 1, 3, 2, 5):
            await sock.send(perf.HEADER.pack(seq, 0, 0) + bytes(20))
        await sock.send(perf.HEADER.pack(-7 - 1, 0, 0))  # "7 were sent": 4 and 6 never came
        with trio.fail_after(5):
            report = await server.reports.receive()
        assert (report.received, report.total, report.lost, report.out_of_order) == (5, 7, 2, 1)
        assert report.bytes == 5 * (perf.HEADER.size + 20)
        with trio.fail_after(5):
            answer = await sock.recv()
        assert perf.ServerReport.from_dict(json.loads(answer[perf.HEADER.size:])) == report


async def test_a_receiver_that_never_reports_leaves_the_server_report_empty(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        silent = a.socket(SOCK_DGRAM)
        await silent.bind(("0.0.0.0", perf.DEFAULT_PORT))
        report = await perf.run_client(b, "10.0.0.1", length=64, duration=0.1, bits_per_second=1e5)
        assert report.sent > 0 and report.server is None


@pytest.mark.parametrize("text, length, expected", [
    ("0", 1470, 0), ("1M", 1470, 1e6), ("500k", 1470, 5e5), ("1.5G", 1470, 1.5e9), ("2000", 1470, 2000),
    ("20000pps", 64, 20000 * 64 * 8),
])
def test_rates_read_as_iperf_reads_them(text, length, expected):
    assert parse_rate(text, length) == expected


@pytest.mark.parametrize("text", ["", "fast", "-1M", "1T", "pps"])
def test_bad_rates(text):
    with pytest.raises(Usage):
        parse_rate(text, 1470)


@pytest.mark.parametrize("count, text", [(512, "   512 Bytes"), (2048, "  2.00 KBytes"), (3 << 20, "  3.00 MBytes")])
def test_byte_counts_as_iperf_prints_them(count, text):
    assert format_bytes(count) == text


@pytest.mark.parametrize("rate, text", [(999, "   999 bits/sec"), (1.05e6, "  1.05 Mbits/sec"),
                                        (2.5e9, "  2.50 Gbits/sec")])
def test_bit_rates_as_iperf_prints_them(rate, text):
    assert format_bits(rate) == text


def test_a_second_receiver_on_the_port_is_refused(pair, background):
    a, _ = pair
    background(a, "perf", "-s", "-u")
    wait_bound(a, perf.DEFAULT_PORT)
    one_line_error(a.run("perf", "-s", "-u"), "perf", "UDP port 5001: Address already in use")
