"""traceroute across two routers and three buses, and the parser of the answers it reads."""

import re
import shutil
import struct

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import rumpnet
from rumpnet import IPPROTO_ICMP, SOCK_DGRAM, SOCK_RAW, open_node
from rumpnet.netinet.checksum import in_cksum
from rumpnet.testing import NodeProcess, can_drop_privileges
from rumpnet.tools.traceroute import Answer, mark, parse_answer, probe_port

from conftest import UNPRIVILEGED, make_workdir

HOP = re.compile(r"^ ?(\d+) (.*)$")


@pytest.fixture(scope="module")
def line():
    """a --bus1-- r1 --bus2-- r2 --bus3-- b, static routes end to end; the nodes are stopped after.

    One for the module: starting four nodes and wiring them takes many commands.
    A test that changes a route puts it back.
    """
    workdir, started = make_workdir(), []
    user = UNPRIVILEGED if can_drop_privileges() else None

    def node(name, stack=None):
        started.append(NodeProcess(workdir / f"{name}.sock", user=user, stack=stack))
        return started[-1]

    try:
        a, r1, r2, b = node("a"), node("r1", "router"), node("r2", "router"), node("b")
        buses = [str(workdir / f"bus{n}") for n in (1, 2, 3)]
        r1.attach(buses[0], "10.0.1.1/24")
        r1.attach(buses[1], "10.0.2.1/24", ifname="shmif1")
        r2.attach(buses[1], "10.0.2.2/24")
        r2.attach(buses[2], "10.0.3.1/24", ifname="shmif1")
        a.attach(buses[0], "10.0.1.2/24")
        b.attach(buses[2], "10.0.3.2/24")
        for who, destination, gateway in ((a, "default", "10.0.1.1"), (r1, "10.0.3.0/24", "10.0.2.2"),
                                          (r2, "default", "10.0.2.1"), (b, "default", "10.0.3.1")):
            assert who.run("route", "add", destination, gateway).returncode == 0
        yield a, r1, r2, b
    finally:
        for started_node in started:
            started_node.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def hops(stdout):
    """[(ttl, rest of the line)] of traceroute's hop lines."""
    return [(int(m.group(1)), m.group(2)) for m in map(HOP.match, stdout.splitlines())]


def test_each_router_then_the_host(line):
    a, _, _, _ = line
    done = a.run("traceroute", "-n", "-w", "5", "10.0.3.2")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "traceroute to 10.0.3.2 (10.0.3.2), 64 hops max, 40 byte packets\n"
    listed = hops(done.stdout)
    assert [ttl for ttl, _ in listed] == [1, 2, 3]
    for (_, rest), address in zip(listed, ("10.0.1.1", "10.0.2.2", "10.0.3.2")):
        assert re.fullmatch(rf" {re.escape(address)}(  \d+\.\d{{3}} ms){{3}}", rest), rest


def test_names_are_the_addresses_and_the_hop_count_is_bounded(line):
    a, _, _, _ = line
    done = a.run("traceroute", "-q", "1", "-m", "2", "10.0.3.2")
    assert done.returncode == 0, done.stderr
    assert "2 hops max" in done.stderr
    assert [(ttl, rest.split("  ")[0]) for ttl, rest in hops(done.stdout)] == \
        [(1, " 10.0.1.1 (10.0.1.1)"), (2, " 10.0.2.2 (10.0.2.2)")]


def test_a_deleted_route_turns_the_answers_into_net_unreachable(line):
    a, r1, _, _ = line
    assert r1.run("route", "delete", "10.0.3.0/24").returncode == 0
    try:
        done = a.run("traceroute", "-n", "-w", "5", "10.0.3.2")
        ping = a.run("ping", "-c", "1", "-w", "3", "10.0.3.2")
    finally:
        assert r1.run("route", "add", "10.0.3.0/24", "10.0.2.2").returncode == 0
    assert done.returncode == 0, done.stderr
    listed = hops(done.stdout)
    assert [ttl for ttl, _ in listed] == [1, 2]  # the trace stops at the unreachable hop
    assert re.fullmatch(r" 10\.0\.1\.1(  \d+\.\d{3} ms !N){3}", listed[1][1]), listed[1][1]
    assert "bytes from 10.0.1.1: Destination Net Unreachable" in ping.stdout
    assert ping.returncode == 2


def test_a_probe_with_ttl_1_is_answered_time_exceeded_by_the_router(line):
    a, _, _, _ = line
    done = a.run("ping", "-c", "1", "-T", "1", "-w", "3", "10.0.3.2")
    assert "bytes from 10.0.1.1: Time To Live exceeded" in done.stdout
    assert done.returncode == 2


def test_unanswered_probes_are_stars(line):
    a, _, _, _ = line
    done = a.run("traceroute", "-n", "-q", "2", "-m", "1", "-w", "0.2", "10.0.1.77")  # no such node on bus1
    assert done.returncode == 0, done.stderr
    assert done.stdout == " 1  * *\n"


# -- the answers, as bytes from the wire ---------------------------------------------------------

def ip_packet(proto, src, dst, payload, ttl=64, ihl=5):
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 1, 0, ttl, proto, 0,
                                   bytes(src), bytes(dst)) + bytes(4 * ihl - 20))
    struct.pack_into("!H", header, 10, in_cksum(header))
    return bytes(header) + payload


def answer_to(sport, dport, icmp_type=11, code=0, ttl=64, rest=b"\0\0\0\0"):
    probe = ip_packet(17, [10, 0, 1, 2], [10, 0, 3, 2], struct.pack("!HHHH", sport, dport, 20, 0) + bytes(12), ttl=1)
    message = struct.pack("!BBH", icmp_type, code, 0) + rest + probe[:28]
    return ip_packet(1, [10, 0, 1, 1], [10, 0, 1, 2], message, ttl=ttl)


@pytest.mark.parametrize("packet, expected", [
    (answer_to(49152, 33435), Answer(11, 0, 64, 49152, 33435, 0)),
    (answer_to(49152, 33436, 3, 3, ttl=1), Answer(3, 3, 1, 49152, 33436, 0)),
    (answer_to(49152, 33437, 3, 4, rest=b"\0\0\x05\xdc"), Answer(3, 4, 64, 49152, 33437, 1500)),
    (answer_to(1, 2, icmp_type=0), None),  # an echo reply quotes nothing
    (answer_to(1, 2)[:20 + 8 + 20 + 3], None),  # the quote stops inside the ports
    (ip_packet(1, [1, 1, 1, 1], [2, 2, 2, 2], b"\x0b\0\0\0\0\0\0\0" + ip_packet(6, [1] * 4, [2] * 4, bytes(8))),
     None),  # quotes TCP
], ids=["time exceeded", "port unreachable", "need frag", "echo reply", "short quote", "quotes tcp"])
def test_parse_answer(packet, expected):
    assert parse_answer(packet) == expected


@pytest.mark.parametrize("answer, text", [
    (Answer(11, 0, 64, 1, 2, 0), ""), (Answer(3, 3, 64, 1, 2, 0), ""), (Answer(3, 3, 1, 1, 2, 0), " !"),
    (Answer(3, 0, 64, 1, 2, 0), " !N"), (Answer(3, 1, 64, 1, 2, 0), " !H"), (Answer(3, 4, 64, 1, 2, 1500), " !F-1500"),
    (Answer(3, 99, 64, 1, 2, 0), " !<99>"),
])
def test_marks_as_bsd_prints_them(answer, text):
    assert mark(answer) == text


def test_probe_ports_wrap_within_the_port_range():
    assert [probe_port(33434, n) for n in (1, 2)] == [33435, 33436]
    assert [probe_port(65535, n) for n in (1, 2)] == [1, 2]


@given(st.binary(max_size=120))
def test_parse_answer_takes_any_bytes(data):
    got = parse_answer(data)
    assert got is None or isinstance(got, Answer)


@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 255), st.integers(0, 255), st.integers(0, 60))
@example(0, 0, 3, 0, 57)  # a cut beyond the 56 bytes leaves nothing (a negative end would keep 55)
def test_parse_answer_finds_the_ports_of_any_answer_cut_anywhere(sport, dport, icmp_type, code, cut):
    packet = answer_to(sport, dport, icmp_type, code)
    got = parse_answer(packet[:max(0, len(packet) - cut)])
    if icmp_type in (3, 11) and cut <= 4:
        assert (got.sport, got.dport, got.icmp_type, got.code) == (sport, dport, icmp_type, code)
    else:
        assert got is None


async def test_traceroute_on_local_sockets(tmp_path):
    """The Python API: the same code over a node's own sockets, through a router in the same program."""
    near, far = str(tmp_path / "near"), str(tmp_path / "far")
    async with open_node() as a, open_node(stack="router") as r, open_node() as b:
        r.add_address(r.create_shmif(near), "10.0.1.1/24")
        r.add_address(r.create_shmif(far), "10.0.2.1/24")
        a.add_address(a.create_shmif(near), "10.0.1.2/24")
        b.add_address(b.create_shmif(far), "10.0.2.2/24")
        a.add_route("default", "10.0.1.1")
        b.add_route("default", "10.0.2.1")
        printed = []
        reached = await rumpnet.traceroute(a.socket(SOCK_DGRAM), a.socket(SOCK_RAW, IPPROTO_ICMP), "10.0.2.2",
                                           nprobes=1, waittime=5,
                                           out=lambda text, end="\n": printed.append(text + end))
    assert reached
    lines = "".join(printed).splitlines()
    assert [re.sub(r"\d+\.\d{3} ms", "T ms", line) for line in lines] == [
        " 1  10.0.1.1 (10.0.1.1)  T ms", " 2  10.0.2.2 (10.0.2.2)  T ms"]
