"""TCP between rumpnet and the Linux kernel's own TCP, through the router and a tap.

    node a 10.0.0.2 --bus-- 10.0.0.1 router 192.168.77.1 (virt0) --tap-- 192.168.77.2 Linux (a namespace)

One router, one node and one namespace serve every check of this file (it is
the slow part); the nodes run unprivileged. Linux's side is curl, OpenBSD's
nc, a Python socket, http.server and `ss -ti`, whose figures for 10 MiB
transfers each way are checked: the window Linux saw, its scale, and few
retransmissions. The node's fetch runs routed and with the router
translating its address (net.inet.ip.nat).
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from rumpnet.testing import as_user, can_make_taps, rumpnet_command

from conftest import UNPRIVILEGED, make_workdir, need_tool
from test_router_host import Net as RouterNet
from test_tcp_nc import digest, tcp_count, wait_listening

pytestmark = pytest.mark.skipif(not can_make_taps(), reason="making a tap and a network namespace needs root")

LINUX, NODE = "192.168.77.2", "10.0.0.2"
SIZE = 10 * 1024 * 1024
HELLO = b"hello from the node\n"

# A trio HTTP/1.0 server of the files of one directory on a stream socket of the node (RUMP_SERVER), through
# SocketStream: it answers COUNT requests, one after the other, and ends.
HTTP_SERVER = """
import os, sys, trio, rumpnet

async def serve(stream, directory):
    request = b""
    while b"\\r\\n\\r\\n" not in request:
        request += await stream.receive_some(4096)
    name = request.split()[1].decode().strip("/")
    body = open(os.path.join(directory, os.path.basename(name)), "rb").read()
    await stream.send_all(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body) + body)
    await stream.send_eof()
    while await stream.receive_some(4096):
        pass
    await stream.aclose()

async def main(directory, port, count):
    async with rumpnet.connect() as node:
        listener = await node.socket(rumpnet.SOCK_STREAM)
        await listener.bind(("0.0.0.0", port))
        await listener.listen()
        print("listening", flush=True)
        for _ in range(count):
            sock, peer = await listener.accept()
            await serve(rumpnet.SocketStream(sock), directory)
        await listener.aclose()

trio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""

# A Python socket sends its standard input, then reads to the end and writes what came to standard output.
PY_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20) as s:
    s.sendall(sys.stdin.buffer.read())
    s.shutdown(socket.SHUT_WR)
    got = b""
    while chunk := s.recv(65536):
        got += chunk
sys.stdout.buffer.write(got)
"""


class Net(RouterNet):
    """The router's picture of test_router_host.py, with a way to start programs on either side."""

    def __init__(self, workdir, user):
        self.workdir, self.user = workdir, user
        super().__init__(workdir, user)

    def in_linux(self, *argv, **kwargs):
        """A process in the namespace, not waited for."""
        return subprocess.Popen(["ip", "netns", "exec", self.host.netns, *map(str, argv)], **kwargs)

    def in_node(self, *argv, **kwargs):
        """A process talking to node a as the unprivileged user, not waited for."""
        return subprocess.Popen(as_user(argv, self.user) if self.user else argv,
                                env={**os.environ, "RUMP_SERVER": self.a.url}, **kwargs)


@pytest.fixture(scope="module")
def net():
    workdir = make_workdir()
    made = Net(workdir, UNPRIVILEGED)
    payload = workdir / "payload"
    payload.write_bytes(os.urandom(SIZE))
    os.chmod(payload, 0o644)
    (workdir / "hello").write_bytes(HELLO)
    os.chmod(workdir / "hello", 0o644)
    made.payload = payload
    yield made
    made.close()
    shutil.rmtree(workdir, ignore_errors=True)


def finish(*procs, timeout=90):
    """Wait for every process; the stderr of any that failed."""
    errors = []
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode:
            errors.append(f"{proc.args[-3:]}: {proc.returncode} {proc.stderr.read() if proc.stderr else ''}")
    return errors


class Watch:
    """`ss -tin` in the namespace, every tenth of a second while a transfer runs: the last sample with
    figures kept, and the widest send window Linux saw (a receiver that falls behind for a moment,
    on a loaded machine, shows a narrower one in any single sample)."""

    def __init__(self, net, peer):
        self.net, self.peer = net, peer
        self.last = None
        self.widest_window = 0

    def sample(self):
        done = self.net.host.sh("ss", "-tinH", "dst", self.peer)
        if "data_segs_" in done.stdout:
            self.last = done.stdout
            self.widest_window = max(self.widest_window, ss_fields(done.stdout).get("snd_wnd", 0))

    def during(self, *procs):
        while any(proc.poll() is None for proc in procs):
            self.sample()
            time.sleep(0.1)


def ss_fields(text):
    """The figures of one `ss -ti` connection: wscale as a pair, retrans as its total, the rest as numbers."""
    fields = {}
    for name, value in re.findall(r"\b([a-z_]+):(\S+)", text):
        if name == "wscale":
            fields[name] = tuple(int(v) for v in value.split(","))
        elif name == "retrans":
            fields[name] = int(value.split("/")[1])
        elif re.fullmatch(r"\d+(\.\d+)?", value):
            fields[name] = float(value)
    return fields


def sane_window(fields, offered_shift):
    """What Linux saw of our side: the shift we offered, full-sized segments, a window far from closed."""
    assert fields["wscale"][0] == offered_shift, fields  # the shift our SYN offered, as Linux took it
    assert 0 < fields["wscale"][1] <= 14, fields
    assert fields["mss"] == 1460, fields  # our MSS option: the tap's MTU less 40


def test_linux_nc_sends_ten_mebibytes_to_rumpnet_nc(net):
    need_tool("nc")
    out = net.workdir / "from-linux"
    sent_before = tcp_count(net.a, "ack-only packets sent")
    resets = linux_count(net, "TcpOutRsts")
    with open(out, "wb") as sink, open(net.payload, "rb") as source:
        listener = net.in_node(*rumpnet_command("nc", "-l", "-p", "7000"), stdout=sink, stderr=subprocess.PIPE,
                               text=True)
        wait_listening(net.a, 7000)
        sender = net.in_linux("nc", "-N", NODE, "7000", stdin=source, stderr=subprocess.PIPE, text=True)
        watch = Watch(net, NODE)
        watch.during(sender, listener)
    assert not finish(sender, listener)
    assert digest(out) == digest(net.payload)
    assert watch.last, "ss never showed the connection"
    fields = ss_fields(watch.last)
    sane_window(fields, 3)  # 256 KiB of receive buffer needs a shift of 3
    assert watch.widest_window >= 65536, fields  # Linux may send far beyond 64 KiB: the scale works
    segments = fields["data_segs_out"]
    assert segments > 1000, fields
    assert fields.get("retrans", 0) < segments / 100, fields
    assert tcp_count(net.a, "ack-only packets sent") - sent_before < segments  # delayed: one ACK for two
    assert linux_count(net, "TcpOutRsts") == resets  # a clean close: nothing Linux had to reset


def test_curl_nc_and_a_python_socket_fetch_from_a_trio_http_server_on_the_node(net):
    """curl takes the 10 MiB file (ss watching), then Linux's nc and a Python socket each take a small one."""
    need_tool("curl")
    need_tool("nc")
    out = net.workdir / "from-node"
    retransmitted_before = tcp_count(net.a, "data packets retransmitted")
    resets = linux_count(net, "TcpOutRsts")
    server = net.in_node(sys.executable, "-c", HTTP_SERVER, net.workdir, "8080", "3", stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "listening\n", server.stderr.read()
        fetch = net.in_linux("curl", "-sS", "-o", out, f"http://{NODE}:8080/payload", stderr=subprocess.PIPE,
                             text=True)
        watch = Watch(net, NODE)
        watch.during(fetch)
        assert not finish(fetch)
        assert digest(out) == digest(net.payload)
        request = b"GET /hello HTTP/1.0\r\n\r\n"
        for client in (["nc", "-N", NODE, "8080"], [sys.executable, "-c", PY_CLIENT, NODE, "8080"]):
            proc = net.in_linux(*client, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            got, err = proc.communicate(request, timeout=60)
            assert proc.returncode == 0, err
            head, _, body = got.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200") and body == HELLO, client
        assert not finish(server)
    finally:
        finish(server, timeout=1)
    assert watch.last, "ss never showed the connection"
    fields = ss_fields(watch.last)
    sane_window(fields, 3)
    assert fields["rcvmss"] == 1460, fields  # our segments were full-sized
    segments = SIZE // 1460
    assert tcp_count(net.a, "data packets retransmitted") - retransmitted_before < segments / 100
    assert linux_count(net, "TcpOutRsts") == resets


@pytest.mark.parametrize("nat", [False, True], ids=["routed", "translated"])
def test_rumpnet_nc_fetches_ten_mebibytes_from_a_linux_http_server(net, nat):
    """Linux's http.server logs who asked: the node itself, or with NAT on the router standing for it."""
    out = net.workdir / "fetched"
    resets = linux_count(net, "TcpOutRsts")
    seen_as = "192.168.77.1" if nat else NODE
    assert net.router.run("sysctl", "-w", f"net.inet.ip.nat={int(nat)}").returncode == 0
    server = net.in_linux(sys.executable, "-m", "http.server", "-b", LINUX, "-d", net.workdir, "8000",
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while ":8000" not in net.host.sh("ss", "-tlnH").stdout and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(out, "wb") as sink:
            client = net.in_node(*rumpnet_command("nc", "-N", LINUX, "8000"), stdin=subprocess.PIPE, stdout=sink,
                                 stderr=subprocess.PIPE)
            client.stdin.write(b"GET /payload HTTP/1.0\r\n\r\n")
            client.stdin.close()
            watch = Watch(net, seen_as)
            watch.during(client)
        assert not finish(client)
    finally:
        server.terminate()
        log = server.communicate()[1]
        net.router.run("sysctl", "-w", "net.inet.ip.nat=0")
    assert log.startswith(f"{seen_as} - - ") and '"GET /payload HTTP/1.0" 200' in log, log
    head, _, body = out.read_bytes().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head
    assert hashlib.sha256(body).hexdigest() == digest(net.payload)
    fields = ss_fields(watch.last)
    sane_window(fields, 3)
    assert fields.get("retrans", 0) < fields["data_segs_out"] / 100, fields
    assert linux_count(net, "TcpOutRsts") == resets


def linux_count(net, name):
    """One of the namespace's TCP counters (nstat's names, as in /proc/net/snmp)."""
    for line in net.host.sh("nstat", "-asz", name).stdout.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise LookupError(name)
