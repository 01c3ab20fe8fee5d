"""Stream sockets: a toy byte-stream protocol, written here, registered through the public API and driven
with listen/accept/connect/send/recv/shutdown, the same test body locally and through the control socket.
"""

import errno
import socket

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import rumpnet
from rumpnet import SHUT_WR, SOCK_STREAM
from rumpnet.kern.sockets import SockBuf

LOOP = 253  # RFC 3692: an IP protocol number for experiments
BUFFER = 4096  # each socket's send and receive buffer: small, so that a test fills them
ANY = b"\0\0\0\0"


class Loop(rumpnet.UserRequests):
    """Bytes from one socket of a node to another of the same node: a stream with no wire.

    Its flow control is the socket layer's own: bytes leave a send buffer
    only as the peer's receive buffer has room, so a reader that does not
    read stops the writer.
    """

    name = "loop"
    stream = True

    def attach(self, sock):
        sock.reserve(BUFFER, BUFFER)

    def bind(self, sock, address):
        sock.node.pcb_table(LOOP).bind(sock, socket.inet_aton(address[0]), address[1])

    def listen(self, sock):
        if not sock.local[1]:
            sock.node.pcb_table(LOOP).bind(sock, ANY, 0)

    def connect(self, sock, address):
        table = sock.node.pcb_table(LOOP)
        dst = socket.inet_aton(address[0])
        listener = table.lookup(dst, address[1], dst, 0)
        server = listener.new_connection() if listener is not None and listener.listening else None
        if server is None:
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        if not sock.local[1]:
            table.bind(sock, dst, 0)
        sock.remote, server.local, server.remote = (dst, address[1]), (dst, address[1]), sock.local
        sock.pcb, server.pcb = server, sock
        server.connected()
        sock.connected()

    def send(self, sock, data, address):
        sock.snd.append_bytes(data)
        self._move(sock)

    def rcvd(self, sock):
        if sock.pcb is not None:
            self._move(sock.pcb)

    def shutdown(self, sock):
        self._move(sock)

    def _move(self, sock):
        """What the peer has room for, from sock's send buffer to the peer's receive buffer; then the end."""
        peer = sock.pcb
        if peer is None:
            return
        if sock.snd.cc and peer.rcv.space():
            peer.append(sock.snd.take_bytes(peer.rcv.space()))
            sock.wakeup()
        if sock.cant_send and not sock.snd.cc:
            peer.cantrcvmore()

    def detach(self, sock):
        sock.node.pcb_table(LOOP).remove(sock)
        if sock.pcb is not None:
            sock.pcb.pcb = None
            sock.pcb.cantrcvmore()


class Local:
    """A node of this program, used directly: what the test body needs besides the sockets' own calls."""

    def __init__(self, node):
        self.node = node

    async def socket(self, kind, proto=0):
        return self.node.socket(kind, proto)

    async def netstat(self):
        return [sock.describe() for sock in self.node.sockets()]


class Remote:
    """The same node, reached through its control socket."""

    def __init__(self, client):
        self.client = client

    async def socket(self, kind, proto=0):
        return await self.client.socket(kind, proto)

    async def netstat(self):
        return await self.client.call("sockets")


@pytest.fixture(params=["local", "remote"])
async def node(request, tmp_path):
    """A node at 10.0.0.1 with the Loop protocol, used in this program or through its control socket."""
    async with rumpnet.open_node() as node:
        node.register_protocol(SOCK_STREAM, LOOP, Loop())
        node.add_address(node.create_shmif(str(tmp_path / "bus")), "10.0.0.1/24")
        if request.param == "local":
            yield Local(node)
            return
        url = f"unix://{tmp_path}/node.sock"
        async with trio.open_nursery() as nursery:
            await nursery.start(rumpnet.serve, node, url)
            async with rumpnet.connect(url) as client:
                yield Remote(client)
            nursery.cancel_scope.cancel()


async def connected_pair(node, port=7000):
    """(listening socket, client end, server end) of one Loop connection."""
    listener = await node.socket(SOCK_STREAM, LOOP)
    await listener.bind(("10.0.0.1", port))
    await listener.listen()
    client = await node.socket(SOCK_STREAM, LOOP)
    await client.connect(("10.0.0.1", port))
    with trio.fail_after(5):
        server, peer = await listener.accept()
    assert peer[0] == "10.0.0.1" and peer[1] >= 49152  # the client's ephemeral port
    return listener, client, server


async def read_to_end(sock, bufsize=1000):
    received = bytearray()
    with trio.fail_after(10):
        while chunk := await sock.recv(bufsize):
            received += chunk
    return bytes(received)


@pytest.mark.parametrize("size, bufsize", [(20000, 1000), (70000, 1 << 20)],
                         ids=["small-reads", "more-than-a-control-message-both-ways"])
async def test_bytes_cross_in_order_both_ways_and_end_with_shutdown(node, size, bufsize):
    _, client, server = await connected_pair(node)
    payload = bytes(range(256)) * (size // 256)  # many times what the buffers hold: the sender waits for the reader

    async def send_all_then_end():
        assert await client.send(payload) == len(payload)
        await client.shutdown(SHUT_WR)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all_then_end)
        assert await read_to_end(server, bufsize) == payload
    await server.send(b"and back")
    await server.shutdown(SHUT_WR)
    assert await read_to_end(client) == b"and back"


async def test_a_full_send_buffer_blocks_the_writer_until_the_reader_reads(node):
    _, client, server = await connected_pair(node)
    await client.send(bytes(2 * BUFFER))  # the peer's receive buffer full, then our own send buffer
    assert [s["send_q"] for s in await node.netstat() if s["proto"] == "loop" and s["local"][1] != 7000] == [BUFFER]
    with trio.move_on_after(0.3) as waited:
        await client.wait_writable()
    assert waited.cancelled_caught, "writable with both buffers full"
    assert len(await server.recv(1000)) == 1000
    with trio.fail_after(5):
        await client.wait_writable()  # the reader made room: 1000 bytes moved on
    assert [s["send_q"] for s in await node.netstat() if s["proto"] == "loop" and s["local"][1] != 7000] \
        == [BUFFER - 1000]


async def test_end_of_file_after_shutdown_and_no_sending_after_it(node):
    _, client, server = await connected_pair(node)
    await client.send(b"last words")
    with trio.fail_after(5):
        await server.wait_readable()
    await client.shutdown(SHUT_WR)
    assert await server.recv(100) == b"last words"
    assert await server.recv(100) == b""
    assert await server.recv(100) == b""  # end of file stays
    with pytest.raises(OSError) as caught:
        await client.send(b"more")
    assert caught.value.errno == errno.EPIPE


async def test_connect_to_a_port_without_a_listener_is_refused(node):
    client = await node.socket(SOCK_STREAM, LOOP)
    with pytest.raises(OSError) as caught:
        await client.connect(("10.0.0.1", 7001))
    assert caught.value.errno == errno.ECONNREFUSED


async def test_a_full_accept_queue_refuses_more(node):
    listener = await node.socket(SOCK_STREAM, LOOP)
    await listener.bind(("10.0.0.1", 7000))
    await listener.listen(1)
    first = await node.socket(SOCK_STREAM, LOOP)
    await first.connect(("10.0.0.1", 7000))
    second = await node.socket(SOCK_STREAM, LOOP)
    with pytest.raises(OSError) as caught:
        await second.connect(("10.0.0.1", 7000))
    assert caught.value.errno == errno.ECONNREFUSED
    await listener.accept()
    await second.connect(("10.0.0.1", 7000))  # the queue has room again


async def test_stream_calls_on_a_datagram_socket_fail_as_in_bsd(node):
    sock = await node.socket(rumpnet.SOCK_DGRAM)
    with pytest.raises(OSError) as caught:
        await sock.listen()
    assert caught.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as caught:
        await sock.shutdown(SHUT_WR)
    assert caught.value.errno == errno.ENOTCONN


async def test_a_kind_with_no_protocol_is_refused(tmp_path):
    async with rumpnet.open_node(stack="minimal") as node:  # no TCP
        with pytest.raises(OSError) as caught:
            node.socket(SOCK_STREAM)
        assert caught.value.errno == errno.EPROTONOSUPPORT
        node.register_protocol(SOCK_STREAM, LOOP, Loop())
        with node.socket(SOCK_STREAM) as sock:  # protocol 0: the first registered for streams
            assert sock.usrreqs.name == "loop"
        with pytest.raises(ValueError):
            node.register_protocol(SOCK_STREAM, LOOP, Loop())


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.lists(st.tuples(st.binary(max_size=40), st.integers(0, 50)), max_size=40))
def test_a_stream_buffer_keeps_order_and_its_bound(hiwat, steps):
    """Whatever is appended and taken, the bytes come out in order, and cc never passes hiwat."""
    buffer = SockBuf(hiwat)
    sent, taken = bytearray(), bytearray()
    for data, size in steps:
        count = buffer.append_bytes(data)
        assert count == min(len(data), hiwat - len(sent) + len(taken))
        sent += data[:count]
        taken += buffer.take_bytes(size)
        assert buffer.cc == len(sent) - len(taken) <= hiwat
    assert sent == taken + buffer.take_bytes(hiwat)
