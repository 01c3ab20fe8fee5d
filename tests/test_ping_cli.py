"""Two unprivileged node processes on one bus, pinged with the `rumpnet ping` client."""

import os
import re
import signal
import subprocess

import dpkt
import pytest

from rumpnet.testing import frames_on, rumpnet_command

REPLY = re.compile(r"^64 bytes from 10\.0\.0\.2: icmp_seq=(\d+) ttl=255 time=(\d+\.\d{3}) ms$")


def test_five_replies_with_round_trip_times(pair, user):
    a, _ = pair
    done = a.run("ping", "-c", "5", "10.0.0.2", user=user)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PING 10.0.0.2 (10.0.0.2): 56 data bytes"
    replies = [REPLY.match(line) for line in lines if line.startswith("64 bytes")]
    assert len(replies) == 5 and all(replies)
    assert [int(m.group(1)) for m in replies] == [0, 1, 2, 3, 4]
    assert all(float(m.group(2)) > 0 for m in replies)
    assert "----10.0.0.2 PING Statistics----" in lines
    assert "5 packets transmitted, 5 packets received, 0.0% packet loss" in lines
    assert re.search(r"round-trip min/avg/max/stddev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", done.stdout)


def test_quiet_prints_the_first_line_and_the_statistics_only(pair):
    a, _ = pair
    done = a.run("ping", "-q", "-c", "2", "-i", "0.2", "10.0.0.2")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[:4] == ["PING 10.0.0.2 (10.0.0.2): 56 data bytes", "", "----10.0.0.2 PING Statistics----",
                         "2 packets transmitted, 2 packets received, 0.0% packet loss"]
    assert len(lines) == 5 and lines[4].startswith("round-trip min/avg/max/stddev = ")


def test_absent_host_exits_2(pair, user):
    a, _ = pair
    done = a.run("ping", "-c", "2", "-w", "2", "10.0.0.9", user=user)
    assert done.returncode == 2
    assert "2 packets transmitted, 0 packets received, 100.0% packet loss" in done.stdout


def test_nodes_run_unprivileged(pair, user, workdir):
    """As root, the nodes are nobody's processes, and the bus file is nobody's file."""
    if user is None:
        pytest.skip("the tests are not running as root: the nodes already run as this unprivileged user")
    a, _ = pair
    with open(f"/proc/{_node_pid(a)}/status") as status:
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {"65534"}
    assert os.stat(workdir / "bus").st_uid == 65534
    assert os.stat(a.path).st_mode & 0o777 == 0o600


def _node_pid(node):
    """The node's own pid: the last process of its session (the wrappers exec into it)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == node.proc.pid or pid == node.proc.pid:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                if b"rumpnet" in cmd.read():
                    return pid
    raise AssertionError("node process not found")


@pytest.mark.parametrize("args, message", [
    (["-c", "x", "10.0.0.2"], "invalid"),
    (["-c", "0", "10.0.0.2"], "invalid"),
    (["-s", "70000", "10.0.0.2"], "invalid"),
    (["-T", "256", "10.0.0.2"], "invalid"),
    (["-c", "1"], "required"),
    (["-c", "1", "not-an-address"], "not an IPv4 address"),
    (["-c", "1", "-z", "10.0.0.2"], "unrecognized"),
], ids=["count-text", "count-zero", "size-too-big", "ttl-too-big", "no-host", "bad-host", "unknown-flag"])
def test_bad_arguments_one_line_exit_1(pair, args, message):
    a, _ = pair
    done = a.run("ping", *args)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("rumpnet ping: ") and message in done.stderr


def test_ttl_option_reaches_the_wire(pair):
    a, b = pair
    done = a.run("ping", "-c", "1", "-T", "7", "10.0.0.2")
    assert done.returncode == 0
    requests = [dpkt.ethernet.Ethernet(f).data for f in frames_on(a_bus(a))]
    echoes = [p for p in requests if isinstance(p, dpkt.ip.IP) and isinstance(p.data, dpkt.icmp.ICMP)
              and p.data.type == 8]
    assert echoes and all(p.ttl == 7 for p in echoes)


def test_requests_leave_with_ttl_255_by_default(pair, bus):
    a, _ = pair
    assert a.run("ping", "-c", "1", "10.0.0.2").returncode == 0
    ips = [dpkt.ethernet.Ethernet(f).data for f in frames_on(bus)]
    assert [p.ttl for p in ips if isinstance(p, dpkt.ip.IP) and p.data.type == 8] == [255]


def test_interrupt_prints_statistics(pair):
    a, _ = pair
    proc = subprocess.Popen(rumpnet_command("ping", "-i", "0.2", "10.0.0.2"), stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, RUMP_SERVER=a.url))
    first = [proc.stdout.readline() for _ in range(2)]  # the PING line and a reply: ping is running, not starting
    assert "bytes from 10.0.0.2" in first[1], first
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    out = "".join(first) + out
    assert proc.returncode == 0
    assert "----10.0.0.2 PING Statistics----" in out
    assert re.search(r"\d+ packets transmitted, \d+ packets received, 0.0% packet loss", out)


def test_small_packets_have_no_times(pair):
    a, _ = pair
    done = a.run("ping", "-c", "2", "-i", "0.2", "-s", "0", "10.0.0.2")
    assert done.returncode == 0
    assert "8 bytes from 10.0.0.2: icmp_seq=0 ttl=255\n" in done.stdout
    assert "round-trip" not in done.stdout


def a_bus(node):
    return node.ifconfig("shmif0").split("linkstr: ")[1].split()[0]
