"""The control socket against hostile and buggy clients: nothing a client sends ends or starves the node.

Every attack talks to a real node's control socket with Python's socket
module, as any local program could; afterwards the node must be alive,
answer, and use no CPU while idle.
"""

import errno
import json
import logging
import os
import socket
import struct
import threading
import time

import pytest

from rumpnet import connect, open_node
from rumpnet.kern.control import MAX_CALLS_IN_FLIGHT, MAX_CONNECTIONS, serve
from rumpnet.kern.protocol import MAX_REQUEST_DATA, MAX_REQUEST_HEADER, PROTOCOL_VERSION
from rumpnet.testing import run

from conftest import cpu_seconds

RSS_BOUND = 150 * 1024 * 1024


def message(header, data=b""):
    """Framing written out by hand, independently of rumpnet.kern.protocol.encode."""
    raw = json.dumps(header).encode()
    return struct.pack("!II", len(raw), len(data)) + raw + data


def read_exactly(sock, size):
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {size} bytes")
        buf += chunk
    return buf


def read_message(sock):
    hlen, dlen = struct.unpack("!II", read_exactly(sock, 8))
    return json.loads(read_exactly(sock, hlen)), read_exactly(sock, dlen)


def hello(sock, version=PROTOCOL_VERSION):
    sock.sendall(message({"id": 0, "call": "hello", "args": {"version": version}}))
    return read_message(sock)[0]


def client(node, timeout=10.0):
    """A raw connection to node that has said hello."""
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(timeout)
    sock.connect(node.path)
    assert hello(sock) == {"id": 0, "result": {"version": PROTOCOL_VERSION}}
    return sock


def call(sock, call_name, data=b"", request_id=1, /, **args):
    sock.sendall(message({"id": request_id, "call": call_name, "args": args}, data))
    return read_message(sock)


def closed_by_node(sock):
    """True once the node has closed its end (EOF, or a reset after unread input)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def rss(node):
    with open(f"/proc/{node.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_descriptors(node):
    return len(os.listdir(f"/proc/{node.proc.pid}/fd"))


def assert_healthy(node):
    """Alive, answering, and idle: under 5% of a CPU over a second with no client."""
    assert node.is_alive()
    before = cpu_seconds(node)
    time.sleep(1.0)
    assert cpu_seconds(node) - before < 0.05


def answers(node):
    done = node.run("ifconfig", "-l", timeout=30)
    return done.returncode == 0 and done.stdout.strip() == ""


# -- a client that stops reading ------------------------------------------------------------


def test_pipelined_requests_then_close_without_reading(nodes):
    a = nodes("a")
    burst = message({"id": 1, "call": "if_list"}) * 5000
    for _ in range(5):
        sock = client(a)
        sock.sendall(burst)
        sock.close()
    assert_healthy(a)


def test_pipelined_flood_without_reading_is_held_back(nodes):
    """100,000 requests and no reading: the node stops reading too, and its memory stays bounded."""
    a = nodes("a")
    sock = client(a)
    sock.setblocking(False)
    request = message({"id": 1, "call": "sockets"})
    sent, blocked_since = 0, None
    deadline = time.monotonic() + 20
    while sent < 100_000 and time.monotonic() < deadline:
        try:
            sock.send(request)
            sent, blocked_since = sent + 1, None
        except BlockingIOError:  # two seconds without taking a byte more: the node has stopped reading
            blocked_since = blocked_since or time.monotonic()
            if time.monotonic() - blocked_since > 2:
                break
            time.sleep(0.01)
    assert sent < 100_000  # back-pressure: the node stopped taking requests it cannot answer
    assert rss(a) < RSS_BOUND
    assert answers(a)  # others are still served meanwhile
    sock.close()
    assert_healthy(a)


def test_waiting_calls_per_connection_are_bounded(nodes):
    """recvfrom calls that wait forever: beyond MAX_CALLS_IN_FLIGHT the node stops reading that client."""
    a = nodes("a")
    sock = client(a)
    fd = call(sock, "socket", kind=2)[0]["result"]
    waiting = message({"id": 2, "call": "recvfrom", "args": {"fd": fd}})
    quick = message({"id": 3, "call": "getsockname", "args": {"fd": fd}})
    sock.sendall(waiting * MAX_CALLS_IN_FLIGHT + quick)
    assert read_message(sock)[0] == {"id": 3, "result": ["0.0.0.0", 0]}  # answered beside the waiting ones
    sock.sendall(waiting + quick)  # one waiting call too many
    sock.settimeout(1.0)
    with pytest.raises(TimeoutError):  # the node does not read on: every slot waits
        read_message(sock)
    assert answers(a)
    sock.close()
    assert_healthy(a)


# -- limits on connections and bytes --------------------------------------------------------


def test_idle_connections_are_capped(nodes):
    a = nodes("a")
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(client(a))
        for _ in range(3000):  # more than the cap, many more
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(a.path)  # blocking: waits while the listen queue is full
            sock.settimeout(10)
            held.append(sock)
        assert open_descriptors(a) < MAX_CONNECTIONS + 64
        refused = held[MAX_CONNECTIONS]
        header, _ = read_message(refused)
        assert header["errno"] == errno.EAGAIN and "too many connections" in header["message"]
        assert str(MAX_CONNECTIONS) in header["message"]
        assert closed_by_node(refused)
        done = a.run("ifconfig", "-l")  # a client over the cap hears why, in one line
        assert done.returncode == 1 and "too many connections" in done.stderr
        assert len(done.stderr.splitlines()) == 1
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert answers(a)
    assert_healthy(a)


@pytest.mark.parametrize("lengths", [(2 << 20, 0), (1 << 20, 1 << 20), (MAX_REQUEST_HEADER + 1, 0),
                                     (100, MAX_REQUEST_DATA + 1)], ids=["2M-header", "1M+1M", "header+1", "data+1"])
def test_oversized_messages_are_refused_at_once(nodes, lengths):
    a = nodes("a")
    sock = client(a)
    sock.sendall(struct.pack("!II", *lengths) + b"{" * 1000)
    header, _ = read_message(sock)
    assert header["errno"] == errno.EPROTO and "too large" in header["message"]
    assert closed_by_node(sock)
    assert_healthy(a)


def test_many_clients_sending_large_messages(nodes):
    """150 clients each pushing all but the end of a 2 MiB message: the node holds a bounded amount, not 300 MB."""
    a = nodes("a")

    def push(sock, blob):
        try:
            sock.sendall(blob)
        except OSError:
            pass

    blob = struct.pack("!II", 1 << 20, 1 << 20) + b" " * ((2 << 20) - 1)  # all but the last byte
    socks = [socket.socket(socket.AF_UNIX) for _ in range(150)]
    senders = [threading.Thread(target=push, args=(sock, blob)) for sock in socks]
    try:
        for sock, sender in zip(socks, senders):
            sock.connect(a.path)  # blocking: waits while the listen queue is full
            sock.settimeout(5)
            sender.start()
        time.sleep(2)
        assert rss(a) < RSS_BOUND
    finally:
        for sock, sender in zip(socks, senders):
            if sender.is_alive():
                sock.shutdown(socket.SHUT_RDWR)
                sender.join()
            sock.close()
    assert answers(a)
    assert_healthy(a)


def test_partial_messages_within_the_limits(nodes):
    """Clients that each start a message as large as allowed and never finish it."""
    a = nodes("a")
    socks = []
    try:
        for _ in range(MAX_CONNECTIONS - 1):
            sock = client(a)
            sock.sendall(struct.pack("!II", MAX_REQUEST_HEADER, MAX_REQUEST_DATA)
                         + b" " * (MAX_REQUEST_HEADER + MAX_REQUEST_DATA - 1))
            socks.append(sock)
        assert rss(a) < RSS_BOUND
        assert answers(a)
    finally:
        for sock in socks:
            sock.close()
    assert_healthy(a)


# -- undecodable requests -------------------------------------------------------------------

UNDECODABLE = {
    "deep-nesting": b"[" * 60000,
    "nan": b'{"id": 1, "call": "if_list", "args": {"x": NaN}}',
    "infinity": b'{"id": 1, "call": "if_list", "args": {"x": -Infinity}}',
    "huge-float": b'{"id": 1, "call": "if_list", "args": {"x": 1e400}}',
    "not-json": b"nojsn",
    "not-utf8": b'{"id": 1, "call": "\xff\xfe"}',
    "not-an-object": b"[1, 2]",
    "id-not-an-integer": b'{"id": [1, 2], "call": "if_list"}',
    "id-a-bool": b'{"id": true, "call": "if_list"}',
    "huge-integer": b'{"id": ' + b"9" * 5000 + b', "call": "if_list"}',
}


@pytest.mark.parametrize("header", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_undecodable_request_closes_with_a_protocol_error(nodes, header):
    a = nodes("a")
    sock = client(a)
    sock.sendall(struct.pack("!II", len(header), 0) + header)
    reply, _ = read_message(sock)
    assert reply["id"] is None and reply["errno"] == errno.EPROTO and reply["message"]
    assert closed_by_node(sock)
    assert_healthy(a)


def test_truncated_message_then_close(nodes):
    a = nodes("a")
    sock = client(a)
    sock.sendall(struct.pack("!II", 100, 10) + b'{"id"')
    sock.close()
    assert_healthy(a)


# -- types of fields ------------------------------------------------------------------------

BAD_FIELDS = {
    "up-a-string": ("if_up", {"name": "shmif0", "up": "no"}, "up"),
    "ttl-a-bool": ("setsockopt", {"fd": 3, "name": "IP_TTL", "value": True}, "IP_TTL"),
    "rcvbuf-a-float": ("setsockopt", {"fd": 3, "name": "SO_RCVBUF", "value": 5000.5}, "SO_RCVBUF"),
    "broadcast-a-string": ("setsockopt", {"fd": 3, "name": "SO_BROADCAST", "value": "no"}, "SO_BROADCAST"),
    "fd-a-string": ("getsockname", {"fd": "3"}, "fd"),
    "fd-a-bool": ("getsockname", {"fd": True}, "fd"),
    "kind-a-bool": ("socket", {"kind": True}, "kind"),
    "sysctl-value-a-bool": ("sysctl_set", {"name": "net.inet.ip.forwarding", "value": True}, "value"),
    "timeout-a-string": ("recvfrom", {"fd": 3, "timeout": "1"}, "timeout"),
    "name-a-number": ("if_create", {"name": 0}, "name"),
    "path-with-nul": ("if_linkstr", {"name": "shmif0", "path": "/tmp/a\u0000b"}, "path"),
    "route-a-list": ("route_add", {"destination": ["10.1.0.0/16"], "gateway": "10.0.0.2"}, "destination"),
    "args-a-list": ("if_list", [1], "args"),
    "unknown-argument": ("if_create", {"name": "shmif1", "nonsense": 1}, "nonsense"),
    "missing-argument": ("if_create", {}, "name"),
    "data-not-taken": ("if_list", {}, "data"),
}


@pytest.mark.parametrize("name, args, field", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_field_of_the_wrong_type_is_refused_by_name(nodes, name, args, field):
    a = nodes("a")
    sock = client(a)
    (created, _), (fd, _) = call(sock, "if_create", name="shmif0"), call(sock, "socket", kind=2)
    assert "result" in created and fd["result"] == 3
    before = call(sock, "if_list")[0]["result"]
    sock.sendall(message({"id": 7, "call": name, "args": args}, b"x" if field == "data" else b""))
    reply, _ = read_message(sock)
    assert reply["id"] == 7 and reply["errno"] == errno.EINVAL, reply
    assert field in reply["message"]
    assert call(sock, "if_list")[0]["result"] == before  # nothing changed
    sock.close()
    assert_healthy(a)


def test_wrong_ttl_leaves_the_option_alone(nodes):
    a = nodes("a")
    sock = client(a)
    fd = call(sock, "socket", kind=3, proto=1)[0]["result"]
    assert call(sock, "setsockopt", fd=fd, name="IP_TTL", value=7)[0] == {"id": 1, "result": None}
    assert call(sock, "setsockopt", fd=fd, name="IP_TTL", value=False)[0]["errno"] == errno.EINVAL
    assert call(sock, "setsockopt", fd=fd, name="IP_TTL", value=1.0)[0]["errno"] == errno.EINVAL
    assert call(sock, "setsockopt", fd=fd, name="SO_RCVTIMEO", value=0.5)[0]["result"] is None


# -- the version handshake ------------------------------------------------------------------


def test_other_version_is_refused_in_one_line(nodes):
    a = nodes("a")
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(a.path)
    reply = hello(sock, PROTOCOL_VERSION + 1)
    assert reply["errno"] == errno.EPROTONOSUPPORT
    assert f"version {PROTOCOL_VERSION + 1}" in reply["message"] and f"version {PROTOCOL_VERSION}" in reply["message"]
    assert closed_by_node(sock)
    assert_healthy(a)


def test_a_call_before_hello_is_refused(nodes):
    a = nodes("a")
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(a.path)
    reply, _ = call(sock, "if_list")
    assert reply["errno"] == errno.EPROTONOSUPPORT and "hello" in reply["message"]
    assert f"version {PROTOCOL_VERSION}" in reply["message"]
    assert closed_by_node(sock)


class FakeNode:
    """A control socket that answers the first request with a fixed reply (another rumpnet's node)."""

    def __init__(self, path, reply):
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.reply = reply
        self.thread = threading.Thread(target=self.serve_one, daemon=True)
        self.thread.start()

    def serve_one(self):
        conn, _ = self.listener.accept()
        with conn:
            header, _ = read_message(conn)
            conn.sendall(message({"id": header["id"], **self.reply}))
            conn.recv(1)

    def close(self):
        self.thread.join(10)
        self.listener.close()


@pytest.mark.parametrize("reply, words", [
    ({"result": {"version": PROTOCOL_VERSION + 1}}, [f"version {PROTOCOL_VERSION + 1}", f"version {PROTOCOL_VERSION}"]),
    ({"errno": errno.ENOSYS, "message": "unknown call 'hello'"}, [f"version {PROTOCOL_VERSION}", "older"]),
], ids=["newer-node", "older-node"])
def test_client_refuses_a_node_of_another_version(workdir, reply, words):
    fake = FakeNode(workdir / "fake.sock", reply)
    try:
        done = run("ifconfig", "-l", server=f"unix://{workdir}/fake.sock")
    finally:
        fake.close()
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    for word in words:
        assert word in done.stderr


# -- replies larger than a request may be ---------------------------------------------------


def test_netstat_lists_sixteen_thousand_sockets(nodes):
    """About 1.4 MB of reply: more than any request may hold, and it arrives whole."""
    a = nodes("a")
    sock = client(a, timeout=60)
    count = 16000
    requests = b"".join(message({"id": i, "call": "socket", "args": {"kind": 2}}) for i in range(count))
    requests += b"".join(message({"id": count + i, "call": "bind", "args": {"fd": 3 + i, "address": ["", 20000 + i]}})
                         for i in range(count))
    threading.Thread(target=sock.sendall, args=(requests,), daemon=True).start()
    for _ in range(2 * count):
        assert "errno" not in read_message(sock)[0]
    done = a.run("netstat", "-a", timeout=60)
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("udp ") for line in done.stdout.splitlines()) >= count
    sock.close()
    assert_healthy(a)


# -- the node's own faults ------------------------------------------------------------------


async def test_internal_error_is_eio_and_logged(workdir, caplog):
    """A fault inside the node is reported as the node's (EIO), with its traceback in the log."""
    import trio

    async with open_node() as node:
        def broken():
            raise TypeError("a bug in the node")

        node.sockets = broken
        path = str(workdir / "n.sock")
        await node.nursery.start(serve, node, path)
        with caplog.at_level(logging.ERROR, logger="rumpnet.kern.control"):
            async with connect(f"unix://{path}") as remote:
                with pytest.raises(OSError) as failure:
                    await remote.call("sockets")
                assert failure.value.errno == errno.EIO
                assert "internal error" in failure.value.strerror and "a bug in the node" in failure.value.strerror
                assert await remote.call("if_list") == []  # the connection goes on
        assert any("a bug in the node" in (r.exc_text or "") or r.exc_info for r in caplog.records)
        node.halt()
        await trio.sleep(0)
