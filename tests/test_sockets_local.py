"""Sockets for programs: trio programs that run nodes themselves, and the examples of docs/udp.md, run as written."""

import errno
import ipaddress
import os
import random
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings, strategies as st
import pytest
import trio

from rumpnet import SHUT_WR, SOCK_DGRAM, SOCK_RAW, SOCK_STREAM, open_node
from rumpnet.kern.sockets import MAX_SOCKETS, pack_address
from rumpnet.testing import open_pair, ping_once

DOC = Path(__file__).parent.parent / "docs" / "udp.md"


def doc_examples():
    """The Python programs of docs/udp.md, in order: the local one, then the remote one."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def run_example(source, tmp_path, *args, env=None):
    script = tmp_path / "example.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_the_local_example_delivers_1000_datagrams_intact_and_in_order(tmp_path):
    local, _ = doc_examples()
    done = run_example(local, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["1000 datagrams, 737287 bytes: all intact and in order",
                                        "node a: 1000 delivered, 0 dropped (queue full)"]


def test_the_remote_example_asks_the_echo_service(pair, tmp_path):
    a, b = pair
    assert a.run("echo", "-u").returncode == 0
    _, remote = doc_examples()
    done = run_example(remote, tmp_path, "are", "you", "there", env={"RUMP_SERVER": b.url})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "10.0.0.1 port 7 answered 'are you there'\n"


async def test_1000_datagrams_unpaced_into_a_raised_receive_buffer(tmp_path):
    """The other way to lose nothing: a queue big enough for all of it, read only at the end."""
    rng = random.Random(2)
    sizes = [rng.randint(0, 1472) for _ in range(1000)]
    datagrams = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        receiver = a.socket(SOCK_DGRAM)
        receiver.setsockopt("SO_RCVBUF", sum(sizes) + 16 * len(sizes))
        await receiver.bind(("0.0.0.0", 9000))
        assert await ping_once(b, "10.0.0.1")  # ARP resolved first: it holds only 16 packets meanwhile
        with b.socket(SOCK_DGRAM) as sender:
            await sender.connect(("10.0.0.1", 9000))
            for data in datagrams:
                await sender.send(data)
        with trio.fail_after(30):
            while a.stats.udp["input"] < len(datagrams):
                await trio.sleep(0.01)
        assert a.stats.udp["full_socket"] == 0
        assert [await receiver.recv() for _ in datagrams] == datagrams


async def test_the_default_queue_overflows_without_pacing(tmp_path):
    """The same burst into the default 41,600 bytes, unread: the excess is dropped and counted, not lost silently."""
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        receiver = a.socket(SOCK_DGRAM)
        await receiver.bind(("0.0.0.0", 9000))
        assert await ping_once(b, "10.0.0.1")
        with b.socket(SOCK_DGRAM) as sender:
            await sender.connect(("10.0.0.1", 9000))
            for _ in range(100):
                await sender.send(bytes(1000))
        with trio.fail_after(30):
            while a.stats.udp["input"] < 100:
                await trio.sleep(0.01)
        fit = 41600 // (1000 + 16)
        assert (a.stats.udp["delivered"], a.stats.udp["full_socket"]) == (fit, 100 - fit)
        assert receiver.describe()["recv_q"] == fit * 1016


async def test_sockets_close_with_their_with_block(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, _):
        with a.socket(SOCK_DGRAM) as sock:
            await sock.bind(("0.0.0.0", 9000))
            assert a.udp.sockets() == [sock]
        assert sock.closed and a.udp.sockets() == []


async def test_a_node_holds_a_bounded_number_of_sockets():
    """Of every protocol together: ENFILE beyond the bound, and a closed socket makes room again."""
    async with open_node() as node:
        held = [node.socket(SOCK_RAW, 1) for _ in range(MAX_SOCKETS - 1)] + [node.socket(SOCK_DGRAM)]
        for kind, proto in [(SOCK_DGRAM, 0), (SOCK_RAW, 1)]:
            with pytest.raises(OSError) as caught:
                node.socket(kind, proto)
            assert caught.value.errno == errno.ENFILE
        held.pop().close()
        node.socket(SOCK_DGRAM).close()


_OCTETS = st.one_of(st.integers(0, 300).map(str), st.text("0123456789x. +-", max_size=4))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(max_size=20), st.lists(_OCTETS, min_size=1, max_size=6).map(".".join)))
def test_an_address_is_taken_only_as_a_strict_dotted_quad(text):
    """What ipaddress takes: not inet_aton's "10.1", "0x0a.0.0.1", "010.0.0.1" or trailing junk.
    Asked twice: the second answer comes from the cache of converted addresses."""
    try:
        expected = ipaddress.IPv4Address(text).packed
    except ValueError:
        expected = None
    for _ in range(2):
        if expected is None:
            with pytest.raises(OSError) as refused:
                pack_address(text)
            assert refused.value.errno == errno.EINVAL
        else:
            assert pack_address(text) == expected


@given(st.one_of(st.binary(min_size=4, max_size=4), st.lists(st.text(max_size=3), max_size=2), st.integers()))
def test_what_is_not_text_is_no_address(value):
    """EINVAL, as for bad text: not a TypeError from the cache, which a list (unhashable) would raise."""
    with pytest.raises(OSError) as refused:
        pack_address(value)
    assert refused.value.errno == errno.EINVAL


async def test_a_call_cancelled_before_it_starts_does_nothing(tmp_path):
    """trio's rule for its own sockets: a call that raises Cancelled had no effect. The calls that
    need not wait take the cancellation before they act, not after."""
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        receiver = a.socket(SOCK_DGRAM)
        await receiver.bind(("0.0.0.0", 9000))
        assert await ping_once(b, "10.0.0.1")
        sender = b.socket(SOCK_DGRAM)
        listener = b.socket(SOCK_STREAM)
        calls = {"bind": sender.bind(("0.0.0.0", 5000)),
                 "connect": sender.connect(("10.0.0.1", 9000)),
                 "sendto": sender.sendto(b"not sent", ("10.0.0.1", 9000)),
                 "sendmmsg": sender.sendmmsg([b"not", b"sent"], ("10.0.0.1", 9000)),
                 "shutdown": sender.shutdown(SHUT_WR),
                 "listen": listener.listen()}
        for name, call in calls.items():
            with trio.CancelScope() as scope:
                scope.cancel()
                await call
            assert scope.cancelled_caught, name
        assert sender.getsockname() == ("0.0.0.0", 0)
        with pytest.raises(OSError) as refused:
            sender.getpeername()
        assert refused.value.errno == errno.ENOTCONN
        assert not sender.cant_send and not listener.listening
        assert b.stats.udp["output"] == 0
        await sender.sendto(b"sent", ("10.0.0.1", 9000))  # the socket is as it was: this one goes
        with trio.fail_after(5):
            assert await receiver.recvfrom() == (b"sent", ("10.0.0.2", sender.getsockname()[1]))
        sender.close()
        listener.close()
