"""`rumpnet nc` over TCP between two unprivileged node processes, as a user types it."""

import hashlib
import os
import time

import pytest

SIZE = 10 * 1024 * 1024


def wait_listening(node, port, timeout=10.0):
    """Wait until the node lists a TCP socket listening on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(f".{port} " in line and "LISTEN" in line for line in node.run("netstat", "-an").stdout.splitlines()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on TCP port {port}")


def digest(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@pytest.fixture
def payload(workdir):
    path = workdir / "payload"
    path.write_bytes(os.urandom(SIZE))
    return path


def transfer(background, sender, receiver, receiver_is_listener, payload, out, port):
    """One file from sender to receiver through `nc -l -p PORT` and `nc -N 10.0.0.1 PORT`; both exit 0."""
    with open(payload, "rb") as source, open(out, "wb") as sink:
        listen_args = ("nc", "-l", "-p", str(port))
        connect_args = ("nc", "-N", "10.0.0.1", str(port))
        if receiver_is_listener:
            listener = background(receiver, *listen_args, stdout=sink)
            wait_listening(receiver, port)
            client = background(sender, *connect_args, stdin=source)
        else:
            listener = background(sender, *listen_args, stdin=source)
            wait_listening(sender, port)
            client = background(receiver, *connect_args, stdout=sink)
        for proc in (client, listener):
            proc.wait(timeout=90)
            assert proc.returncode == 0, proc.stderr.read().decode()


def test_ten_mebibytes_from_client_to_listener(pair, background, payload, workdir):
    a, b = pair
    out = workdir / "received"
    transfer(background, b, a, True, payload, out, 7000)
    assert digest(out) == digest(payload)


def test_ten_mebibytes_from_listener_to_client(pair, background, payload, workdir):
    a, b = pair
    out = workdir / "received"
    transfer(background, a, b, False, payload, out, 7001)
    assert digest(out) == digest(payload)


def tcp_count(node, text):
    """A number from `netstat -s -p tcp`, found by its description."""
    for line in node.run("netstat", "-s", "-p", "tcp").stdout.splitlines():
        count, _, description = line.strip().partition(" ")
        if description == text:
            return int(count)
    raise LookupError(text)


@pytest.mark.parametrize("loss, size", [("1%", 1 << 19), ("5%", 1 << 18), ("20%", 1 << 15)])
def test_a_lossy_link_is_repaired_and_netstat_counts_it(pair, background, workdir, loss, size):
    a, b = pair
    for node in (a, b):
        node.ifconfig("shmif0", "impair", "loss", loss, "reorder", "2%", "seed", "7")
    payload, out = workdir / "payload", workdir / "received"
    payload.write_bytes(os.urandom(size))
    transfer(background, b, a, True, payload, out, 7002)
    assert digest(out) == digest(payload)
    assert tcp_count(b, "data packets retransmitted") > 0
    assert tcp_count(a, "connections established") == 1


def test_z_finds_the_port_that_listens_and_refused_ports_fail(pair, background):
    a, b = pair
    background(a, "nc", "-l", "-p", "7005")
    wait_listening(a, 7005)
    found = b.run("nc", "-z", "-v", "10.0.0.1", "7004-7006")
    assert found.returncode == 0, found.stderr
    assert found.stderr.splitlines() == [
        "nc: connect to 10.0.0.1 port 7004 (tcp) failed: Connection refused",
        "Connection to 10.0.0.1 7005 port [tcp/*] succeeded!",
        "nc: connect to 10.0.0.1 port 7006 (tcp) failed: Connection refused"]
    refused = b.run("nc", "10.0.0.1", "7007")
    assert refused.returncode == 1
    assert refused.stderr == "rumpnet nc: connect to 10.0.0.1 port 7007 (tcp) failed: Connection refused\n"
