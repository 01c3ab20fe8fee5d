"""UDP in the stack: checksums, ports, errors, queues and broadcast, on two nodes in one trio program;
then the same socket calls made by remote clients through the control socket of node processes.
"""

import errno
import os

import dpkt
import pytest
import trio

import rumpnet
from rumpnet import SHUT_RD, SOCK_DGRAM, SOCK_STREAM
from rumpnet.netinet.checksum import in_cksum, pseudo_header_sum
from rumpnet.testing import frames_on, open_pair
from rumpnet.netinet.inpcb import EPHEMERAL_FIRST, EPHEMERAL_LAST


@pytest.fixture
async def two(tmp_path):
    """Nodes a (10.0.0.1) and b (10.0.0.2) on one bus, and the bus path."""
    bus = str(tmp_path / "bus")
    async with open_pair(bus) as (a, b):
        yield a, b, bus


def udp_frames(bus):
    """(IP, UDP) of every UDP frame on the bus, read with dpkt."""
    found = []
    for raw in frames_on(bus):
        frame = dpkt.ethernet.Ethernet(raw)
        if isinstance(frame.data, dpkt.ip.IP) and isinstance(frame.data.data, dpkt.udp.UDP):
            found.append((frame.data, frame.data.data))
    return found


async def server_and_client(a, b, port=9000):
    """A socket of node a bound to port, and a socket of node b connected to it."""
    server = a.socket(SOCK_DGRAM)
    await server.bind(("0.0.0.0", port))
    client = b.socket(SOCK_DGRAM)
    await client.connect(("10.0.0.1", port))
    return server, client


async def test_datagram_arrives_with_its_source_and_a_valid_checksum(two):
    a, b, bus = two
    server = a.socket(SOCK_DGRAM)
    await server.bind(("0.0.0.0", 9000))
    client = b.socket(SOCK_DGRAM)
    await client.bind(("10.0.0.2", 4000))
    assert await client.sendto(b"hello", ("10.0.0.1", 9000)) == 5
    with trio.fail_after(5):
        data, source = await server.recvfrom()
    assert (data, source) == (b"hello", ("10.0.0.2", 4000))
    (ip, udp), = udp_frames(bus)
    assert (udp.sport, udp.dport, udp.ulen, udp.data) == (4000, 9000, 13, b"hello")
    assert udp.sum != 0
    assert in_cksum(bytes(udp), pseudo_header_sum(ip.src, ip.dst, 17, udp.ulen)) == 0
    assert a.stats.udp["delivered"] == 1 and b.stats.udp["output"] == 1


async def test_unbound_senders_get_distinct_ephemeral_ports(two):
    a, b, _ = two
    server = a.socket(SOCK_DGRAM)
    await server.bind(("0.0.0.0", 9000))
    ports = set()
    for _ in range(3):
        sock = b.socket(SOCK_DGRAM)
        await sock.sendto(b"x", ("10.0.0.1", 9000))
        with trio.fail_after(5):
            _, (_, port) = await server.recvfrom()
        assert sock.getsockname()[1] == port
        ports.add(port)
    assert len(ports) == 3 and all(EPHEMERAL_FIRST <= p <= EPHEMERAL_LAST for p in ports)


async def test_connect_fixes_the_local_address_and_the_peer(two):
    _, b, _ = two
    sock = b.socket(SOCK_DGRAM)
    await sock.connect(("10.0.0.1", 9000))
    assert sock.getsockname()[0] == "10.0.0.2"
    assert sock.getpeername() == ("10.0.0.1", 9000)
    with pytest.raises(OSError) as caught:
        await sock.sendto(b"x", ("10.0.0.1", 9001))
    assert caught.value.errno == errno.EISCONN


async def test_closed_port_answers_port_unreachable_and_the_connected_sender_gets_econnrefused(two):
    a, b, _ = two
    sock = b.socket(SOCK_DGRAM)
    await sock.connect(("10.0.0.1", 9999))
    await sock.send(b"anyone?")
    with trio.fail_after(5), pytest.raises(OSError) as caught:
        await sock.recv()
    assert caught.value.errno == errno.ECONNREFUSED
    assert a.stats.udp["no_port"] == 1 and a.stats.icmp["errors_sent"] == 1
    assert b.stats.icmp["unreach_received"] == 1
    await sock.send(b"the error was taken")  # reported once, as BSD's so_error


async def test_an_unconnected_sender_is_not_told(two):
    """BSD reports ICMP errors to connected sockets only: an unconnected one cannot tell whose they are."""
    a, b, _ = two
    sock = b.socket(SOCK_DGRAM)
    await sock.sendto(b"anyone?", ("10.0.0.1", 9999))
    with trio.fail_after(5):
        while not b.stats.icmp["unreach_received"]:
            await trio.sleep(0.01)
    await sock.sendto(b"again", ("10.0.0.1", 9999))
    with pytest.raises(OSError) as caught:
        await sock.recvfrom(timeout=0.1)
    assert caught.value.errno == errno.EAGAIN


async def test_a_connected_socket_hears_only_its_peer(two):
    a, b, _ = two
    listener = a.socket(SOCK_DGRAM)
    await listener.bind(("0.0.0.0", 9000))
    await listener.connect(("10.0.0.2", 5000))
    stranger = b.socket(SOCK_DGRAM)
    await stranger.bind(("0.0.0.0", 5001))
    await stranger.sendto(b"not you", ("10.0.0.1", 9000))
    friend = b.socket(SOCK_DGRAM)
    await friend.bind(("0.0.0.0", 5000))
    await friend.sendto(b"you", ("10.0.0.1", 9000))
    with trio.fail_after(5):
        assert await listener.recvfrom() == (b"you", ("10.0.0.2", 5000))
    assert a.stats.udp["no_port"] == 1


@pytest.mark.parametrize("first, second, reuse, clash", [
    ("0.0.0.0", "0.0.0.0", False, True),
    ("10.0.0.1", "0.0.0.0", False, True),
    ("0.0.0.0", "10.0.0.1", False, True),
    ("10.0.0.1", "10.0.0.1", False, True),
    ("0.0.0.0", "0.0.0.0", True, False),
], ids=["any-any", "addr-any", "any-addr", "addr-addr", "reuseaddr"])
async def test_binding_a_port_in_use(two, first, second, reuse, clash):
    a, _, _ = two
    one, other = a.socket(SOCK_DGRAM), a.socket(SOCK_DGRAM)
    for sock in (one, other):
        sock.setsockopt("SO_REUSEADDR", reuse)
    await one.bind((first, 7000))
    if clash:
        with pytest.raises(OSError) as caught:
            await other.bind((second, 7000))
        assert caught.value.errno == errno.EADDRINUSE
        assert other.getsockname() == ("0.0.0.0", 0)
        one.close()
    await other.bind((second, 7000))
    assert other.getsockname()[1] == 7000


@pytest.mark.parametrize("address, code", [
    (("10.0.0.9", 7000), errno.EADDRNOTAVAIL),
    (("10.0.0", 7000), errno.EINVAL),
    (("0.0.0.0", 70000), errno.EINVAL),
    (("0.0.0.0", "7000"), errno.EINVAL),
    (("0.0.0.0",), errno.EINVAL),
], ids=["not-ours", "bad-address", "port-too-big", "port-text", "no-port"])
async def test_bad_bind(two, address, code):
    a, _, _ = two
    with pytest.raises(OSError) as caught:
        await a.socket(SOCK_DGRAM).bind(address)
    assert caught.value.errno == code


@pytest.mark.parametrize("size, code", [(1472, None), (1473, errno.EMSGSIZE), (65508, errno.EMSGSIZE)],
                         ids=["fills-the-mtu", "one-byte-more", "beyond-ipv4"])
async def test_datagrams_larger_than_the_link_fail_with_emsgsize(two, size, code):
    a, b, bus = two
    server, sock = await server_and_client(a, b)
    if code is None:
        await sock.send(bytes(size))
        with trio.fail_after(5):
            assert len(await server.recv()) == size
        return
    with pytest.raises(OSError) as caught:
        await sock.send(bytes(size))
    assert caught.value.errno == code
    assert b.stats.udp["output"] == 0 and udp_frames(bus) == []


async def test_a_full_receive_queue_drops_and_counts(two):
    """The bound is net.inet.udp.recvspace bytes, each datagram costing its length and its address (16)."""
    a, b, _ = two
    server, sock = await server_and_client(a, b)
    server.setsockopt("SO_RCVBUF", 1000)
    for i in range(10):
        await sock.send(bytes([i]) * 184)  # 200 bytes each in the queue: five fit
    with trio.fail_after(5):
        while a.stats.udp["input"] < 10:
            await trio.sleep(0.01)
    assert a.stats.udp["delivered"] == 5 and a.stats.udp["full_socket"] == 5
    assert server.describe()["recv_q"] == 1000
    assert [(await server.recv())[0] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_the_default_queue_is_recvspace(two):
    a, _, _ = two
    a.sysctl.set("net.inet.udp.recvspace", "2048")
    assert a.socket(SOCK_DGRAM).rcv.hiwat == 2048


async def test_zero_length_datagrams_fill_the_queue_too(two):
    a, b, _ = two
    server, sock = await server_and_client(a, b)
    server.setsockopt("SO_RCVBUF", 16 * 3)
    for _ in range(5):
        await sock.send(b"")
    with trio.fail_after(5):
        while a.stats.udp["input"] < 5:
            await trio.sleep(0.01)
    assert a.stats.udp["delivered"] == 3 and a.stats.udp["full_socket"] == 2
    assert await server.recv() == b""


async def test_broadcast_needs_so_broadcast_and_reaches_wildcard_sockets_only(two):
    a, b, _ = two
    wildcards, specific = [a.socket(SOCK_DGRAM), a.socket(SOCK_DGRAM)], a.socket(SOCK_DGRAM)
    for sock, address in [(wildcards[0], "0.0.0.0"), (wildcards[1], "0.0.0.0"), (specific, "10.0.0.1")]:
        sock.setsockopt("SO_REUSEADDR", 1)
        await sock.bind((address, 9000))
    sender = b.socket(SOCK_DGRAM)
    with pytest.raises(OSError) as caught:
        await sender.sendto(b"all", ("10.0.0.255", 9000))
    assert caught.value.errno == errno.EACCES
    sender.setsockopt("SO_BROADCAST", 1)
    await sender.sendto(b"all", ("10.0.0.255", 9000))
    await sender.sendto(b"everyone", ("255.255.255.255", 9000))
    await sender.sendto(b"closed", ("10.0.0.255", 9001))
    with trio.fail_after(5):
        for sock in wildcards:
            assert [(await sock.recvfrom())[0] for _ in range(2)] == [b"all", b"everyone"]
    with pytest.raises(OSError):
        await specific.recvfrom(timeout=0.1)
    assert a.stats.udp["no_port_broadcast"] == 1 and a.stats.icmp["errors_sent"] == 0


async def test_a_broadcast_reaches_the_senders_own_sockets_too(two):
    """shmif cannot hear itself (IFF_SIMPLEX), so the stack loops a copy of each
    broadcast back in, as BSD's if_simloop and Linux do: once, not from the bus."""
    a, b, bus = two
    theirs, mine = a.socket(SOCK_DGRAM), b.socket(SOCK_DGRAM)
    await theirs.bind(("0.0.0.0", 9000))
    await mine.bind(("0.0.0.0", 9000))
    mine.setsockopt("SO_BROADCAST", 1)
    await mine.sendto(b"to all", ("10.0.0.255", 9000))
    await mine.sendto(b"to everyone", ("255.255.255.255", 9000))
    for sock in (theirs, mine):
        assert await sock.recvfrom(timeout=5) == (b"to all", ("10.0.0.2", 9000))
        assert (await sock.recvfrom(timeout=5))[0] == b"to everyone"
        with pytest.raises(OSError):
            await sock.recvfrom(timeout=0.1)
    assert [u.data for _, u in udp_frames(bus)] == [b"to all", b"to everyone"]  # the bus carries each once


async def test_recvfrom_works_with_trio_timeouts_and_its_own(two):
    a, _, _ = two
    sock = a.socket(SOCK_DGRAM)
    await sock.bind(("0.0.0.0", 9000))
    with trio.move_on_after(0.05) as scope:
        await sock.recvfrom()
    assert scope.cancelled_caught
    with pytest.raises(OSError) as caught:
        await sock.recvfrom(timeout=0.05)
    assert caught.value.errno == errno.EAGAIN
    sock.setsockopt("SO_RCVTIMEO", 0.05)
    with pytest.raises(OSError) as caught:
        await sock.recvfrom()
    assert caught.value.errno == errno.EAGAIN


async def test_close_wakes_a_waiting_receiver_with_ebadf(two):
    a, _, _ = two
    sock = a.socket(SOCK_DGRAM)
    await sock.bind(("0.0.0.0", 9000))

    async def close_soon():
        await trio.sleep(0.05)
        sock.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(OSError) as caught:
            await sock.recvfrom()
    assert caught.value.errno == errno.EBADF
    assert a.udp.sockets() == []
    await a.socket(SOCK_DGRAM).bind(("0.0.0.0", 9000))  # the port is free again


async def test_sendmmsg_sends_a_burst_in_order(two):
    a, b, _ = two
    server, sock = await server_and_client(a, b)
    await sock.send(b"first")  # resolves the peer's hardware address before the burst
    assert await sock.sendmmsg([bytes([i]) * 10 for i in range(12)]) == 12
    with trio.fail_after(5):
        assert await server.recv() == b"first"
        assert [await server.recv() for _ in range(12)] == [bytes([i]) * 10 for i in range(12)]


async def test_sendmmsg_stops_at_the_first_failure_and_counts(two):
    a, b, _ = two
    # A bound receiver: an unbound port would answer "ok" with port unreachable, and that
    # error, reported on the connected socket, could race the second call's EMSGSIZE.
    server, sock = await server_and_client(a, b)
    assert await sock.sendmmsg([b"ok", bytes(2000), b"not sent"]) == 1
    with pytest.raises(OSError) as caught:
        await sock.sendmmsg([bytes(2000), b"ok"])
    assert caught.value.errno == errno.EMSGSIZE


async def test_recvmmsg_takes_a_queued_burst_in_one_call(two):
    a, b, _ = two
    server, sock = await server_and_client(a, b)
    await sock.send(b"first")  # resolves the peer's hardware address before the burst
    with trio.fail_after(5):
        assert await server.recvmmsg() == [(b"first", ("10.0.0.2", sock.getsockname()[1]))]
        await sock.sendmmsg([bytes([i]) * 10 for i in range(12)])
        await server.wait_readable()
        taken = await server.recvmmsg(vlen=5, bufsize=4)
        assert taken == [(bytes([i]) * 4, ("10.0.0.2", sock.getsockname()[1])) for i in range(5)]
        assert [data for data, _ in await server.recvmmsg()] == [bytes([i]) * 10 for i in range(5, 12)]
    assert server.rcv.cc == 0 and not server.rcv.records


async def test_recvmmsg_raises_a_pending_error_and_gives_nothing_once_shut_down(two):
    a, b, _ = two
    sock = b.socket(SOCK_DGRAM)
    await sock.connect(("10.0.0.1", 9999))  # nothing listens there: port unreachable comes back
    await sock.send(b"anyone?")
    with trio.fail_after(5), pytest.raises(OSError) as caught:
        await sock.recvmmsg()
    assert caught.value.errno == errno.ECONNREFUSED
    await sock.shutdown(SHUT_RD)
    assert await sock.recvmmsg() == []


async def test_recvmmsg_is_for_datagrams(two):
    a, _, _ = two
    with a.socket(SOCK_STREAM) as stream, pytest.raises(OSError) as caught:
        await stream.recvmmsg()
    assert caught.value.errno == errno.EOPNOTSUPP


# -- remote clients: the control socket's system-call proxy ---------------------------------

async def test_remote_sockets_exchange_a_datagram(pair):
    a, b = pair
    async with rumpnet.connect(a.url) as node_a, rumpnet.connect(b.url) as node_b:
        server = await node_a.socket(SOCK_DGRAM)
        await server.bind(("0.0.0.0", 9000))
        client = await node_b.socket(SOCK_DGRAM)
        await client.connect(("10.0.0.1", 9000))
        assert await client.getsockname() == ("10.0.0.2", (await client.getsockname())[1])
        assert await client.send(b"over the proxy") == 14
        with trio.fail_after(10):
            data, source = await server.recvfrom()
        assert data == b"over the proxy" and source == await client.getsockname()
        await server.sendto(b"and back", source)
        with trio.fail_after(10):
            assert await client.recv() == b"and back"
        with trio.move_on_after(0.1) as scope:
            await client.recv()
        assert scope.cancelled_caught
        await client.close()
        await server.close()


async def test_remote_errors_carry_bsd_errnos(pair):
    a, b = pair
    async with rumpnet.connect(a.url) as node_a, rumpnet.connect(b.url) as node_b:
        first, second = await node_a.socket(SOCK_DGRAM), await node_a.socket(SOCK_DGRAM)
        await first.bind(("0.0.0.0", 9000))
        sock = await node_b.socket(SOCK_DGRAM)
        await sock.connect(("10.0.0.1", 9001))
        await sock.send(b"closed port")
        failures = {}
        for name, call in [("bind", second.bind(("0.0.0.0", 9000))),
                           ("recv", sock.recvfrom(timeout=5)),
                           ("size", sock.send(bytes(1473))),
                           ("timeout", first.recvfrom(timeout=0.05))]:
            with pytest.raises(OSError) as caught:
                await call
            failures[name] = caught.value.errno
    assert failures == {"bind": errno.EADDRINUSE, "recv": errno.ECONNREFUSED, "size": errno.EMSGSIZE,
                        "timeout": errno.EAGAIN}


@pytest.mark.parametrize("call, args", [
    ("bind", {"address": ["0.0.0.0", "9000"]}),
    ("bind", {"address": ["0.0.0.0", 9000, 1]}),
    ("bind", {"address": 9000}),
    ("connect", {"address": [None, 9000]}),
    ("sendto", {"address": ["10.0.0.2", -1]}),
    ("recvfrom", {"timeout": -1}),
    ("recvfrom", {"timeout": "soon"}),
    ("setsockopt", {"name": "SO_RCVBUF", "value": 1 << 30}),
    ("echo_start", {"port": "seven"}),
    ("perf_client", {"host": "10.0.0.2", "length": 4}),
    ("perf_client", {"host": "10.0.0.2", "duration": -1}),
    ("perf_report", {}),
], ids=["port-text", "three-parts", "not-a-pair", "no-host", "negative-port", "negative-timeout",
        "text-timeout", "huge-rcvbuf", "echo-port-text", "perf-short-length", "perf-negative-duration",
        "perf-report-not-a-receiver"])
async def test_garbage_arguments_are_refused_and_the_node_lives(pair, call, args):
    a, _ = pair
    async with rumpnet.connect(a.url) as node:
        if call not in ("echo_start", "perf_client"):
            args = {"fd": await node.call("socket", kind=SOCK_DGRAM), **args}
        with pytest.raises(OSError) as caught:
            await node.call(call, **args)
        assert caught.value.errno in (errno.EINVAL, errno.ENOBUFS, errno.EBADF)
        sock = await node.socket(SOCK_DGRAM)
        await sock.bind(("0.0.0.0", 9000))
        assert await node.call("sockets")


async def test_a_clients_sockets_close_when_it_goes(pair):
    a, _ = pair
    async with rumpnet.connect(a.url) as node:
        sock = await node.socket(SOCK_DGRAM)
        await sock.bind(("0.0.0.0", 9000))
    async with rumpnet.connect(a.url) as node:
        with trio.fail_after(5):
            while await node.call("sockets"):
                await trio.sleep(0.01)
        sock = await node.socket(SOCK_DGRAM)
        await sock.bind(("0.0.0.0", 9000))


async def test_a_sender_is_not_woken_by_its_own_writes(two):
    """inotify wakes every watcher of the bus, the writer too: the writer takes its own wake-up back."""
    a, b, _ = two
    sock = a.socket(SOCK_DGRAM)
    sock.setsockopt("SO_BROADCAST", 1)
    woken = a.interfaces["shmif0"].driver.stats
    before = woken["wakeups"]
    for _ in range(20):  # to a port nobody listens at: b drops them and answers nothing
        await sock.sendto(b"x", ("10.0.0.255", 9))
        await trio.sleep(0.01)
    with trio.fail_after(5):
        while b.stats.udp["no_port_broadcast"] < 20:
            await trio.sleep(0.01)
    assert woken["wakeups"] - before <= 2
    assert b.interfaces["shmif0"].driver.stats["wakeups"] >= 10  # the reader is woken (a few writes may share one)


async def test_a_removed_bus_is_noticed_by_the_writer_whose_drain_took_the_event(two):
    """The link count is looked at only when inotify reports IN_ATTRIB; a writer's own drain, just after its
    write, may be the one that takes that event, and must look too."""
    a, b, bus = two
    sock = a.socket(SOCK_DGRAM)
    os.unlink(bus)
    sock.send_nowait(b"x", ("10.0.0.2", 9))  # no checkpoint between: a's receive loop has not run yet
    with trio.fail_after(5):
        while b.interfaces["shmif0"].driver.stats["bus_unlinked"] < 1:
            await trio.sleep(0.01)
    assert a.interfaces["shmif0"].driver.stats["bus_unlinked"] == 1
