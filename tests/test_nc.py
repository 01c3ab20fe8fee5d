"""`rumpnet nc -u` and `rumpnet echo -u` between two node processes, as a user types them; echo's client."""

import errno
import os
import select
import subprocess
import time

import pytest

from rumpnet.tools import echo
from rumpnet.testing import open_pair


def read_until(stream, wanted, timeout=10.0):
    """Bytes read from a pipe until wanted is among them (or the time is up)."""
    got = b""
    deadline = time.monotonic() + timeout
    while wanted not in got and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        got += chunk
    return got


def wait_bound(node, port, timeout=10.0):
    """Wait until the node lists a UDP socket on port (a listener is ready)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f".{port} " in node.run("netstat", "-an").stdout:
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing bound to UDP port {port}")


def udp_count(node, text):
    """A number from `netstat -s -p udp`, found by its description."""
    for line in node.run("netstat", "-s", "-p", "udp").stdout.splitlines():
        count, _, description = line.strip().partition(" ")
        if description == text:
            return int(count)
    raise LookupError(text)


def one_line_error(done, command, message):
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"rumpnet {command}: ") and message in done.stderr
    assert len(done.stderr.splitlines()) == 1


# -- nc -----------------------------------------------------------------------------------

def test_echo_hi_through_nc_reaches_the_listener(pair, background):
    a, b = pair
    listener = background(a, "nc", "-u", "-l", "-p", "9000")
    wait_bound(a, 9000)
    sender = background(b, "nc", "-u", "10.0.0.1", "9000", stdin=subprocess.PIPE)
    sender.stdin.write(b"hi\n")
    sender.stdin.close()
    assert read_until(listener.stdout, b"hi\n") == b"hi\n"
    assert sender.poll() is None  # as OpenBSD's nc, it still waits for replies after stdin ends


def test_the_listener_answers_from_its_stdin(pair, background):
    a, b = pair
    listener = background(a, "nc", "-u", "-l", "9000", stdin=subprocess.PIPE)
    wait_bound(a, 9000)
    sender = background(b, "nc", "-u", "10.0.0.1", "9000", stdin=subprocess.PIPE)
    sender.stdin.write(b"question\n")
    sender.stdin.flush()
    assert read_until(listener.stdout, b"question\n") == b"question\n"
    listener.stdin.write(b"answer\n")
    listener.stdin.flush()
    assert read_until(sender.stdout, b"answer\n") == b"answer\n"


def test_a_closed_port_makes_the_sender_report_connection_refused(pair):
    a, b = pair
    done = b.run("nc", "-u", "10.0.0.1", "9001", input="anyone?\n")
    one_line_error(done, "nc", "10.0.0.1 port 9001: Connection refused")
    assert udp_count(a, "datagrams for a closed port (dropped)") == 1


def test_source_address_and_port_and_verbose_reports(pair, background):
    a, b = pair
    listener = background(a, "nc", "-v", "-u", "-l", "-p", "9000")
    wait_bound(a, 9000)
    sender = background(b, "nc", "-v", "-u", "-s", "10.0.0.2", "-p", "5555", "10.0.0.1", "9000",
                        stdin=subprocess.PIPE)
    sender.stdin.write(b"x\n")
    sender.stdin.flush()
    assert read_until(listener.stdout, b"x\n") == b"x\n"
    assert read_until(listener.stderr, b"5555\n") == b"Bound on 0.0.0.0 9000\nConnection received on 10.0.0.2 5555\n"
    assert read_until(sender.stderr, b"!\n") == b"Connection to 10.0.0.1 9000 port [udp/*] succeeded!\n"
    assert "10.0.0.2.5555" in b.run("netstat", "-an").stdout


def test_w_ends_both_ends_after_idle_seconds(pair, background):
    a, b = pair
    listener = background(a, "nc", "-u", "-l", "-w", "1", "-p", "9000")
    wait_bound(a, 9000)
    done = b.run("nc", "-u", "-w", "1", "10.0.0.1", "9000", input="bye\n", timeout=20)
    assert done.returncode == 0 and done.stdout == ""
    assert listener.wait(timeout=20) == 0
    assert listener.stdout.read() == b"bye\n"


def test_each_read_of_stdin_is_one_datagram_that_fits_the_link(pair):
    """A 3000-byte write is read as 1472 + 1472 + 56 bytes: three datagrams, no fragments."""
    a, b = pair
    assert a.run("echo", "-u").returncode == 0
    data = "".join(chr(ord("a") + i % 26) for i in range(2999)) + "\n"
    done = b.run("nc", "-u", "-w", "1", "10.0.0.1", "7", input=data, timeout=20)
    assert done.returncode == 0 and done.stdout == data
    assert udp_count(a, "datagrams delivered") == 3


# -- echo ---------------------------------------------------------------------------------

def test_echo_service_runs_in_the_node_until_stopped(pair):
    a, b = pair
    started = a.run("echo", "-u")
    assert (started.returncode, started.stdout, started.stderr) == (0, "", "")
    assert "*.7 " in a.run("netstat", "-an").stdout
    done = b.run("nc", "-u", "-w", "1", "10.0.0.1", "7", input="ping me\n", timeout=20)
    assert (done.returncode, done.stdout) == (0, "ping me\n")
    one_line_error(a.run("echo", "-u"), "echo", "UDP port 7: Address already in use")
    stopped = a.run("echo", "-u", "-d")
    assert (stopped.returncode, stopped.stdout, stopped.stderr) == (0, "", "")
    assert "*.7 " not in a.run("netstat", "-an").stdout
    one_line_error(b.run("nc", "-u", "10.0.0.1", "7", input="hello?\n"), "nc", "Connection refused")
    one_line_error(a.run("echo", "-u", "-d"), "echo", "no echo service on UDP port 7")


def test_echo_on_another_port(pair):
    a, b = pair
    assert a.run("echo", "-u", "7007").returncode == 0
    done = b.run("nc", "-u", "-w", "1", "10.0.0.1", "7007", input="seven\n", timeout=20)
    assert done.stdout == "seven\n"
    assert a.run("echo", "-u", "-d", "7007").returncode == 0


def test_echo_does_not_answer_another_echo_port(pair):
    """Two echo services would bounce one datagram for ever; datagrams from port 7 get no answer."""
    a, b = pair
    assert a.run("echo", "-u").returncode == 0
    done = b.run("nc", "-u", "-w", "1", "-p", "7", "10.0.0.1", "7", input="loop?\n", timeout=20)
    assert (done.returncode, done.stdout) == (0, "")
    assert udp_count(a, "datagrams delivered") == 1


async def test_round_trips_against_the_echo_service(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        service = await echo.start(a, 7007)
        done, seconds = await echo.round_trips(b, "10.0.0.1", 7007, seconds=0.3)
        assert done > 0 and seconds >= 0.3
        assert a.stats.udp["delivered"] >= done  # each round trip was answered by the service
        service.close()
        with pytest.raises(OSError) as refused:
            await echo.round_trips(b, "10.0.0.1", 7007, seconds=0.3)
        assert refused.value.errno == errno.ECONNREFUSED


# -- bad command lines --------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["nc", "-u", "-N", "10.0.0.1", "9000"], "-N is for TCP: leave out -u"),
    (["nc", "-u", "10.0.0.1"], "give HOST and PORT"),
    (["nc", "-u", "-l"], "-l takes -p PORT"),
    (["nc", "-u", "-l", "-p", "9000", "9001"], "disagree"),
    (["nc", "-u", "host.example", "9000"], "not an IPv4 address"),
    (["nc", "-u", "10.0.0.1", "0"], "not a port"),
    (["nc", "-u", "-w", "soon", "10.0.0.1", "9000"], "invalid"),
    (["nc", "-u", "-k", "10.0.0.1", "9000"], "unrecognized"),
    (["nc", "-u", "-s", "10.0.0.9", "10.0.0.1", "9000"], "bind failed: Cannot assign requested address"),
    (["echo", "7"], "the echo service is UDP only: use -u"),
    (["echo", "-u", "70000"], "invalid"),
], ids=["udp-shutdown", "no-port", "listen-no-port", "two-ports", "name", "port-zero", "bad-wait", "unknown-flag",
        "foreign-source", "echo-tcp", "echo-port"])
def test_bad_command_lines_fail_in_one_line_and_change_nothing(pair, args, message):
    a, _ = pair
    one_line_error(a.run(*args), args[0], message)
    assert a.run("netstat", "-an").stdout.count("\n") == 2  # the two heading lines: no socket left
