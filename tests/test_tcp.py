"""TCP between two nodes in one trio program: handshake, transfer, close, loss, flow control, abuse."""

import errno
import os
import socket

import dpkt
import pytest
import trio

from rumpnet import SHUT_WR, SOCK_STREAM, Impairment, SocketStream
from rumpnet.netinet.tcp_var import STATE_NAMES
from rumpnet.testing import frames_on, open_pair


def state(sock):
    return STATE_NAMES[sock.pcb.state]


async def listener(node, port=7000, backlog=8):
    sock = node.socket(SOCK_STREAM)
    await sock.bind(("", port))
    await sock.listen(backlog)
    return sock


async def receive_all(sock):
    got = bytearray()
    while data := await sock.recv(65536):
        got += data
    return bytes(got)


async def transfer(a, b, data, port=7000):
    """data from b to a over a new connection; what a received."""
    server = await listener(a, port)
    result = []

    async def serve():
        conn, _ = await server.accept()
        result.append(await receive_all(conn))
        conn.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", port))
        await client.send(data)
        await client.shutdown(SHUT_WR)
        assert await client.recv() == b""
        client.close()
    server.close()
    return result[0]


async def eventually(check, timeout=10):
    with trio.fail_after(timeout):
        while not check():
            await trio.sleep(0.02)


async def test_handshake_transfer_and_close_through_every_state(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        for node in (a, b):
            node.sysctl.set("net.inet.tcp.msl", 1)
        server = await listener(a)
        assert state(server) == "LISTEN"
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", 7000))
        conn, peer = await server.accept()
        assert peer == client.getsockname() and conn.getpeername() == client.getsockname()
        assert state(client) == state(conn) == "ESTABLISHED"
        await client.send(b"hello")
        assert await conn.recv() == b"hello"
        await conn.send(b"world")
        assert await client.recv() == b"world"
        await client.shutdown(SHUT_WR)
        assert await conn.recv() == b""  # end of file
        assert state(conn) == "CLOSE_WAIT"
        await eventually(lambda: state(client) == "FIN_WAIT_2")
        conn.close()
        assert await client.recv() == b""
        await eventually(lambda: state(client) == "TIME_WAIT")
        await eventually(lambda: state(conn) == "CLOSED")
        lines = [s.describe() for s in b.sockets()]
        assert [line["state"] for line in lines] == ["TIME_WAIT"]
        await eventually(lambda: not b.sockets(), timeout=5)  # 2 MSL = 2 s
        client.close()


async def test_the_handshake_is_three_segments_and_accepting_sends_no_window_update(tmp_path):
    """On the bus: SYN, SYN-ACK, ACK, then the data, as between BSD or Linux hosts. The listener records the
    window it offers scaled (not the SYN-ACK's 16-bit field), so accepting and reading find nothing to update."""
    bus = tmp_path / "bus"
    async with open_pair(str(bus)) as (a, b):
        server = await listener(a)
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", 7000))
        conn, _ = await server.accept()
        await trio.sleep(0.2)  # room for whatever the accept would send
        await client.send(b"hello")
        assert await conn.recv() == b"hello"
        frames = [dpkt.ethernet.Ethernet(frame) for frame in frames_on(bus)]
    segments = [(socket.inet_ntoa(f.data.src), f.data.data.flags, len(f.data.data.data))
                for f in frames if isinstance(getattr(f.data, "data", None), dpkt.tcp.TCP)]
    syn, ack, push = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH
    assert segments[:4] == [("10.0.0.2", syn, 0), ("10.0.0.1", syn | ack, 0), ("10.0.0.2", ack, 0),
                            ("10.0.0.2", push | ack, 5)]


async def test_a_closed_port_refuses_with_a_reset(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        client = b.socket(SOCK_STREAM)
        with pytest.raises(OSError) as failed:
            await client.connect(("10.0.0.1", 7001))
        assert failed.value.errno == errno.ECONNREFUSED
        assert a.stats.tcp["no_port"] == 1 and a.stats.tcp["rst_sent"] == 1
        assert b.stats.tcp["conn_refused"] == 1


async def test_simultaneous_open_and_close(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        one, two = a.socket(SOCK_STREAM), b.socket(SOCK_STREAM)
        await one.bind(("", 5001))
        await two.bind(("", 5002))
        async with trio.open_nursery() as nursery:  # both SYNs leave before either node reads the bus
            nursery.start_soon(one.connect, ("10.0.0.2", 5002))
            nursery.start_soon(two.connect, ("10.0.0.1", 5001))
        assert state(one) == state(two) == "ESTABLISHED"
        assert a.stats.tcp["syncache_added"] == b.stats.tcp["syncache_added"] == 0
        await one.send(b"ab")
        assert await two.recv() == b"ab"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one.shutdown, SHUT_WR)
            nursery.start_soon(two.shutdown, SHUT_WR)
        await eventually(lambda: state(one) == state(two) == "TIME_WAIT")


async def test_a_megabyte_arrives_intact(tmp_path):
    data = os.urandom(1 << 20)
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        assert await transfer(a, b, data) == data
        assert b.stats.tcp["retransmitted"] == 0


@pytest.mark.parametrize("impairment, size", [
    (Impairment(loss=0.01, seed=1), 1 << 20),
    (Impairment(loss=0.05, seed=2), 1 << 19),
    (Impairment(loss=0.20, seed=3), 1 << 16),
    (Impairment(reorder=0.2, seed=4), 1 << 20),
], ids=["loss 1%", "loss 5%", "loss 20%", "reorder 20%"])
async def test_loss_and_reordering_are_repaired(tmp_path, impairment, size):
    data = os.urandom(size)
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        for node in (a, b):
            node.set_impairment("shmif0", impairment)
        assert await transfer(a, b, data) == data
        repaired = b.stats.tcp["retransmitted"] + b.stats.tcp["rexmt_timeouts"]
        if impairment.loss:
            assert repaired > 0
        if impairment.reorder:
            assert a.stats.tcp["out_of_order"] > 0


async def test_a_peer_that_never_reads_closes_the_window(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = a.socket(SOCK_STREAM)
        server.setsockopt("SO_RCVBUF", 16384)  # before listen: the window a connection offers is never cut
        await server.bind(("", 7000))
        await server.listen()
        client = b.socket(SOCK_STREAM)
        client.setsockopt("SO_SNDBUF", 16384)
        await client.connect(("10.0.0.1", 7000))
        conn, _ = await server.accept()
        data = os.urandom(200_000)
        sent = 0
        with trio.move_on_after(3):
            while sent < len(data):
                await client.wait_writable()
                sent += client.send_nowait(data[sent:])
        assert sent < len(data)  # the sender is held back, its memory bounded by its buffer
        assert client.snd.cc <= 16384 and conn.rcv.cc <= conn.rcv.hiwat
        assert client.pcb.snd_wnd == 0
        await eventually(lambda: b.stats.tcp["persist_timeouts"] > 0)
        got = bytearray()

        async def read_all():
            while len(got) < len(data):
                got.extend(await conn.recv())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await client.send(data[sent:])
        assert bytes(got) == data


async def test_trio_code_runs_on_a_socket_stream(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await listener(a)

        async def echo_lines():
            conn, _ = await server.accept()
            stream = SocketStream(conn)
            async with stream:
                buffered = b""
                while data := await stream.receive_some():
                    buffered += data
                    while b"\n" in buffered:
                        line, buffered = buffered.split(b"\n", 1)
                        await stream.send_all(line.upper() + b"\n")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo_lines)
            client = b.socket(SOCK_STREAM)
            await client.connect(("10.0.0.1", 7000))
            stream = SocketStream(client)
            await stream.send_all(b"one\ntwo\n")
            await stream.send_eof()
            got = b""
            while data := await stream.receive_some():
                got += data
            assert got == b"ONE\nTWO\n"
            await stream.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"more")


async def test_a_full_listen_queue_resets_and_counts(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await listener(a, backlog=1)
        errors = []
        for _ in range(3):
            client = b.socket(SOCK_STREAM)
            try:  # the handshake completes here; the reset of an overflow may come before connect returns
                await client.connect(("10.0.0.1", 7000))
                await client.recv(timeout=1)
            except OSError as e:
                errors.append(e.errno)
        assert a.stats.tcp["listen_overflow"] == 2
        assert errors == [errno.EAGAIN, errno.ECONNRESET, errno.ECONNRESET]  # the first waits to be accepted
        assert len(server.completed) == 1


async def test_nagle_holds_a_small_segment_until_tcp_nodelay(tmp_path):
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await listener(a)
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", 7000))
        conn, _ = await server.accept()
        client.send_nowait(b"a")
        client.send_nowait(b"b")  # no checkpoint between: "a" is not acknowledged yet
        assert b.stats.tcp["data_sent"] == 1
        client.setsockopt("TCP_NODELAY", True)  # what waits goes at once, and so does the next
        assert b.stats.tcp["data_sent"] == 2
        client.send_nowait(b"c")
        assert b.stats.tcp["data_sent"] == 3
        got = b""
        while len(got) < 3:
            got += await conn.recv()
        assert got == b"abc"


async def test_no_window_update_once_the_peer_has_sent_its_fin(tmp_path):
    """The data and the FIN are in, unread; reading them opens the window, but no more data can come: a stays
    quiet (a window update in CLOSE_WAIT is answered by Linux with a reset once it has closed)."""
    async with open_pair(str(tmp_path / "bus")) as (a, b):
        server = await listener(a)
        client = b.socket(SOCK_STREAM)
        await client.connect(("10.0.0.1", 7000))
        conn, _ = await server.accept()
        data = os.urandom(64 * 1024)
        await client.send(data)
        await client.shutdown(SHUT_WR)
        await eventually(lambda: state(conn) == "CLOSE_WAIT" and conn.rcv.cc == len(data))
        await trio.sleep(0.3)  # the delayed ACK of the FIN has long gone
        sent = a.stats.tcp["output"]
        assert await receive_all(conn) == data
        await trio.sleep(0.3)
        assert a.stats.tcp["output"] == sent
