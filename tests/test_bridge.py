"""bridge(4) and brconfig: end nodes on two buses ping through a bridge node (real processes, real buses);
what it learns, how much, for how long, and that no frame goes back out of the member it came in on."""

import os
import re
import time

import dpkt
from hypothesis import given, settings, strategies as st
import pytest
import trio

from rumpnet import Driver, open_node, register_driver, unregister_driver
from rumpnet.testing import frames_on, inject

# -- real nodes on real buses ---------------------------------------------------------------------


def mac_of(node, ifname="shmif0"):
    return re.search(r"address: (\S+)", node.ifconfig(ifname)).group(1)


def brconfig(node, *args):
    done = node.run("brconfig", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def learned(node):
    """{MAC: member} from `brconfig bridge0`'s address lines."""
    return dict(re.findall(r"^\t\t([0-9a-f:]{17}) (\S+) \d+ flags=0<>$", brconfig(node, "bridge0"), re.M))


def bridge_counter(node, text):
    out = node.run("netstat", "-s", "-p", "bridge").stdout
    return int(re.search(rf"(\d+) {re.escape(text)}", out).group(1))


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the bridge"
        time.sleep(0.05)


def bridge_node(node, buses):
    """node's shmif0, shmif1... on buses, all members of bridge0, which is up."""
    for n, path in enumerate(buses):
        node.ifconfig(f"shmif{n}", "create", "linkstr", path, "up")
    node.ifconfig("bridge0", "create")
    brconfig(node, "bridge0", *(word for n in range(len(buses)) for word in ("add", f"shmif{n}")), "up")
    return node


def test_end_nodes_ping_through_the_bridge_which_learns_where_each_is(nodes, workdir):
    """A bridge node joining three buses, and a node on each of the first two (one subnet)."""
    buses = [str(workdir / f"bus{n}") for n in (1, 2, 3)]
    a, b = nodes("a"), nodes("b")
    a.attach(buses[0], "10.0.0.1/24")
    b.attach(buses[1], "10.0.0.2/24")
    br = bridge_node(nodes("br"), buses)
    done = a.run("ping", "-c", "3", "-i", "0.2", "10.0.0.2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 packets received" in done.stdout
    assert learned(br) == {mac_of(a): "shmif0", mac_of(b): "shmif1"}
    shown = brconfig(br, "bridge0")
    assert shown.startswith("bridge0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST>\n\tConfiguration:\n")
    assert "\t\tshmif1 flags=3<LEARNING,DISCOVER>\n\t\t\tport 2 priority 128\n" in shown
    assert "\tAddress cache (max cache: 100, timeout: 1200):\n" in shown
    ttl = re.compile(r" \d+ flags=0<>")  # seconds left: time passes between the two
    assert ttl.sub("", shown) == ttl.sub("", brconfig(br, "-a"))
    # Once both ends are learned, their unicast frames go to bus2 only: none reach the third bus.
    echoes = [f for f in frames_on(buses[2]) if isinstance(dpkt.ethernet.Ethernet(f).data, dpkt.ip.IP)]
    assert echoes == []
    # Addresses stay on the members: the bridge node's own stack sends through the bridge (bridge_output).
    br.ifconfig("shmif1", "inet", "10.0.0.3/24")
    assert br.run("ping", "-c", "1", "10.0.0.1").returncode == 0


def frame(dst, src, payload=b"x" * 46):
    return bytes(dpkt.ethernet.Ethernet(dst=dst, src=src, type=0x88B5, data=payload))


def test_no_frame_goes_back_out_of_its_port_and_maxaddr_bounds_a_flood(nodes, workdir):
    buses = [str(workdir / f"bus{n}") for n in (1, 2)]
    br = bridge_node(nodes("br"), buses)
    here, there = b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"
    inject(buses[0], frame(b"\xff" * 6, here))  # `here` is learned on shmif0
    wait_for(lambda: "02:00:00:00:00:01" in learned(br))
    marked = frame(here, there, b"for a host on its own segment".ljust(46))
    inject(buses[0], marked)
    wait_for(lambda: bridge_counter(br, "frames for an address on the member they came in on") == 1)
    assert learned(br)["02:00:00:00:00:02"] == "shmif0"
    assert frames_on(buses[0]).count(marked) == 1  # ours alone: the bridge sent it on nowhere
    assert marked not in frames_on(buses[1])
    brconfig(br, "bridge0", "deladdr", "2:0:0:0:0:1")
    assert list(learned(br)) == ["02:00:00:00:00:02"]

    brconfig(br, "bridge0", "maxaddr", "10")
    inject(buses[1], *(frame(b"\xff" * 6, b"\x02" + os.urandom(5)) for _ in range(50)))
    wait_for(lambda: bridge_counter(br, "source addresses not learned") >= 41)
    assert len(learned(br)) == 10
    assert "(max cache: 10, timeout: 1200)" in brconfig(br, "bridge0")
    brconfig(br, "bridge0", "flush")
    assert learned(br) == {}


# -- in one program, on trio's MockClock ----------------------------------------------------------

SENT = {}  # interface name -> frames its driver was given
INPUTS = {}  # interface name -> the function that takes a batch its driver read


class WireDriver(Driver):
    """A medium the test plays: what it transmits is kept, what the test hands `INPUTS[name]` is received."""

    kind = "tw"

    def start(self, nursery, input):
        INPUTS[self.ifp.name] = input

    def transmit(self, frames):
        SENT.setdefault(self.ifp.name, []).extend(frames)


@pytest.fixture
def wire_driver():
    register_driver(WireDriver)
    yield
    unregister_driver("tw")
    SENT.clear()
    INPUTS.clear()


async def bridge_of_wires(node, members=3):
    node.create_interface("bridge0")
    for n in range(members):
        node.create_interface(f"tw{n}")
        node.set_up(f"tw{n}")
        node.bridge_add("bridge0", f"tw{n}")
    node.set_up("bridge0")
    return node.bridge("bridge0")


X, Y = b"\x02\0\0\0\0\x0a", b"\x02\0\0\0\0\x0b"


async def test_learned_addresses_age_out_unless_seen_again(autojump_clock, wire_driver):
    async with open_node() as node:
        bridge = await bridge_of_wires(node)
        bridge.set_timeout(10, node.now())
        INPUTS["tw0"]([frame(b"\xff" * 6, X)])
        INPUTS["tw1"]([frame(b"\xff" * 6, Y)])
        await trio.sleep(6)
        INPUTS["tw1"]([frame(X, Y)])  # Y seen again: ten seconds from now
        assert SENT["tw0"][-1] == frame(X, Y) and len(SENT["tw2"]) == 2  # to X's member only
        await trio.sleep(5)
        assert [entry.port.ifp.name for entry in bridge.table.values()] == ["tw1"]
        assert bridge.describe_bridge(node.now())["addresses"][0]["expire"] == 5
        await trio.sleep(6)
        assert not bridge.table and bridge.stats["aged"] == 2
        bridge.set_timeout(0, node.now())
        INPUTS["tw0"]([frame(b"\xff" * 6, X)])
        await trio.sleep(100_000)
        assert list(bridge.table) == [X]


async def test_deleting_or_destroying_a_member_forgets_its_addresses(wire_driver):
    async with open_node() as node:
        bridge = await bridge_of_wires(node)
        INPUTS["tw0"]([frame(b"\xff" * 6, X)])
        INPUTS["tw1"]([frame(b"\xff" * 6, Y)])
        bridge.delete("tw0")
        assert list(bridge.table) == [Y] and list(bridge.ports) == ["tw1", "tw2"]
        assert "PROMISC" not in str(node.interfaces["tw0"].describe()) and not node.interfaces["tw0"].layers
        node.destroy_interface("tw1")
        assert not bridge.table and list(bridge.ports) == ["tw2"]
        node.destroy_interface("bridge0")
        assert not node.interfaces["tw2"].layers


frames = st.lists(st.binary(max_size=80) | st.builds(
    lambda dst, src, tail: dst + src + tail,
    st.sampled_from([X, Y, b"\xff" * 6, b"\x01\0\x5e\0\0\x01"]) | st.binary(min_size=6, max_size=6),
    st.sampled_from([X, Y, bytes(6)]) | st.binary(min_size=6, max_size=6),
    st.binary(max_size=40)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.tuples(st.integers(0, 2), frames), max_size=6), maxaddr=st.integers(0, 4))
async def test_any_frames_bounded_table_never_back_out_of_their_port(batches, maxaddr):
    register_driver(WireDriver)
    try:
        async with open_node() as node:
            bridge = await bridge_of_wires(node)
            bridge.set_maxaddr(maxaddr)
            for member, batch in batches:
                SENT.clear()
                INPUTS[f"tw{member}"](batch)
                assert f"tw{member}" not in SENT
                for out in SENT.values():
                    assert all(f in batch for f in out)
                assert len(bridge.table) <= maxaddr
    finally:
        unregister_driver("tw")
        SENT.clear()
        INPUTS.clear()
