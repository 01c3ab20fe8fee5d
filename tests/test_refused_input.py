"""Input that must be refused in one line: numbers, names, masks and protocol fields.

Each refusal runs as a user meets it: a command against a real node
(unprivileged when the tests run as root), or a request written by hand on
the control socket. The command must print one line and exit 1, the
request must get EINVAL, and the node must be left as it was.
"""

import errno
import json
import math
import os
import pathlib
import pwd
import re
import shutil
import struct
import tempfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from conftest import UNPRIVILEGED
from test_control_hostile import call, client

from rumpnet import open_node
from rumpnet.kern import numbers
from rumpnet.net.if_clone import check_name
from rumpnet.net.ifnet import netmask_prefixlen
from rumpnet.kern.sockets import SOCK_DGRAM
from rumpnet.testing import NodeProcess, can_drop_privileges, run

FIVE_THOUSAND = "1" * 5000
NOT_A_SHMIF_NAME = "not a shmif name (shmifN, numbers from 0 to 9999 without leading zeros)"


@pytest.fixture(scope="module")
def node():
    """One node for every refusal (each test checks it is left as it was): shmif0 at 10.0.0.1/24, and
    shmif1 on a second bus, down and without an address."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="rumpnet-test-"))
    user = UNPRIVILEGED if can_drop_privileges() else None
    if user:
        entry = pwd.getpwnam(user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    a = NodeProcess(workdir / "a.sock", user=user)
    try:
        a.attach(str(workdir / "bus"), "10.0.0.1/24")
        a.ifconfig("shmif1", "create", "linkstr", str(workdir / "bus1"))
        yield a
    finally:
        a.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def state(node):
    """What a refused command must not change: interfaces, routes, tunables, sockets (what ifconfig -a,
    route show, sysctl -a and netstat -a print), read over one control connection."""
    sock = client(node)
    try:
        return [call(sock, name, b"", n) for n, name in enumerate(("if_list", "route_list", "sysctl_get", "sockets"), 1)]
    finally:
        sock.close()


REFUSED = [
    (["ping", "-i", "nan", "10.0.0.2"], "argument -i: invalid float from 0.001 to 2147483 value: 'nan'"),
    (["ping", "-i", "inf", "10.0.0.2"], "argument -i: invalid float from 0.001 to 2147483 value: 'inf'"),
    (["ping", "-w", "nan", "10.0.0.2"], "argument -w: invalid float from 0.001 to 2147483 value: 'nan'"),
    (["ping", "-w", "1e400", "10.0.0.2"], "argument -w: invalid float from 0.001 to 2147483 value: '1e400'"),
    (["ping", "-c", "1", "-T", "６４", "10.0.0.2"], "argument -T: invalid int from 1 to 255 value: '６４'"),
    (["ping", "-c", "1_0", "10.0.0.2"], "argument -c: invalid int from 1 value: '1_0'"),
    (["nc", "-u", "-w", "nan", "10.0.0.2", "9"], "argument -w: invalid float from 0.001 to 2147483 value: 'nan'"),
    (["nc", "-u", "10.0.0.2", "７"], "７: not a port from 1 to 65535"),
    (["nc", "-u", "-p", " 7", "10.0.0.2", "9"], "argument -p: invalid int from 1 to 65535 value: ' 7'"),
    (["echo", "-u", "７"], "argument port: invalid int from 1 to 65535 value: '７'"),
    (["perf", "-c", "10.0.0.2", "-u", "-t", "nan"], "argument -t: invalid float from 0.001 to 86400 value: 'nan'"),
    (["perf", "-c", "10.0.0.2", "-u", "-b", "９M"],
     "-b ９M: not a rate (such as 10M, 500k, 20000pps, or 0 for as fast as possible)"),
    (["perf", "-c", "10.0.0.2", "-u", "-b", "2000G"], "-b 2000G: more than 1000G bits/s"),
    (["sysctl", "-w", "net.inet.ip.ttl=６４"], "net.inet.ip.ttl: '６４' is not a number"),
    (["sysctl", "-w", "net.inet.ip.ttl=64_0"], "net.inet.ip.ttl: '64_0' is not a number"),
    (["sysctl", "-w", "net.inet.ip.ttl= 64"], "net.inet.ip.ttl: ' 64' is not a number"),
    (["sysctl", "-w", f"net.inet.ip.ttl={FIVE_THOUSAND}"],
     "net.inet.ip.ttl: 111111111111111111111111... is out of range (1 to 255)"),
    (["ifconfig", "shmif01", "create"], f"shmif01: cannot create: {NOT_A_SHMIF_NAME}"),
    (["ifconfig", "shmif10000", "create"], f"shmif10000: cannot create: {NOT_A_SHMIF_NAME}"),
    (["ifconfig", "shmif" + FIVE_THOUSAND, "create"], f"shmif1111111111...: cannot create: {NOT_A_SHMIF_NAME}"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1", "netmask", "0x1"],
     "netmask '0x1' is not a netmask (255.255.255.0 or 0xffffff00)"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1", "netmask", "255.0.255.0"],
     "netmask '255.0.255.0' is not a netmask (255.255.255.0 or 0xffffff00)"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1", "netmask", "0.0.0.255"],
     "netmask '0.0.0.255' is not a netmask (255.255.255.0 or 0xffffff00)"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1", "netmask", "0xffffff00f"],
     "netmask '0xffffff00f' is not a netmask (255.255.255.0 or 0xffffff00)"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1/0.0.0.1"],
     "'10.0.1.1/0.0.0.1' is not an IPv4 address (A.B.C.D or A.B.C.D/N)"),
    (["ifconfig", "shmif1", "inet", "10.0.1.1/２4"], "'10.0.1.1/２4' is not an IPv4 address (A.B.C.D or A.B.C.D/N)"),
    (["route", "add", "10.9.0.0/0.0.0.255", "10.0.0.7"], "'10.9.0.0/0.0.0.255' is not an IPv4 network"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(argv)[:60] for argv, _ in REFUSED])
def test_command_refuses_in_one_line(node, user, argv, message):
    before = state(node)
    done = node.run(*argv, user=user, timeout=30)
    assert done.stderr == f"rumpnet {argv[0]}: {message}\n"
    assert done.returncode == 1
    assert state(node) == before


def test_capenable_of_the_environment(workdir, user):
    """A node's offload bits from RUMP_SHMIF_CAPENABLE: C-style 0x hex or decimal, nothing else."""
    for value, message in [("0x7_ff80", "'0x7_ff80' is not a number"), ("-1", "-1 is out of range (0 to 4294967295)"),
                           ("７", "'７' is not a number")]:
        done = run("server", f"unix://{workdir}/x.sock", user=user, env={"RUMP_SHMIF_CAPENABLE": value})
        assert done.stderr == f"rumpnet server: RUMP_SHMIF_CAPENABLE: {message} (try 0x7ff80)\n"
        assert done.returncode == 1


# -- the control protocol ----------------------------------------------------------------

def no_constant(name):
    raise AssertionError(f"the node sent {name}, which is not JSON")


PROTOCOL_REFUSED = [
    ("if_up", {"name": "shmif1", "up": "no"}, "if_up: up must be true or false, not a string"),
    ("if_up", {"name": "shmif1", "up": 1}, "if_up: up must be true or false, not an integer"),
    ("sysctl_set", {"name": "net.inet.ip.ttl", "value": True}, "sysctl_set: value must be an integer or a string"),
    ("sysctl_set", {"name": "net.inet.ip.ttl", "value": "６４"}, "net.inet.ip.ttl: '６４' is not a number"),
    ("sysctl_set", {"name": "net.inet.ip.ttl", "value": "64_0"}, "net.inet.ip.ttl: '64_0' is not a number"),
    ("sysctl_set", {"name": "net.inet.ip.ttl", "value": 6.4}, "sysctl_set: value must be an integer or a string"),
    ("if_create", {"name": "shmif01"}, "shmif01: cannot create: not a shmif name"),
    ("if_create", {"name": "shmif" + FIVE_THOUSAND}, "shmif1111111111...: cannot create: not a shmif name"),
    ("if_address", {"name": "shmif1", "address": "10.0.1.1", "netmask": "0.0.0.1"},
     "bad address '10.0.1.1': 0.0.0.1: the ones of a netmask come first"),
    ("if_address", {"name": "shmif1", "address": "10.0.1.1/0.0.0.1"}, "bad address '10.0.1.1/0.0.0.1'"),
    ("if_address", {"name": "shmif1", "address": "10.0.1.1", "prefixlen": 33},
     "bad address '10.0.1.1': 33 is out of range (0 to 32)"),
    ("if_address", {"name": "shmif1", "address": "10.0.1.1", "prefixlen": True}, "prefixlen must be an integer"),
    ("if_capabilities", {"name": "shmif1", "enable": -1}, "shmif1: capabilities: -1 is out of range"),
    ("route_add", {"destination": "10.9.0.0/0.0.0.255", "gateway": "10.0.0.7"}, "is not an IPv4 network"),
]


@pytest.mark.parametrize("name, args, message", PROTOCOL_REFUSED,
                         ids=[f"{name} {json.dumps(args)[:50]}" for name, args, _ in PROTOCOL_REFUSED])
def test_request_refused_by_type_and_value(node, name, args, message):
    before = state(node)
    with client(node) as sock:
        reply, _ = call(sock, name, **args)
    assert reply["errno"] == errno.EINVAL and message in reply["message"], reply
    assert state(node) == before


def test_socket_options_take_numbers_of_their_type(node):
    """IP_TTL true is not TTL 1, and a receive timeout is a number of seconds."""
    with client(node) as sock:
        fd = call(sock, "socket", b"", 2, kind=SOCK_DGRAM)[0]["result"]
        for option, value in [("IP_TTL", True), ("IP_TTL", 1.0), ("IP_TTL", 0), ("SO_RCVBUF", True),
                              ("SO_RCVTIMEO", -1), ("SO_RCVTIMEO", "1")]:
            reply, _ = call(sock, "setsockopt", b"", 3, fd=fd, name=option, value=value)
            assert reply["errno"] == errno.EINVAL, (option, value, reply)


def test_nan_never_comes_back(node):
    """A NaN in a request ends that connection with an error in strict JSON; the node answers others."""
    raw = b'{"id": 1, "call": "recvfrom", "args": {"fd": 3, "timeout": NaN}}'
    with client(node) as sock:
        sock.sendall(struct.pack("!II", len(raw), 0) + raw)
        hlen, _ = struct.unpack("!II", sock.recv(8))
        header = json.loads(sock.recv(hlen), parse_constant=no_constant)
    assert header["id"] is None and header["errno"] == errno.EPROTO
    assert node.is_alive()


async def test_local_sockets_refuse_bools_and_non_finite_numbers():
    """The same rules for a program that runs the node itself (the kernel as a library)."""
    async with open_node() as local:
        sock = local.socket(SOCK_DGRAM)
        for option, value in [("IP_TTL", True), ("SO_RCVBUF", False), ("SO_RCVTIMEO", math.nan),
                              ("SO_RCVTIMEO", math.inf)]:
            with pytest.raises(OSError) as refused:
                sock.setsockopt(option, value)
            assert refused.value.errno == errno.EINVAL
        assert sock.ttl != 1
        for timeout in (math.nan, -1.0, True):
            with pytest.raises(OSError) as refused:
                await sock.recvfrom(timeout=timeout)
            assert refused.value.errno == errno.EINVAL
        sock.close()


# -- the parsers, on any text -------------------------------------------------------------

ASCII_INTEGER = re.compile(r"-?[0-9]+\Z")
ASCII_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
number_text = st.one_of(st.text(), st.text(alphabet="0123456789-._ x+e６４٣\t"), st.integers().map(str),
                        st.floats().map(str), st.from_regex(r"-?[0-9]{1,400}(\.[0-9]{0,5})?", fullmatch=True))


@given(number_text, st.integers(-300, 300), st.integers(0, 10 ** 30))
def test_integer_accepted_iff_ascii_decimal_in_range(text, low, span):
    high = low + span
    expected = int(text) if ASCII_INTEGER.match(text) and low <= int(text) <= high else None
    try:
        assert numbers.integer(text, low, high) == expected
    except ValueError as e:
        assert expected is None
        assert "\n" not in str(e) and len(str(e)) < 120


@given(number_text, st.floats(-1e6, 1e6), st.floats(0, 1e12))
@example("0000\x1f\x1f" + "\U0001089f" * 9, 0.0, 1.0)  # each character shown as ten: the message was cut too late
def test_decimal_accepted_iff_ascii_finite_in_range(text, low, span):
    high = low + span
    value = float(text) if ASCII_DECIMAL.match(text) else None
    expected = value if value is not None and math.isfinite(value) and low <= value <= high else None
    try:
        assert numbers.decimal(text, low, high) == expected
    except ValueError as e:
        assert expected is None
        assert "\n" not in str(e) and len(str(e)) < 120


@given(st.integers(0, 2 ** 32 - 1))
def test_netmask_accepted_iff_its_ones_come_first(mask):
    ones = bin(mask)[2:].zfill(32).rstrip("0")
    contiguous = "0" not in ones
    for text in (f"0x{mask:08x}", ".".join(str(b) for b in mask.to_bytes(4, "big"))):
        try:
            assert netmask_prefixlen(text) == len(ones) and contiguous
        except ValueError:
            assert not contiguous


@given(st.one_of(st.text(max_size=20), st.from_regex(r"shmif[0-9]{1,6}", fullmatch=True)))
def test_shmif_name_is_shmif_and_a_plain_unit(name):
    """shmifN: N plain ASCII decimal from 0 to 9999, no leading zeros; anything else is refused."""
    match = re.fullmatch(r"shmif(0|[1-9][0-9]*)", name, re.ASCII)
    good = bool(match) and int(match.group(1)) <= 9999
    try:
        assert check_name(name) == "shmif" and good
    except ValueError:
        assert not good
